"""The real CodeCarbon tracker: a few seconds each, marked slow."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from carbonedge.carbon import (
    CodeCarbonConfig,
    CodeCarbonMeter,
    MeterError,
    attribute,
    cpu_seconds,
    host_busy_cpu_seconds,
    integrate_kwh,
    paper_ram_power_w,
)

pytestmark = pytest.mark.slow

BURN = """
import sys, time
burn_s, total_s = float(sys.argv[1]), float(sys.argv[2])
start = time.monotonic()
while time.monotonic() - start < total_s:
    t = time.monotonic()
    while time.monotonic() - t < burn_s * 0.05:
        pass
    time.sleep((1 - burn_s) * 0.05)
print("done", flush=True)
sys.stdin.readline()  # stay alive until the test has read our CPU time
"""


def test_real_tracker_reports_components_methods_and_samples() -> None:
    meter = CodeCarbonMeter(CodeCarbonConfig(country_iso_code="FRA", measure_power_secs=0.5))
    meter.start()
    time.sleep(1.6)
    r = meter.stop()
    assert 1.4 < r.duration_s < 5.0
    assert r.cpu_energy_kwh > 0 and r.ram_energy_kwh > 0
    assert set(r.method) == {"cpu", "gpu", "ram"}
    assert r.method["cpu"] in {"rapl", "cpu-load-model", "constant", "power-gadget"}
    assert r.info.meter == "codecarbon" and r.info.version.startswith("3.")
    assert r.info.country_iso_code == "FRA"
    assert len(r.samples) >= 3
    times = [s.t_s for s in r.samples]
    # the samples are interval means: step-integrating them gives CodeCarbon's own total
    assert integrate_kwh(times, [s.cpu_w for s in r.samples], "step") == pytest.approx(
        r.cpu_energy_kwh, rel=0.01
    )
    assert integrate_kwh(times, [s.ram_w for s in r.samples], "step") == pytest.approx(
        r.ram_energy_kwh, rel=0.01
    )
    with pytest.raises(MeterError):
        meter.stop()


def test_paper_ram_model_replaces_codecarbon_ram() -> None:
    meter = CodeCarbonMeter(CodeCarbonConfig(measure_power_secs=0.5, ram_model="paper"))
    meter.start()
    time.sleep(0.6)
    r = meter.stop()
    ram_gb = float(r.info.details["ram_total_gb"])
    assert r.method["ram"] == "paper-ram-model"
    assert r.mean_power_w("ram") == pytest.approx(paper_ram_power_w(ram_gb), rel=1e-6)


def test_reconciliation_with_real_worker_processes() -> None:
    meter = CodeCarbonMeter(CodeCarbonConfig(measure_power_secs=0.5))
    workers = {
        "Node-High": subprocess.Popen(
            [sys.executable, "-c", BURN, "0.9", "2.5"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        ),
        "Node-Green": subprocess.Popen(
            [sys.executable, "-c", BURN, "0.3", "2.5"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        ),
    }
    try:
        meter.start()
        before = {n: cpu_seconds([p.pid]) for n, p in workers.items()}
        host_before = host_busy_cpu_seconds()
        for p in workers.values():
            assert p.stdout is not None and p.stdout.readline().strip() == "done"
        used = {n: cpu_seconds([p.pid]) - before[n] for n, p in workers.items()}
        host_cpu_s = host_busy_cpu_seconds() - host_before
        reading = meter.stop()
    finally:
        for p in workers.values():
            p.communicate("\n", timeout=10)
    assert used["Node-High"] > used["Node-Green"] > 0
    for a in (
        attribute(reading, used),
        attribute(reading, used, host_cpu_s=host_cpu_s),
        attribute(reading, used, {"Node-High": 1.0, "Node-Green": 0.4}, "quota"),
    ):
        total = a.attributed_kwh + a.unattributed_kwh
        assert total == pytest.approx(reading.energy_kwh, rel=0.01)
        assert a.by_node["Node-High"].energy_kwh > a.by_node["Node-Green"].energy_kwh > 0
