"""RAPL reader against a powercap tree laid out as the kernel documents it.

Source of the layout: Linux kernel, Documentation/power/powercap/powercap.rst, "Example sysfs
interface tree": ``/sys/devices/virtual/powercap/intel-rapl/intel-rapl:0`` (package zone) with
``name`` (``package-0``), ``energy_uj`` ("current energy counter in micro joules"),
``max_energy_range_uj`` ("range of the above energy counter in micro-joules") and subzones
``intel-rapl:0:0``, ``intel-rapl:0:1`` inside it, linked from ``/sys/class/powercap``
(:func:`carbonedge.carbon.sensors.fixtures.write_rapl`). Permission denied: ``energy_uj`` is
root-only since Linux 5.10 (CVE-2020-8694); the tests run as root, so it is simulated both with
a file of mode 000 and with an injected opener raising PermissionError.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from carbonedge.carbon.fakes import FakeClock
from carbonedge.carbon.sensors import RaplSensor, SensorError, SensorMeter
from carbonedge.carbon.sensors.fixtures import RAPL_RANGE_UJ, set_rapl_energy, write_rapl
from carbonedge.carbon.sensors.sysfs import read_file


def test_tree_is_laid_out_as_powercap_rst(tmp_path: Path) -> None:
    write_rapl(tmp_path)
    cls = tmp_path / "sys/class/powercap"
    assert (cls / "intel-rapl:0").is_symlink() and (cls / "intel-rapl:0:0").is_symlink()
    zone = tmp_path / "sys/devices/virtual/powercap/intel-rapl/intel-rapl:0"
    assert (zone / "intel-rapl:0:0" / "name").read_text() == "core\n"
    assert {p.name for p in zone.iterdir()} >= {"name", "energy_uj", "max_energy_range_uj"}
    assert (cls / "intel-rapl:0" / "name").read_text() == "package-0\n"


def test_package_and_dram_summed_core_uncore_reported(tmp_path: Path) -> None:
    write_rapl(tmp_path)
    clock = FakeClock()
    sensor = RaplSensor(tmp_path, clock=clock)
    rails = {r.name: r for r in sensor.rails()}
    assert [rails[n].component for n in ("package-0", "core", "uncore", "dram")] == [
        "cpu",
        "",
        "",
        "ram",
    ]
    assert all(r.kind == "energy" for r in rails.values())
    meter = SensorMeter([sensor], background=False, clock=clock)
    meter.start()
    clock.advance(2.0)
    set_rapl_energy(tmp_path, "intel-rapl:0", 10_000_000 + 30_000_000)  # +30 J
    set_rapl_energy(tmp_path, "intel-rapl:0:0", 6_000_000 + 20_000_000)  # core, inside package
    set_rapl_energy(tmp_path, "intel-rapl:0:2", 2_000_000 + 4_000_000)  # dram +4 J
    reading = meter.stop()
    assert reading.duration_s == pytest.approx(2.0)
    assert reading.cpu_energy_kwh * 3.6e6 == pytest.approx(30.0)  # not 50: core is in package
    assert reading.ram_energy_kwh * 3.6e6 == pytest.approx(4.0)
    assert reading.method == {"cpu": "rapl", "gpu": "none", "ram": "rapl"}
    assert meter.rail_energy_j["rapl:core"] == pytest.approx(20.0)
    assert reading.samples[-1].cpu_w == pytest.approx(15.0)  # 30 J over 2 s


def test_two_sockets_keep_both_dram_rails(tmp_path: Path) -> None:
    write_rapl(
        tmp_path,
        {
            "intel-rapl:0": ("package-0", 0),
            "intel-rapl:0:0": ("dram", 0),
            "intel-rapl:1": ("package-1", 0),
            "intel-rapl:1:0": ("dram", 0),
        },
    )
    rails = RaplSensor(tmp_path).rails()
    assert [(r.name, r.component) for r in rails] == [
        ("package-0", "cpu"),
        ("dram", "ram"),
        ("package-1", "cpu"),
        ("dram@intel-rapl:1:0", "ram"),
    ]


def test_wrap_around_uses_max_energy_range(tmp_path: Path) -> None:
    write_rapl(tmp_path, {"intel-rapl:0": ("package-0", RAPL_RANGE_UJ - 1_000_000)})
    sensor = RaplSensor(tmp_path)
    assert sensor.read().values["package-0"].energy_j == 0.0
    set_rapl_energy(tmp_path, "intel-rapl:0", 2_500_000)  # wrapped: 1 J before + 2.5 J after
    assert sensor.read().values["package-0"].energy_j == pytest.approx(3.5)
    set_rapl_energy(tmp_path, "intel-rapl:0", 4_500_000)
    assert sensor.read().values["package-0"].energy_j == pytest.approx(5.5)


def test_value_above_range_is_garbage(tmp_path: Path) -> None:
    write_rapl(tmp_path, {"intel-rapl:0": ("package-0", 0)}, range_uj=1_000_000)
    sensor = RaplSensor(tmp_path)
    sensor.read()
    set_rapl_energy(tmp_path, "intel-rapl:0", 2_000_000)
    with pytest.raises(SensorError, match="exceeds the counter's range"):
        sensor.read()


@pytest.mark.parametrize("garbage", ["", "abc", "-5", "nan", "12 uJ"])
def test_garbage_counter_is_a_clear_error(tmp_path: Path, garbage: str) -> None:
    write_rapl(tmp_path)
    sensor = RaplSensor(tmp_path)
    (tmp_path / "sys/class/powercap/intel-rapl:0/energy_uj").write_text(garbage + "\n")
    with pytest.raises(SensorError, match=r"intel-rapl:0/energy_uj: (not a number|implausible)"):
        sensor.read()


def test_missing_rail_after_start_names_the_file(tmp_path: Path) -> None:
    write_rapl(tmp_path)
    sensor = RaplSensor(tmp_path)
    (tmp_path / "sys/class/powercap/intel-rapl:0:2/energy_uj").unlink()
    with pytest.raises(SensorError, match=r"intel-rapl:0:2/energy_uj: missing"):
        sensor.read()


def test_missing_tree_or_zone_name(tmp_path: Path) -> None:
    with pytest.raises(SensorError, match="no powercap directory"):
        RaplSensor(tmp_path)
    (tmp_path / "sys/class/powercap").mkdir(parents=True)
    with pytest.raises(SensorError, match="no intel-rapl zones"):
        RaplSensor(tmp_path)
    write_rapl(tmp_path)
    (tmp_path / "sys/class/powercap/intel-rapl:0/name").unlink()
    with pytest.raises(SensorError, match=r"intel-rapl:0/name: missing"):
        RaplSensor(tmp_path)


def test_permission_denied_mode_000(tmp_path: Path) -> None:
    write_rapl(tmp_path)
    energy = tmp_path / "sys/class/powercap/intel-rapl:0/energy_uj"
    energy.chmod(0o000)
    sensor = RaplSensor(tmp_path)
    if os.geteuid() == 0:  # root reads a mode-000 file: the opener test below covers it
        assert sensor.read().values["package-0"].energy_j == 0.0
    else:
        with pytest.raises(SensorError, match=r"permission denied.*CVE-2020-8694"):
            sensor.read()


def test_permission_denied_via_opener(tmp_path: Path) -> None:
    write_rapl(tmp_path)

    def opener(path: Path) -> str:
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(path))
        return read_file(path)

    sensor = RaplSensor(tmp_path, opener=opener)  # names and ranges are world-readable
    with pytest.raises(SensorError, match=r"energy_uj: permission denied; .*root-only since Linux"):
        sensor.read()


def test_energy_is_never_negative_even_if_a_read_fails(tmp_path: Path) -> None:
    write_rapl(tmp_path, {"intel-rapl:0": ("package-0", 5_000_000)})
    clock = FakeClock()
    meter = SensorMeter([RaplSensor(tmp_path, clock=clock)], background=False, clock=clock)
    meter.start()
    clock.advance(1.0)
    set_rapl_energy(tmp_path, "intel-rapl:0", 6_000_000)
    assert meter.poll()
    clock.advance(1.0)
    (tmp_path / "sys/class/powercap/intel-rapl:0/energy_uj").write_text("garbage\n")
    reading = meter.stop()  # final read fails: documented fallback, energy to the last good poll
    assert reading.cpu_energy_kwh * 3.6e6 == pytest.approx(1.0)
    assert reading.duration_s == pytest.approx(2.0)
    assert "final read failed" in reading.info.details["errors"]
    assert "not a number" in reading.info.details["errors"]
