"""Request templates of the generic HTTP target and flag adapters.

`${NAME}` reads the environment when the request is made (secrets never land in the run
directory: experiment.toml keeps the template); `{mode}`, `{user_id}`, `{uuid}`,
`{randint:A:B}`, `{choice:a,b,c}` and the columns of a population CSV (`{column}`) are
per-request variables; `{{` and `}}` are literal braces. In a JSON body a string that is
exactly one `{user_id}` or `{randint:A:B}` placeholder becomes a JSON integer, every other
string stays a string. Templates are compiled once; rendering is string joins.
No Locust import here.
"""

from __future__ import annotations

import os
import random
import re
import uuid
from collections.abc import Mapping
from typing import Any

_TOKEN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\{\{|\}\}|\{([^{}]*)\}")
BUILTINS = ("mode", "user_id", "uuid")


class TemplateError(ValueError):
    pass


def env_names(value: Any) -> set[str]:
    """Every `${NAME}` a (nested) template value reads."""
    if isinstance(value, str):
        return {m.group(1) for m in _TOKEN.finditer(value) if m.group(1)}
    if isinstance(value, Mapping):
        return set().union(*(env_names(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(env_names(v) for v in value)) if value else set()
    return set()


def missing_env(value: Any, environ: Mapping[str, str] | None = None) -> list[str]:
    environ = os.environ if environ is None else environ
    return sorted(n for n in env_names(value) if n not in environ)


class Template:
    """One compiled string template."""

    __slots__ = ("parts", "single", "source")

    def __init__(self, source: str, columns: tuple[str, ...] = ()):
        self.source = source
        parts: list[Any] = []
        pos = 0

        def literal(text: str) -> str:
            if "{" in text or "}" in text:
                raise TemplateError(f"unbalanced brace in {source!r} "
                                    "(write {{ or }} for a literal brace)")
            return text

        for m in _TOKEN.finditer(source):
            if m.start() > pos:
                parts.append(literal(source[pos:m.start()]))
            text = m.group(0)
            if text == "{{":
                parts.append("{")
            elif text == "}}":
                parts.append("}")
            elif m.group(1):
                parts.append(("env", m.group(1)))
            else:
                parts.append(_variable(m.group(2), source, columns))
            pos = m.end()
        if pos < len(source):
            parts.append(literal(source[pos:]))
        self.parts = parts
        # a lone integer placeholder keeps its type in a JSON body
        self.single = parts[0] if len(parts) == 1 and isinstance(parts[0], tuple) and \
            parts[0][0] in ("user_id", "randint") else None

    @property
    def static(self) -> str | None:
        """The text when the template has no variable at all (rendered once, not per request)."""
        if all(isinstance(p, str) for p in self.parts):
            return "".join(self.parts)
        return None

    def render(self, ctx: Mapping[str, Any], rng: random.Random, *, typed: bool = False) -> Any:
        if typed and self.single is not None:
            return _value(self.single, ctx, rng)
        return "".join(p if isinstance(p, str) else str(_value(p, ctx, rng)) for p in self.parts)


def _variable(body: str, source: str, columns: tuple[str, ...]):
    name, _, args = body.partition(":")
    if name == "randint":
        lo, _, hi = args.partition(":")
        try:
            low, high = int(lo), int(hi)
        except ValueError:
            raise TemplateError(f"{{{body}}} in {source!r}: write {{randint:A:B}} with integers "
                                "A <= B") from None
        if high < low:
            raise TemplateError(f"{{{body}}} in {source!r}: A must be <= B")
        return ("randint", low, high)
    if name == "choice":
        options = tuple(o for o in args.split(","))
        if not args or any(not o for o in options):
            raise TemplateError(f"{{{body}}} in {source!r}: write {{choice:a,b,c}}")
        return ("choice", options)
    if args:
        raise TemplateError(f"{{{body}}} in {source!r}: unknown variable {name!r}")
    if name in BUILTINS:
        return (name,)
    if name in columns:
        return ("column", name)
    known = [*BUILTINS, "randint:A:B", "choice:a,b", *columns]
    raise TemplateError(f"{{{body}}} in {source!r}: unknown variable (known: {', '.join(known)}, "
                        "${ENV_NAME})")


def _value(part: tuple, ctx: Mapping[str, Any], rng: random.Random) -> Any:
    kind = part[0]
    if kind == "randint":
        return rng.randint(part[1], part[2])
    if kind == "choice":
        return rng.choice(part[1])
    if kind == "uuid":
        return uuid.UUID(int=rng.getrandbits(128), version=4).hex
    if kind == "env":
        value = os.environ.get(part[1])
        if value is None:
            raise TemplateError(f"environment variable {part[1]} is not set")
        return value
    if kind == "column":
        return ctx["row"][part[1]]
    return ctx[kind]


def compile_value(value: Any, columns: tuple[str, ...] = ()) -> Any:
    """A nested JSON-like value with every string compiled."""
    if isinstance(value, str):
        return Template(value, columns)
    if isinstance(value, Mapping):
        return {k: compile_value(v, columns) for k, v in value.items()}
    if isinstance(value, list):
        return [compile_value(v, columns) for v in value]
    return value


def is_static(value: Any) -> bool:
    """A compiled value without any variable (`${NAME}` counts as one: it is read per request),
    so rendering it needs no context and draws nothing from the random stream."""
    if isinstance(value, Template):
        return value.static is not None
    if isinstance(value, dict):
        return all(is_static(v) for v in value.values())
    if isinstance(value, list):
        return all(is_static(v) for v in value)
    return True


def render_value(value: Any, ctx: Mapping[str, Any], rng: random.Random, *, typed: bool) -> Any:
    if isinstance(value, Template):
        return value.render(ctx, rng, typed=typed)
    if isinstance(value, dict):
        return {k: render_value(v, ctx, rng, typed=typed) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, ctx, rng, typed=typed) for v in value]
    return value


def pointer(doc: Any, ptr: str) -> Any:
    """RFC 6901 JSON pointer; KeyError naming the first token that does not resolve."""
    if ptr == "":
        return doc
    if not ptr.startswith("/"):
        raise KeyError(ptr)
    for raw in ptr[1:].split("/"):
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(doc, list):
            try:
                doc = doc[int(token)]
            except (ValueError, IndexError):
                raise KeyError(token) from None
        elif isinstance(doc, dict) and token in doc:
            doc = doc[token]
        else:
            raise KeyError(token)
    return doc
