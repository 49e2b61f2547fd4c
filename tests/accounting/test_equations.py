"""Eq. 1 and Eq. 2 against hand computations, and the paper's RAM model."""

from __future__ import annotations

import pytest

from carbonedge.accounting import carbon_g, integrate_kwh, paper_ram_power_w
from carbonedge.accounting.units import kwh_of_power
from carbonedge.carbon import FakeClock, FakeMeter, MeterError


def test_trapezoid_matches_hand_computation() -> None:
    # 10 W -> 20 W over 2 s, then 20 W -> 0 W over 1 s: 30 J + 10 J = 40 J
    assert integrate_kwh([0.0, 2.0, 3.0], [10.0, 20.0, 0.0]) == pytest.approx(40 / 3.6e6)


def test_step_rule_uses_interval_mean_power() -> None:
    # first sample marks the start; 20 W for 2 s + 0 W for 1 s = 40 J
    assert integrate_kwh([0.0, 2.0, 3.0], [10.0, 20.0, 0.0], rule="step") == pytest.approx(
        40 / 3.6e6
    )


def test_integration_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="increase"):
        integrate_kwh([1.0, 0.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="values"):
        integrate_kwh([0.0], [1.0, 2.0])
    assert integrate_kwh([0.0], [5.0]) == 0.0


def test_eq2_carbon_hand_computation() -> None:
    # 0.002 kWh x 530 g/kWh x 1.2 = 1.272 g
    assert carbon_g(0.002, 530.0, 1.2) == pytest.approx(1.272)
    assert carbon_g(0.002, 530.0) == pytest.approx(1.06)
    with pytest.raises(ValueError, match="pue"):
        carbon_g(1.0, 1.0, 0.9)
    with pytest.raises(ValueError, match="energy_kwh"):
        carbon_g(-1.0, 1.0)


def test_paper_ram_model_is_0375_w_per_gb() -> None:
    assert paper_ram_power_w(16.0) == pytest.approx(6.0)
    assert kwh_of_power(6.0, 3600.0) == pytest.approx(0.006)


def test_fake_meter_integrates_profile_exactly() -> None:
    clock = FakeClock(100.0)

    def profile(t: float) -> tuple[float, float, float]:
        return 10.0 + 2.0 * t, 0.0, 3.0  # linear CPU ramp: trapezoid is exact

    meter = FakeMeter(profile, clock, interval_s=1.0)
    meter.start()
    clock.advance(4.5)
    reading = meter.stop()
    # CPU: integral of 10 + 2t over 0..4.5 = 45 + 20.25 = 65.25 J; RAM: 3 W x 4.5 s = 13.5 J
    assert reading.duration_s == pytest.approx(4.5)
    assert reading.cpu_energy_kwh == pytest.approx(65.25 / 3.6e6)
    assert reading.ram_energy_kwh == pytest.approx(13.5 / 3.6e6)
    assert reading.energy_kwh == pytest.approx(78.75 / 3.6e6)
    assert [s.t_s for s in reading.samples] == [0.0, 1.0, 2.0, 3.0, 4.0, 4.5]
    assert reading.mean_power_w("cpu") == pytest.approx(65.25 / 4.5)
    with pytest.raises(MeterError):
        meter.stop()
