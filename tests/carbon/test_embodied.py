"""Embodied carbon (paper V.A future work): SCI's M term, hand-computed values, errors, CLI."""

from __future__ import annotations

import json
import math

import pytest

from carbonedge.carbon import SECONDS_PER_YEAR, EmbodiedError, EmbodiedProfile, embodied_g
from carbonedge.cli.main import main
from carbonedge.errors import CarbonEdgeError

PI = EmbodiedProfile(20.0, 4.0, "test figure")


def test_hand_computed_quarter_device_for_an_hour() -> None:
    # 4 years = 4 x 365.25 x 86400 = 126,230,400 s; 20,000 g / that = 1.5844e-4 g/s
    assert PI.lifetime_s == 126_230_400.0
    assert PI.g_per_s == pytest.approx(20_000 / 126_230_400, rel=1e-12)
    # x 3600 s = 0.570386 g for the whole device, x 0.25 share = 0.142596 g
    assert embodied_g(PI, 3600.0, 0.25) == pytest.approx(0.1425964, rel=1e-6)
    assert embodied_g(PI, 3600.0) == pytest.approx(0.5703856, rel=1e-6)


def test_sci_worked_example_one_tonne_four_years_one_hour() -> None:
    # The SCI specification's example: 1000 kg over 4 years, reserved for 1 hour -> about 28 g
    # (it uses 365-day years: 28.54 g; Julian years give 28.52 g).
    grams = embodied_g(EmbodiedProfile(1000.0, 4.0, "SCI example"), 3600.0)
    assert grams == pytest.approx(1e6 * 3600 / (4 * SECONDS_PER_YEAR))
    assert 28.4 < grams < 28.6


def test_whole_life_charges_the_whole_footprint_and_zero_charges_nothing() -> None:
    assert embodied_g(PI, PI.lifetime_s) == pytest.approx(20_000.0)
    assert embodied_g(PI, PI.lifetime_s, 0.4) == pytest.approx(8_000.0)
    assert embodied_g(PI, 0.0) == 0.0
    assert embodied_g(PI, 3600.0, 0.0) == 0.0


def test_linear_in_time_and_share() -> None:
    one = embodied_g(PI, 10.0, 0.1)
    assert embodied_g(PI, 30.0, 0.1) == pytest.approx(3 * one)
    assert embodied_g(PI, 10.0, 0.5) == pytest.approx(5 * one)


@pytest.mark.parametrize(
    ("kg", "years", "field"),
    [
        (0.0, 4.0, "embodied_kgco2e"),
        (-1.0, 4.0, "embodied_kgco2e"),
        (math.nan, 4.0, "embodied_kgco2e"),
        (math.inf, 4.0, "embodied_kgco2e"),
        (20.0, 0.0, "lifetime_years"),
        (20.0, -2.0, "lifetime_years"),
    ],
)
def test_profile_rejects_non_positive_values(kg: float, years: float, field: str) -> None:
    with pytest.raises(EmbodiedError, match=field):
        EmbodiedProfile(kg, years, "x")


def test_profile_needs_a_source_and_errors_are_user_errors() -> None:
    with pytest.raises(EmbodiedError, match="source"):
        EmbodiedProfile(1.0, 1.0, "  ")
    assert issubclass(EmbodiedError, CarbonEdgeError) and issubclass(EmbodiedError, ValueError)


@pytest.mark.parametrize(
    ("busy_s", "share", "match"),
    [(-1.0, 1.0, "busy_s"), (math.nan, 1.0, "busy_s"), (1.0, 1.5, "share"), (1.0, -0.1, "share")],
)
def test_embodied_g_rejects_bad_occupancy(busy_s: float, share: float, match: str) -> None:
    with pytest.raises(EmbodiedError, match=match):
        embodied_g(PI, busy_s, share)


def test_cli_embodied_text_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["embodied", "--kgco2e", "20", "--lifetime-years", "4", "--busy-s", "3600"]
    assert main([*args, "--share", "0.25"]) == 0
    out = capsys.readouterr().out
    assert "0.1426 gCO2e" in out and "SCI" in out
    assert main([*args, "--share", "0.25", "--json", "--source", "vendor PCF 2024"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["embodied_g"] == pytest.approx(0.1425964, rel=1e-6)
    assert payload["source"] == "vendor PCF 2024" and payload["share"] == 0.25


@pytest.mark.parametrize(
    ("extra", "option"),
    [
        (["--kgco2e", "-1", "--lifetime-years", "4", "--busy-s", "1"], "--kgco2e"),
        (["--kgco2e", "1", "--lifetime-years", "0", "--busy-s", "1"], "--lifetime-years"),
        (["--kgco2e", "1", "--lifetime-years", "4", "--busy-s", "-5"], "--busy-s"),
        (["--kgco2e", "1", "--lifetime-years", "4", "--busy-s", "1", "--share", "2"], "--share"),
    ],
)
def test_cli_embodied_bad_input_is_one_line_exit_two(
    extra: list[str], option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["embodied", *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("carbonedge: error:") and option in err
