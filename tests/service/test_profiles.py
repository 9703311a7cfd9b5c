import math

import pytest

from service.profiles import STAGES, ProfileError, load_profile, parse_profile


def test_builtin_seed_profile_covers_every_stage_from_the_note():
    profile = load_profile("seed")
    assert set(profile.stages) == set(STAGES)
    # The three stages the optimization skips sit in (the top of) the note's ranges.
    assert 5 <= profile.stages["user_lock_ms"].p50_ms <= 15
    assert 20 <= profile.stages["orders_fetch_ms"].p50_ms <= 50
    assert 60 <= profile.stages["total_margin_ms"].p50_ms <= 100


def test_none_profile_injects_nothing():
    assert load_profile("none").stages == {}


def test_lognormal_fit_through_p50_and_p95():
    profile = parse_profile({"stages": {"persist_ms": {"p50": 10, "p95": 20}}}, "t")
    stage = profile.stages["persist_ms"]
    assert stage.p50_ms == 10
    assert math.exp(stage.sigma * 1.6448536269514722) * 10 == pytest.approx(20)


@pytest.mark.parametrize(
    ("stages", "message"),
    [
        ({"bogus_ms": {"p50": 1}}, "stages.bogus_ms: unknown stage"),
        ({"persist_ms": {"p95": 1}}, "stages.persist_ms.p50: required"),
        ({"persist_ms": {"p50": 5, "p95": 2}}, "stages.persist_ms.p95: must be a finite number >= p50"),
        ({"persist_ms": {"p50": 5, "kind": "gpu"}}, "stages.persist_ms.kind"),
    ],
)
def test_profile_errors_name_the_field(stages, message):
    with pytest.raises(ProfileError, match=message.replace(".", r"\.")):
        parse_profile({"stages": stages}, "my.toml")


def test_unknown_profile_name_lists_the_builtins(tmp_path):
    with pytest.raises(ProfileError, match="none, seed"):
        load_profile(str(tmp_path / "missing.toml"))
