"""SensorMeter (sensors as an EnergyMeter, Eq. 1) and the power-profile fallback sensor.

Scripted sensors and a fake clock make every figure a hand computation: counter rails give last
minus first, power rails the trapezoid integral of their samples (J), converted once to kWh.
The power-profile model is ``PowerProfile.power_w``: ``idle_w + (max_w - idle_w) x load``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from carbonedge.accounting import EnergyMeter
from carbonedge.carbon.errors import MeterError
from carbonedge.carbon.fakes import FakeClock
from carbonedge.carbon.sensors import (
    HostCpuUtilisation,
    ProfileSensor,
    Rail,
    RailValue,
    SensorError,
    SensorMeter,
    SensorSample,
)


class ScriptedSensor:
    """Power rail ``p`` (W) following a script, read at the fake clock's time."""

    def __init__(
        self, clock: FakeClock, watts: Iterator[float | Exception], component: str
    ) -> None:
        self.clock, self.watts, self.component = clock, watts, component
        self.method = f"scripted-{component}"

    def rails(self) -> tuple[Rail, ...]:
        return (Rail("p", self.component, "power", "script"),)

    def read(self) -> SensorSample:
        w = next(self.watts)
        if isinstance(w, Exception):
            raise w
        return SensorSample(self.clock(), {"p": RailValue(power_w=w)})

    def close(self) -> None:
        pass


def test_trapezoid_of_power_samples_and_samples_list() -> None:
    clock = FakeClock()
    meter = SensorMeter(
        [ScriptedSensor(clock, iter([2.0, 4.0, 4.0]), "cpu")], background=False, clock=clock
    )
    meter.start()  # 2 W at t=0
    clock.advance(1.0)
    meter.poll()  # 4 W at t=1
    clock.advance(2.0)
    reading = meter.stop()  # 4 W at t=3
    assert reading.cpu_energy_kwh * 3.6e6 == pytest.approx(0.5 * (2 + 4) * 1 + 4 * 2)
    assert reading.duration_s == pytest.approx(3.0)
    assert [(s.t_s, s.cpu_w) for s in reading.samples] == [(0.0, 2.0), (1.0, 4.0), (3.0, 4.0)]
    assert reading.info.meter == "sensors" and reading.info.details["polls"] == "3"


def test_failed_poll_is_skipped_and_recorded() -> None:
    clock = FakeClock()
    script = iter([1.0, SensorError("rail VDD_IN: garbage"), 1.0])
    meter = SensorMeter([ScriptedSensor(clock, script, "cpu")], background=False, clock=clock)
    meter.start()
    clock.advance(1.0)
    assert meter.poll() is False
    clock.advance(1.0)
    reading = meter.stop()
    assert reading.cpu_energy_kwh * 3.6e6 == pytest.approx(2.0)  # 1 W over 2 s, no hole
    assert reading.info.details["failed_polls"] == "1"
    assert "garbage" in reading.info.details["errors"]


def test_two_sensors_may_not_feed_one_component() -> None:
    clock = FakeClock()
    a = ScriptedSensor(clock, iter([]), "cpu")
    b = ScriptedSensor(clock, iter([]), "cpu")
    b.method = "other"
    with pytest.raises(SensorError, match="cpu is fed by both scripted-cpu and other"):
        SensorMeter([a, b])
    with pytest.raises(SensorError, match="at least one sensor"):
        SensorMeter([])


def test_start_stop_misuse_and_failing_start() -> None:
    clock = FakeClock()
    meter = SensorMeter([ScriptedSensor(clock, iter([1.0] * 3), "cpu")], background=False)
    with pytest.raises(MeterError, match="before start"):
        meter.stop()
    meter.start()
    with pytest.raises(MeterError, match="twice"):
        meter.start()
    failing = SensorMeter([ScriptedSensor(clock, iter([SensorError("x")]), "cpu")])
    with pytest.raises(SensorError):
        failing.start()


def test_background_thread_polls_and_stops() -> None:
    clock = FakeClock()
    meter: EnergyMeter = SensorMeter(
        [ScriptedSensor(clock, iter([3.0] * 1000), "gpu")], interval_s=0.01
    )
    meter.start()
    time.sleep(0.1)
    reading = meter.stop()
    assert int(reading.info.details["polls"]) >= 3
    assert reading.method == {"cpu": "none", "gpu": "scripted-gpu", "ram": "none"}


def test_profile_sensor_models_the_board() -> None:
    clock = FakeClock()
    loads = iter([0.0, 0.5, 1.0])
    sensor = ProfileSensor(1.8, 7.9, utilisation=lambda: next(loads), source="pi5", clock=clock)
    assert sensor.rails()[0].covered == ("cpu", "gpu", "ram")
    meter = SensorMeter([sensor], background=False, clock=clock)
    meter.start()  # 1.8 W
    clock.advance(1.0)
    meter.poll()  # 4.85 W
    clock.advance(1.0)
    reading = meter.stop()  # 7.9 W
    assert reading.cpu_energy_kwh * 3.6e6 == pytest.approx(0.5 * (1.8 + 4.85) + 0.5 * (4.85 + 7.9))
    assert reading.method == {
        "cpu": "power-profile",
        "gpu": "included-in-cpu",
        "ram": "included-in-cpu",
    }
    with pytest.raises(SensorError, match="idle_w <= max_w"):
        ProfileSensor(5.0, 1.0)


def test_host_cpu_utilisation_is_a_fraction() -> None:
    u = HostCpuUtilisation()
    sum(i * i for i in range(200_000))
    assert 0.0 <= u() <= 1.0
