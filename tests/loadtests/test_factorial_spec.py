"""`[factorial]` and `[phases.switches]`: the latency plan's design as phases, and what is refused."""

from __future__ import annotations

import pytest

from loadtests import spec as specs

FACTORS = ["provider_skip", "keepalive", "parallel_config", "async_logging"]


def _doc(**factorial) -> dict:
    return {"name": "plan", "gateway": {}, "load": {"rate": 10.0, "provider_share": 1.0},
            "factorial": {"factors": FACTORS, "blocks": 3, "cell_s": 2, "warmup_s": 4,
                          **factorial}}


def _cells(exp):
    return [(p.block, p.mode, tuple(sorted((p.switches or {}).items())))
            for p in exp.phases if p.block is not None]


def test_every_cell_runs_once_in_every_block_in_a_seeded_random_order():
    exp = specs.validate(_doc(), "plan.toml")
    warmup, *cells = exp.phases
    assert (warmup.name, warmup.analyse, warmup.mode) == ("warmup", False, "off")
    assert set(warmup.switches.values()) == {"off"}
    assert len(cells) == 3 * 16 and all(p.duration_s == 2 for p in cells)
    for block in (1, 2, 3):
        inside = [c for c in _cells(exp) if c[0] == block]
        assert len(set(inside)) == 16  # every combination once
    orders = [[p.group for p in cells if p.block == b] for b in (1, 2, 3)]
    assert orders[0] != orders[1] != orders[2]  # randomized inside each block
    # the group names the cell: the factors on, joined by "."; the mode is provider_skip's
    on = {p.group: p for p in cells if p.block == 1}
    assert on["all-off"].mode == "off" and on["provider_skip"].mode == "skip"
    assert on["provider_skip.keepalive.parallel_config.async_logging"].switches == {
        "keepalive": "on", "parallel_config": "on", "async_logging": "on"}
    # the same seed gives the same design; another seed another order
    assert _cells(specs.validate(_doc(), "plan.toml")) == _cells(exp)
    assert _cells(specs.validate(_doc(seed=2), "plan.toml")) != _cells(exp)


def test_the_bundled_latency_plan_and_its_written_spec_round_trip(tmp_path):
    exp = specs.load("latency-plan")
    assert exp.factorial["factors"] == FACTORS and exp.factorial["blocks"] >= 8
    assert exp.gateway is not None
    assert set(exp.factorial["expected"]) == set(FACTORS)
    # a default run stays within the issue's 10 minutes of load, --quick within 3
    assert exp.total_s <= 8 * 60 and specs.load("latency-plan", duration_scale=0.25).total_s <= 150
    written = tmp_path / "experiment.toml"
    written.write_text(specs.dumps(exp))
    again = specs.load(str(written))  # phases written out: not expanded a second time
    assert [(p.name, p.mode, p.switches, p.block) for p in again.phases] == \
        [(p.name, p.mode, p.switches, p.block) for p in exp.phases]


@pytest.mark.parametrize(("change", "field", "problem"), [
    ({"gateway": None}, "factorial.factors[1]", "gateway switch"),
    ({"factorial": {"factors": ["provider_skip", "nagle"]}}, "factorial.factors[1]", "must be one of"),
    ({"factorial": {"factors": FACTORS, "blocks": 1}}, "factorial.blocks", ">= 2"),
    ({"factorial": {"factors": FACTORS, "expected": {"keepalive": [-20, -40]}}},
     "factorial.expected.keepalive", "high"),
    ({"factorial": {"factors": ["keepalive", "keepalive"]}}, "factorial.factors", "repeat"),
    ({"target": {"requests": [{"name": "x", "path": "/"}]}}, "gateway", "reference pack"),
])
def test_a_bad_design_is_refused_with_its_field(change, field, problem):
    doc = _doc()
    if "target" in change:  # a generic target: no order flows, its own modes
        doc["load"].pop("provider_share")
        doc["modes"] = ["off", "on"]
    for key, value in change.items():
        if value is None:
            doc.pop(key)
        else:
            doc[key] = value
    with pytest.raises(specs.SpecError) as err:
        specs.validate(doc, "plan.toml")
    assert err.value.field == field and problem in err.value.problem, str(err.value)


def test_phase_switches_are_validated():
    base = {"name": "s", "load": {"rate": 5.0},
            "phases": [{"name": "a", "duration_s": 1, "mode": "off",
                        "switches": {"parallel_config": "on"}}]}
    exp = specs.validate(base, "s.toml")
    assert exp.phases[0].switches == {"parallel_config": "on"}
    assert exp.schedule()[0]["switches"] == {"parallel_config": "on"}
    for switches, problem in (({"keepalive": "on"}, "[gateway]"), ({"parallel_config": "yes"},
                              "must be one of"), ({"turbo": "on"}, "unknown field")):
        base["phases"][0]["switches"] = switches
        with pytest.raises(specs.SpecError, match=problem.replace("[", r"\[")):
            specs.validate(base, "s.toml")
