"""Static, CodeCarbon-country and CSV-trace intensity sources."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from carbonedge.carbon import CountryMixIntensity, CsvTrace, IntensityError, StaticIntensity


def test_static_per_node_values_and_default() -> None:
    src = StaticIntensity({"Node-High": 620.0, "Node-Green": 380.0}, default=530.0)
    assert src.intensity("Node-High").g_per_kwh == 620.0
    assert src.intensity("elsewhere").g_per_kwh == 530.0
    with pytest.raises(IntensityError, match="Node-X"):
        StaticIntensity({"a": 1.0}).intensity("Node-X")


def test_country_mix_reads_codecarbon_data() -> None:
    src = CountryMixIntensity()
    fra = src.intensity("fra")
    assert fra.zone == "FRA" and 20 < fra.g_per_kwh < 150
    assert "global_energy_mix" in fra.source
    assert src.intensity("WORLD").g_per_kwh == 475.0
    with pytest.raises(IntensityError, match="XXX"):
        src.intensity("XXX")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "trace.csv"
    path.write_text(text)
    return path


TRACE = """timestamp,zone,gco2_per_kwh
2024-05-01T00:00:00Z,DE,400
2024-05-01T02:00:00Z,DE,200
2024-05-01T00:00:00+00:00,FR,50
"""


def test_csv_step_and_linear(tmp_path: Path) -> None:
    path = write(tmp_path, TRACE)
    at = datetime(2024, 5, 1, 1, 30, tzinfo=UTC)
    assert CsvTrace(path).intensity("DE", at).g_per_kwh == 400.0
    assert CsvTrace(path, "linear").intensity("DE", at).g_per_kwh == pytest.approx(250.0)
    later = datetime(2024, 6, 1, tzinfo=UTC)
    assert CsvTrace(path, "linear").intensity("DE", later).g_per_kwh == 200.0
    assert CsvTrace(path).intensity("FR", datetime(2024, 5, 1, 0, 0)).g_per_kwh == 50.0
    assert CsvTrace(path).zones == ["DE", "FR"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("time,zone,gco2_per_kwh\n", "missing column"),
        ("timestamp,zone,gco2_per_kwh\nyesterday,DE,1\n", r"trace.csv:2: field 'timestamp'"),
        ("timestamp,zone,gco2_per_kwh\n2024-05-01T00:00:00Z,DE,lots\n", "trace.csv:2: field 'gco2"),
        ("timestamp,zone,gco2_per_kwh\n2024-05-01T00:00:00Z,,1\n", "field 'zone' is empty"),
        ("timestamp,zone,gco2_per_kwh\n2024-05-01T00:00:00Z,DE,-5\n", ">= 0"),
        ("timestamp,zone,gco2_per_kwh\n", "no rows"),
    ],
)
def test_csv_errors_name_file_line_and_field(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(IntensityError, match=message):
        CsvTrace(write(tmp_path, text))


def test_csv_query_errors(tmp_path: Path) -> None:
    trace = CsvTrace(write(tmp_path, TRACE))
    with pytest.raises(IntensityError, match="before the first point"):
        trace.intensity("DE", datetime(2023, 1, 1, tzinfo=UTC))
    with pytest.raises(IntensityError, match="no rows for zone 'PL'"):
        trace.intensity("PL")
    with pytest.raises(IntensityError, match="cannot read intensity trace"):
        CsvTrace(tmp_path / "missing.csv")
