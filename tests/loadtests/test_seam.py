"""The target seam: the engine imports no pack, templates render as documented, and the flag
adapters flip and confirm a real service's flag (examples/fastpath) or say why not."""

from __future__ import annotations

import ast
import json
import random
import sys
from pathlib import Path

import pytest

from loadtests import spec as specs
from loadtests.adapters import flags
from loadtests.adapters.http_target import metric_name, parse_server_timing
from loadtests.adapters.templates import Template, TemplateError, compile_value, render_value
from loadtests.seam import FlagError
from tests.examples.fastpath import FLAGCTL, start_fastpath
from tests.loadtests.util import ROOT

# The engine may use the bottom layer of the application package, nothing above it.
ENGINE_MAY_IMPORT = ("execbench.contract", "execbench.console", "execbench.rundir")


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def test_the_engine_imports_no_pack_and_nothing_above_it():
    offending = []
    for path in sorted((ROOT / "loadtests").rglob("*.py")):
        for name in _imports(path):
            top = name.split(".")[0]
            above = top in ("reference", "analysis", "service", "dashboards") or (
                top == "execbench" and name not in ENGINE_MAY_IMPORT)
            if above:
                offending.append(f"{path.relative_to(ROOT)}: {name}")
    assert offending == []


def test_templates_render_variables_types_and_environment(monkeypatch):
    rng = random.Random(7)
    ctx = {"mode": "fast", "user_id": 17, "row": {"region": "eu"}}
    body = compile_value({"user": "{user_id}", "amount": "{randint:1:5}", "ref": "{uuid}",
                          "tag": "u{user_id}", "mode": "{mode}", "r": "{region}",
                          "lit": "{{x}}", "auth": "Bearer ${SEAM_TOKEN}"}, ("region",))
    monkeypatch.setenv("SEAM_TOKEN", "s3cret")
    out = render_value(body, ctx, rng, typed=True)
    assert out["user"] == 17 and isinstance(out["amount"], int) and 1 <= out["amount"] <= 5
    assert out["tag"] == "u17" and out["mode"] == "fast" and out["r"] == "eu"
    assert len(out["ref"]) == 32 and out["lit"] == "{x}" and out["auth"] == "Bearer s3cret"
    # outside a JSON body every value is text
    assert Template("/u/{user_id}?q={choice:a,b}").render(ctx, rng).startswith("/u/17?q=")
    for bad in ("{nope}", "{randint:5:1}", "{randint:a:b}", "{choice:}", "a{b", "x}"):
        with pytest.raises(TemplateError):
            Template(bad)
    monkeypatch.delenv("SEAM_TOKEN")
    with pytest.raises(TemplateError, match="SEAM_TOKEN is not set"):
        render_value(body, ctx, rng, typed=True)


def test_server_timing_and_metric_names():
    assert parse_server_timing('app;dur=12.5;desc="x", db;dur=3, cache;desc=hit') == \
        {"app": 12.5, "db": 3.0}
    assert metric_name("header:app") == "app_ms"
    assert metric_name("json:/timings/handler_ms") == "handler_ms"
    assert metric_name("json:/durations/total") == "total_ms"


def test_the_issue_example_validates_and_writes_its_secrets_as_templates():
    exp = specs.load(str(ROOT / "examples" / "fastpath" / "fast-path.toml"))
    assert exp.pack == "http" and exp.modes == ["legacy", "fast"]
    assert exp.roles == {"baseline": "legacy", "treatment": ["fast"]}
    text = specs.dumps(exp)
    assert "${FLAG_TOKEN}" in text  # the secret's name, never its value
    again = specs.validate(__import__("tomllib").loads(text), "(as run)")
    assert again.data["target"] == exp.data["target"] and again.data["flag"] == exp.data["flag"]


@pytest.mark.parametrize(("change", "message"), [
    ({"flag": None}, "give a [flag] table"),
    ({"checks": [{"kind": "quantile_below", "flow": "provider", "metric": "app_ms",
                  "phase": "treatment", "q": 0.5, "max": 1}]}, "checks[0].flow: must be one of"),
    ({"checks": [{"kind": "quantile_below", "flow": "checkout", "metric": "executor_ms",
                  "phase": "treatment", "q": 0.5, "max": 1}]}, "checks[0].metric: must be one of"),
    ({"checks": [{"kind": "overcommits", "mode": "fast", "max": 0}]}, "reads the reference"),
    ({"roles": {"baseline": "legacy", "treatment": "nitro"}}, "roles.treatment: must be one of"),
    ({"target": {"base_url": "localhost:9100", "requests": [{"name": "a", "path": "/"}]}},
     "target.base_url: must be an http:// or https:// URL"),
])
def test_generic_spec_errors_name_the_field(change, message):
    import tomllib

    doc = tomllib.loads((ROOT / "examples" / "fastpath" / "fast-path.toml").read_text())
    for key, value in change.items():
        if value is None:
            doc.pop(key)
        else:
            doc[key] = value
    with pytest.raises(specs.SpecError, match=message.replace("[", r"\[").replace("]", r"\]")):
        specs.validate(doc, "x.toml")


