"""Flag adapters for any flag system: `http`, `command` and `flagd` (the experiment's `[flag]`).

A flip is requested through `set`, then confirmed through `get`: `get` is read every
`poll_interval_s` until it reads the new variant, and the first read that does is the applied
time (the previous read bounds how much earlier it may have happened: `resolution_ms` in the
timeline). A flip not confirmed within `confirm_timeout_s` raises FlagError naming the value
`get` last read; the runner stops the run with it. Without `get` (http and command only) the
applied time is when `set` returned, and the timeline says `confirmed: false`.
No Locust import here.
"""

from __future__ import annotations

import json
import os
import random
import shlex
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from loadtests.adapters.templates import (
    TemplateError,
    compile_value,
    missing_env,
    pointer,
    render_value,
)
from loadtests.seam import FlagError, Flip

FLAG_DEFAULTS = {"confirm_timeout_s": 10.0, "poll_interval_s": 0.02, "timeout_s": 5.0}


class _Confirming:
    """set() = request + confirm; subclasses give `_request(mode, reason)` and `_read()`."""

    name = "flag"
    needs_credentials = False
    has_credentials = True

    def __init__(self, conf: dict[str, Any]):
        self.conf = {**FLAG_DEFAULTS, **conf}
        self.name = str(conf.get("name", "flag"))
        self.can_read = conf.get("get") is not None
        self._sleep = time.sleep  # the runner's process is gevent-patched: this yields

    def _request(self, mode: str, reason: str) -> None:
        raise NotImplementedError

    def _read(self) -> str:
        raise NotImplementedError

    def get(self) -> str | None:
        return self._read() if self.can_read else None

    def check(self) -> None:
        missing = missing_env(self.conf)
        if missing:
            raise FlagError(f"[flag] reads environment variable(s) {', '.join(missing)}, "
                            "which are not set")
        if self.can_read:
            self._read()  # a broken get fails now, not at the first flip

    def set(self, mode: str, reason: str) -> Flip:
        requested = time.time()
        self._request(mode, reason)
        if not self.can_read:
            return Flip(mode=mode, requested=requested, applied=time.time(),
                        state={"confirmed": False})
        deadline = requested + float(self.conf["confirm_timeout_s"])
        interval = float(self.conf["poll_interval_s"])
        previous = requested
        reads = 0
        last: str | None = None
        while True:
            read_at = time.time()
            try:
                last = self._read()
            except FlagError as exc:
                last = f"(error: {exc})"
            reads += 1
            if last == mode:
                return Flip(mode=mode, requested=requested, applied=read_at,
                            resolution_s=max(0.0, read_at - previous),
                            state={"confirmed": True, "reads": reads})
            if time.time() >= deadline:
                raise FlagError(
                    f"flag {self.name} not confirmed as {mode!r} within "
                    f"{self.conf['confirm_timeout_s']:g} s: get read {last!r} "
                    f"({reads} reads; flag.confirm_timeout_s sets the bound)")
            previous = read_at
            self._sleep(interval)

    def close(self) -> None:
        pass


# --- http ------------------------------------------------------------------------------------


class HttpFlag(_Confirming):
    """`set = {method, url, json | body, headers}`, `get = {url, pointer, headers}`; a url
    relative to the target's base URL or absolute (a flag service elsewhere)."""

    def __init__(self, conf: dict[str, Any], base_url: str):
        super().__init__(conf)
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(timeout=float(self.conf["timeout_s"]))
        self.rng = random.Random()
        try:
            # without `set` it only reads (the flagd adapter confirms through it)
            self.set_t = compile_value(conf["set"]) if "set" in conf else None
            self.get_t = compile_value(conf["get"]) if self.can_read else None
        except TemplateError as exc:
            raise FlagError(f"[flag]: {exc}") from None

    def _url(self, url: str) -> str:
        return url if "://" in url else self.base_url + url

    def _call(self, spec: dict[str, Any], ctx: dict[str, Any], default_method: str):
        part = render_value(spec, ctx, self.rng, typed=True)
        method = str(part.get("method", default_method)).upper()
        url = self._url(part["url"])
        kwargs: dict[str, Any] = {"headers": part.get("headers") or {}}
        if "json" in part:
            kwargs["json"] = part["json"]
        elif "body" in part:
            kwargs["content"] = str(part["body"]).encode()
        try:
            resp = self.http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise FlagError(f"{method} {url}: {exc or type(exc).__name__}") from None
        if resp.status_code >= 400:
            raise FlagError(f"{method} {url}: HTTP {resp.status_code}: {resp.text[:200]}")
        return resp

    def _request(self, mode: str, reason: str) -> None:
        self._call(self.set_t, {"mode": mode, "reason": reason}, "PUT")

    def _read(self) -> str:
        resp = self._call(self.get_t, {"mode": None}, "GET")
        ptr = self.conf["get"].get("pointer")
        if ptr is None:
            return resp.text.strip()
        try:
            value = pointer(resp.json(), ptr)
        except (ValueError, KeyError, TypeError):
            raise FlagError(f"GET {self._url(self.conf['get']['url'])}: pointer {ptr} does not "
                            f"resolve in {resp.text[:200]!r}") from None
        return value if isinstance(value, str) else json.dumps(value)

    def close(self) -> None:
        self.http.close()


