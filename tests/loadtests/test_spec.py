"""Experiment specs: the bundled ones are valid, and a bad one is refused with file, field, problem."""

from __future__ import annotations

import tomllib

import pytest

from loadtests import spec as specs
from tests.loadtests.util import cli_env, execbench

BUNDLED = ["provider-skip-ab", "interleaved", "capacity", "safety", "rollback-under-fault"]


def test_bundled_experiments_are_all_there_and_valid():
    assert set(BUNDLED) <= set(specs.available())
    for name in BUNDLED:
        exp = specs.load(name)
        assert exp.name == name
        assert exp.phases and exp.checks
        starts = [p.start_s for p in exp.phases]
        assert starts == sorted(starts) and starts[0] == 0


def test_default_experiment_is_warmup_baseline_optimized_rollback():
    exp = specs.load("provider-skip-ab")
    assert [(p.name, p.mode, p.analyse) for p in exp.phases] == [
        ("warmup", "off", False), ("baseline", "off", True),
        ("optimized", "skip", True), ("rollback", "off", True)]
    assert all(p.duration_s >= 60 for p in exp.phases if p.analyse)
    kinds = {c["kind"] for c in exp.checks}
    assert {"quantile_between", "reduction_at_least", "equivalent", "no_errors",
            "overcommits", "no_orders_lost"} <= kinds


def test_interleaved_groups_and_capacity_steps():
    inter = specs.load("interleaved")
    groups = {p.group for p in inter.phases if p.analyse}
    assert groups == {"baseline", "optimized"}
    cap = specs.load("capacity")
    rates = [(p.mode, cap.phase_rate(p)) for p in cap.phases if p.analyse]
    assert [r for m, r in rates if m == "off"] == sorted(r for m, r in rates if m == "off")
    assert {m for m, _ in rates} == {"off", "skip"}


def test_rollback_under_fault_sets_the_provider():
    exp = specs.load("rollback-under-fault")
    outage = [(p.mode, p.provider["outage"]) for p in exp.phases if p.provider]
    assert ("skip", True) in outage and ("off", True) in outage and outage[-1] == ("off", False)


def test_duration_scale_and_written_spec_round_trip():
    exp = specs.load("provider-skip-ab", duration_scale=0.25)
    assert [p.duration_s for p in exp.phases] == [7.5, 15, 15, 15]
    again = specs.validate(tomllib.loads(specs.dumps(exp, header="as run")), "as-run")
    assert again.data == exp.data
    assert [(p.name, p.start_s) for p in again.phases] == [(p.name, p.start_s) for p in exp.phases]


GOOD = """
name = "x"
[load]
rate = 10
[[phases]]
name = "a"
duration_s = 5
mode = "off"
[[phases]]
name = "b"
duration_s = 5
mode = "skip"
"""

BAD = [
    ("[[phases]]\nname='c'\nmode='off'\n", "phases[2].duration_s", "missing"),
    ("[[phases]]\nname='c'\nduration_s=-1\nmode='off'\n", "phases[2].duration_s", "must be > 0"),
    ("[[phases]]\nname='c'\nduration_s=1\nmode='fast'\n", "phases[2].mode", "must be one of"),
    ("[[phases]]\nname='a'\nduration_s=1\nmode='off'\n", "phases[2].name", "duplicate"),
    ("[[phases]]\nname='c'\nduration_s=1\nmode='off'\nrate='high'\n", "phases[2].rate",
     "finite number"),
    ("[[phases]]\nname='c'\nduration_s=1\nmode='off'\nduraton=3\n", "phases[2].duraton",
     "unknown field"),
    (("[[checks]]\nkind='equivalent'\nflow='provider'\nmetric='executor_ms'\n"
      "phases=['a','zzz']\nmargin_pct=5\n"), "checks[0].phases[1]", "no phase or phase group"),
    ("[[checks]]\nkind='telepathy'\n", "checks[0].kind", "must be one of"),
    (("[[checks]]\nkind='quantile_between'\nflow='provider'\nmetric='executor_ms'\n"
      "phase='a'\nq=0.5\nlow=1\n"), "checks[0].high", "missing"),
    ("[[checks]]\nkind='overcommits'\nmode='off'\nmax=-1\n", "checks[0].max", "must be >= 0"),
    ("[load.mix]\nchaos_monkey = 1\n", "load.mix", "must be one of"),
]


@pytest.mark.parametrize("addition,field,problem", BAD)
def test_malformed_spec_names_file_field_and_problem(tmp_path, addition, field, problem):
    path = tmp_path / "broken.toml"
    text = GOOD + "\n" + addition
    if addition.startswith("[load.mix]"):
        text = GOOD.replace("[load]\nrate = 10", "[load]\nrate = 10\n" + addition)
    path.write_text(text)
    with pytest.raises(specs.SpecError) as info:
        specs.load(str(path))
    err = info.value
    assert err.source == str(path) and err.field == field and problem in err.problem
    assert str(err).startswith(f"{path}: {field}: ")


def test_syntax_error_and_unknown_name(tmp_path):
    path = tmp_path / "syntax.toml"
    path.write_text("name = \n")
    with pytest.raises(specs.SpecError, match=r"syntax.toml: \(syntax\): not valid TOML"):
        specs.load(str(path))
    with pytest.raises(specs.SpecError, match="no bundled experiment of that name; available:"):
        specs.load("no-such-experiment")


def test_cli_refuses_a_malformed_spec_with_the_named_error(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text(GOOD + "\n[[phases]]\nname='c'\nduration_s=0\nmode='off'\n")
    result = execbench("run", path, "--target", "http://127.0.0.1:9", env=cli_env(), timeout=60)
    assert result.returncode == 2
    assert (f"execbench run: error: experiment spec {path}: phases[2].duration_s: must be > 0, got 0"
            in result.stderr)
    assert not (tmp_path / "runs").exists()