def test_role_names_stand_for_phases_in_checks():
    import tomllib

    doc = tomllib.loads((ROOT / "examples" / "fastpath" / "fast-path.toml").read_text())
    doc["checks"] = [{"kind": "reduction_at_least", "flow": "checkout", "metric": "app_ms",
                      "from": "baseline", "to": "treatment", "pct": 30},
                     {"kind": "error_rate_below", "max_ratio": 0.01, "phase": "rollback"}]
    assert len(specs.validate(doc, "x.toml").checks) == 2


# --- the adapters against a real service ---------------------------------------------------


@pytest.fixture
def fastpath(tmp_path):
    handle = start_fastpath(tmp_path, poll_ms=50)
    yield handle
    handle.stop()


def test_http_adapter_flips_and_confirms_through_get(fastpath, monkeypatch):
    monkeypatch.setenv("FLAG_TOKEN", fastpath.token)
    flag = flags.build({"adapter": "http", "name": "fast_path",
                        "set": {"method": "PUT", "url": "/flags/fast_path",
                                "json": {"variant": "{mode}"},
                                "headers": {"Authorization": "Bearer ${FLAG_TOKEN}"}},
                        "get": {"url": "/flags/fast_path", "pointer": "/variant"}},
                       fastpath.url, Path("."), ["legacy", "fast"])
    flag.check()
    assert flag.get() == "legacy"
    flip = flag.set("fast", "test")
    assert flip.state["confirmed"] and flip.requested <= flip.applied
    assert fastpath.evaluated_variant() == "fast"
    # a refused credential is the service's answer, named
    monkeypatch.setenv("FLAG_TOKEN", "wrong")
    with pytest.raises(FlagError, match="HTTP 403"):
        flag.set("legacy", "test")
    flag.close()


def test_flagd_adapter_rewrites_the_file_atomically_and_confirms(fastpath):
    flag = flags.build({"adapter": "flagd", "file": str(fastpath.flags_file), "flag": "fast_path",
                        "get": {"url": "/flags/fast_path", "pointer": "/variant"}},
                       fastpath.url, Path("."), ["legacy", "fast"])
    flag.check()
    for mode in ("fast", "legacy", "fast"):
        flip = flag.set(mode, "test")
        assert flip.mode == mode and flip.state["confirmed"]
        doc = json.loads(fastpath.flags_file.read_text())
        assert doc["flags"]["fast_path"]["defaultVariant"] == mode
    assert not [p for p in fastpath.flags_file.parent.iterdir() if p.name.startswith(".")]
    with pytest.raises(FlagError, match="no variant 'nitro'"):
        flag.set("nitro", "test")
    unknown = flags.build({"adapter": "flagd", "file": str(fastpath.flags_file), "flag": "fast_path",
                           "get": {"url": "/flags/fast_path", "pointer": "/variant"}},
                          fastpath.url, Path("."), ["legacy", "turbo"])
    with pytest.raises(FlagError, match="has no variant 'turbo'"):
        unknown.check()
    flag.close()
    unknown.close()


def test_command_adapter_checks_exit_status_and_compares_output(fastpath):
    base = f"{sys.executable} {FLAGCTL} --file {fastpath.flags_file}"
    flag = flags.build({"adapter": "command", "set": f"{base} set fast_path {{mode}}",
                        "get": f"{sys.executable} {FLAGCTL} --url {{base_url}} get fast_path"},
                       fastpath.url, Path("."), ["legacy", "fast"])
    flip = flag.set("fast", "test")
    assert flip.state["confirmed"] and fastpath.evaluated_variant() == "fast"
    failing = flags.build({"adapter": "command", "set": f"{sys.executable} -c 'raise SystemExit(4)'"},
                          fastpath.url, Path("."), ["legacy", "fast"])
    with pytest.raises(FlagError, match="exited 4"):
        failing.set("fast", "test")


def test_a_flip_never_confirmed_names_the_value_get_read():
    flag = flags.build({"adapter": "command", "set": "true", "get": "echo legacy",
                        "confirm_timeout_s": 0.3, "poll_interval_s": 0.05},
                       "http://127.0.0.1:9", Path("."), ["legacy", "fast"])
    with pytest.raises(FlagError, match=r"not confirmed as 'fast' within 0.3 s: get read 'legacy'"):
        flag.set("fast", "test")