# --- command ---------------------------------------------------------------------------------


def _argv(command: str | list[str], mode: str | None, reason: str | None,
          base_url: str = "") -> list[str]:
    """The command's argv, `{mode}`, `{reason}`, `{base_url}` (the target's) and `${ENV}`
    filled per argument (no shell: a variant name can never become shell syntax)."""
    parts = shlex.split(command) if isinstance(command, str) else list(command)
    out = []
    for part in parts:
        part = part.replace("{mode}", mode or "").replace("{reason}", reason or "")
        part = part.replace("{base_url}", base_url)
        out.append(os.path.expandvars(part))
    return out


class CommandFlag(_Confirming):
    """`set = "myflags set fast_path {mode}"`, `get = "myflags get fast_path"`: exit status
    checked, get's output trimmed and compared with the variant."""

    def __init__(self, conf: dict[str, Any], base_url: str = ""):
        super().__init__(conf)
        self.base_url = base_url.rstrip("/")

    def _run(self, command, mode: str | None, reason: str | None) -> str:
        argv = _argv(command, mode, reason, self.base_url)
        try:
            done = subprocess.run(argv, capture_output=True, text=True,
                                  timeout=float(self.conf["timeout_s"]), check=False)
        except FileNotFoundError:
            raise FlagError(f"command not found: {argv[0]}") from None
        except subprocess.TimeoutExpired:
            raise FlagError(f"`{shlex.join(argv)}` did not finish within "
                            f"{self.conf['timeout_s']:g} s") from None
        if done.returncode != 0:
            err = (done.stderr or done.stdout).strip().splitlines()
            raise FlagError(f"`{shlex.join(argv)}` exited {done.returncode}"
                            + (f": {err[-1]}" if err else ""))
        return done.stdout.strip()

    def _request(self, mode: str, reason: str) -> None:
        self._run(self.conf["set"], mode, reason)

    def _read(self) -> str:
        return self._run(self.conf["get"], None, None)


# --- flagd -----------------------------------------------------------------------------------


class FlagdFlag(_Confirming):
    """An OpenFeature flagd flag-definition file: the flip rewrites the flag's
    `defaultVariant` atomically (a temporary file in the same folder, then rename), so a
    provider watching the file never reads half a file. `get` (an HTTP `{url, pointer}` on
    the target, or a command) confirms the service evaluates the new variant."""

    def __init__(self, conf: dict[str, Any], base_url: str, spec_dir: Path):
        super().__init__(conf)
        path = Path(os.path.expandvars(str(conf["file"])))
        self.path = path if path.is_absolute() else spec_dir / path
        self.flag = str(conf.get("flag", conf.get("name", "")))
        self.name = self.flag
        getter = conf.get("get")
        if isinstance(getter, dict):
            self.reader: _Confirming = HttpFlag(conf, base_url)
        else:
            self.reader = CommandFlag(conf, base_url)

    def _document(self) -> dict[str, Any]:
        try:
            doc = json.loads(self.path.read_text())
        except OSError as exc:
            raise FlagError(f"flagd file {self.path}: {exc.strerror}") from None
        except ValueError as exc:
            raise FlagError(f"flagd file {self.path}: not JSON: {exc}") from None
        flag = doc.get("flags", {}).get(self.flag) if isinstance(doc, dict) else None
        if not isinstance(flag, dict):
            raise FlagError(f"flagd file {self.path} has no flag {self.flag!r} under \"flags\"")
        return doc

    def check(self) -> None:
        doc = self._document()
        variants = doc["flags"][self.flag].get("variants", {})
        unknown = [m for m in self.conf.get("_modes", ()) if m not in variants]
        if unknown:
            raise FlagError(f"flagd file {self.path}: flag {self.flag!r} has no variant "
                            f"{', '.join(map(repr, unknown))} (variants: {', '.join(variants)})")
        super().check()

    def _request(self, mode: str, reason: str) -> None:
        doc = self._document()
        flag = doc["flags"][self.flag]
        if mode not in flag.get("variants", {}):
            raise FlagError(f"flagd file {self.path}: flag {self.flag!r} has no variant {mode!r}")
        flag["defaultVariant"] = mode
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(doc, fh, indent=2)
                fh.write("\n")
            old = self.path.stat()
            os.chmod(tmp, old.st_mode & 0o777)
            # a watcher that reloads on a newer mtime must see one, even for two flips within
            # the file system's timestamp granularity
            now = max(time.time_ns(), old.st_mtime_ns + 1_000_000)
            os.utime(tmp, ns=(now, now))
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _read(self) -> str:
        return self.reader._read()

    def close(self) -> None:
        self.reader.close()


ADAPTERS = ("reference", "http", "command", "flagd")


def build(conf: dict[str, Any], base_url: str, spec_dir: Path, modes: list[str]):
    adapter = conf.get("adapter")
    conf = {**conf, "_modes": modes}
    if adapter == "http":
        return HttpFlag(conf, base_url)
    if adapter == "command":
        return CommandFlag(conf, base_url)
    if adapter == "flagd":
        return FlagdFlag(conf, base_url, spec_dir)
    raise FlagError(f"flag.adapter {adapter!r} is not a generic adapter")
