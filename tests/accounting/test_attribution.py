"""Attribution of host energy to nodes: exact with the fake meter."""

from __future__ import annotations

import os

import pytest

from carbonedge.accounting import AttributionError, EnergyReading, PowerSample, attribute
from carbonedge.carbon import FakeClock, FakeMeter, cpu_seconds


def reading(cpu_kwh: float = 10.0, ram_kwh: float = 4.0, gpu_kwh: float = 2.0) -> EnergyReading:
    return EnergyReading(
        duration_s=3600.0,
        cpu_energy_kwh=cpu_kwh,
        gpu_energy_kwh=gpu_kwh,
        ram_energy_kwh=ram_kwh,
        method={"cpu": "fake", "gpu": "fake", "ram": "fake"},
        samples=(PowerSample(0.0, 1000.0, 0, 0), PowerSample(3600.0, 3000.0, 0, 0)),
    )


def test_cputime_splits_active_cpu_and_reports_idle_apart() -> None:
    # idle 1000 W for 1 h = 1 kWh; active CPU = 9 kWh, split 3:1
    a = attribute(reading(), {"high": 3.0, "green": 1.0}, idle_cpu_power_w=1000.0)
    assert a.idle.cpu_energy_kwh == pytest.approx(1.0)
    assert a.by_node["high"].cpu_energy_kwh == pytest.approx(6.75)
    assert a.by_node["green"].cpu_energy_kwh == pytest.approx(2.25)
    assert a.by_node["high"].ram_energy_kwh == pytest.approx(3.0)
    assert a.by_node["green"].gpu_energy_kwh == pytest.approx(0.5)
    assert a.residual_kwh() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("ram_method", ["constant", "paper-ram-model"])
def test_cputime_reports_constant_ram_power_as_static(ram_method: str) -> None:
    # A constant RAM power is drawn whether tasks run or not: it is static, not a node's work.
    r = reading()
    static = EnergyReading(
        duration_s=r.duration_s,
        cpu_energy_kwh=r.cpu_energy_kwh,
        gpu_energy_kwh=r.gpu_energy_kwh,
        ram_energy_kwh=r.ram_energy_kwh,
        method={"cpu": "cpu-load-model", "gpu": "nvml", "ram": ram_method},
        samples=r.samples,
    )
    a = attribute(static, {"high": 3.0, "green": 1.0}, idle_cpu_power_w=1000.0)
    assert a.idle.ram_energy_kwh == pytest.approx(4.0)
    assert a.by_node["high"].ram_energy_kwh == 0.0
    assert a.by_node["high"].cpu_energy_kwh == pytest.approx(6.75)
    assert a.by_node["green"].gpu_energy_kwh == pytest.approx(0.5)  # measured GPU still splits
    assert a.residual_kwh() == pytest.approx(0.0, abs=1e-12)


def test_cputime_default_idle_is_lowest_cpu_sample() -> None:
    a = attribute(reading(), {"n": 1.0})
    assert a.idle.cpu_energy_kwh == pytest.approx(1.0)  # 1000 W (lowest sample) x 1 h


def test_cputime_with_host_cpu_puts_the_rest_in_other() -> None:
    a = attribute(reading(), {"a": 1.0, "b": 1.0}, idle_cpu_power_w=1000.0, host_cpu_s=4.0)
    assert a.shares == {"a": 0.25, "b": 0.25}
    assert a.other.cpu_energy_kwh == pytest.approx(4.5)
    assert a.other.ram_energy_kwh == pytest.approx(2.0)
    assert a.attributed_kwh + a.unattributed_kwh == pytest.approx(16.0)


def test_quota_splits_all_host_energy_by_quota_share() -> None:
    quotas = {"Node-High": 1.0, "Node-Medium": 0.6, "Node-Green": 0.4}
    a = attribute(reading(), {}, quotas, method="quota")
    assert a.by_node["Node-High"].energy_kwh == pytest.approx(16.0 * 0.5)
    assert a.by_node["Node-Green"].cpu_energy_kwh == pytest.approx(10.0 * 0.2)
    assert a.unattributed_kwh == 0.0
    assert a.residual_kwh() == pytest.approx(0.0, abs=1e-12)


def test_reconciles_exactly_with_fake_meter() -> None:
    clock = FakeClock()
    meter = FakeMeter(lambda t: (5.0 + t, 1.0, 2.0), clock, interval_s=0.5)
    meter.start()
    clock.advance(7.3)
    r = meter.stop()
    for method, quotas in (("cputime", None), ("quota", {"a": 1.0, "b": 0.6, "c": 0.4})):
        a = attribute(r, {"a": 1.2, "b": 0.7, "c": 0.1}, quotas, method)  # type: ignore[arg-type]
        assert abs(a.residual_kwh()) <= 1e-15
        assert a.attributed_kwh + a.unattributed_kwh == pytest.approx(r.energy_kwh, rel=1e-12)


def test_bad_inputs_raise_attribution_error() -> None:
    with pytest.raises(AttributionError, match="cpu_s_by_node"):
        attribute(reading(), {"a": -1.0})
    with pytest.raises(AttributionError, match="quota_by_node"):
        attribute(reading(), {"a": 1.0}, method="quota")
    with pytest.raises(AttributionError, match="method"):
        attribute(reading(), {"a": 1.0}, method="watts")  # type: ignore[arg-type]


def test_no_cpu_time_leaves_everything_unattributed() -> None:
    a = attribute(reading(), {"a": 0.0}, idle_cpu_power_w=1000.0)
    assert a.by_node["a"].energy_kwh == 0.0
    assert a.unattributed_kwh == pytest.approx(16.0)


def test_cpu_seconds_reads_this_process_and_names_missing_pid() -> None:
    assert cpu_seconds([os.getpid()]) > 0
    with pytest.raises(AttributionError, match="pid 999999999"):
        cpu_seconds([999999999])
