"""`monitor_command`'s idle baseline: measured before the command, or the window's lowest sample."""

from __future__ import annotations

import sys
import time

import psutil
import pytest

from carbonedge.carbon import FakeMeter, MonitorResult, StaticIntensity, monitor_command

BUSY = [
    sys.executable,
    "-c",
    "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.4: pass",
]


class TwoPhaseMeter(FakeMeter):
    """1 W of CPU in the first window (the idle baseline), 4 W in every later one."""

    def __init__(self) -> None:
        self.windows = 0
        super().__init__(
            lambda _t: (1.0 if self.windows == 1 else 4.0, 0.0, 0.0), time.monotonic, 0.1
        )

    def start(self) -> None:
        self.windows += 1
        super().start()


def run(baseline_s: float) -> MonitorResult:
    return monitor_command(
        BUSY, TwoPhaseMeter(), StaticIntensity({"Z": 500.0}), "Z", baseline_s=baseline_s
    )


def test_measured_baseline_gives_a_busy_command_its_active_energy() -> None:
    result = run(baseline_s=0.3)
    active_kwh = 3.0 * result.reading.duration_s / 3.6e6  # 4 W busy - 1 W idle
    # The host's busy seconds count every process on the host (other load too) in whole clock
    # ticks, the command's are exact: its share is capped at 1, as attribute() does.
    share = min(1.0, result.command_cpu_s / result.host_cpu_s)
    assert result.command_energy_kwh == pytest.approx(active_kwh * share, rel=1e-9)
    assert result.command_cpu_s >= 0.4  # the command's own busy loop, counted
    # the host's busy seconds are those of the window, not since boot: at most every CPU busy
    # for the whole window (plus a clock tick per CPU)
    cpus = psutil.cpu_count() or 1
    assert 0 < result.host_cpu_s <= cpus * (result.reading.duration_s + 0.02)


def test_window_minimum_baseline_counts_a_constant_busy_window_as_idle() -> None:
    energy_kwh = run(baseline_s=0.0).command_energy_kwh
    assert energy_kwh == 0.0  # every sample is 4 W, so the "idle" floor is 4 W
