"""CSV intensity traces that are hostile or broken: each is an IntensityError naming the line."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from carbonedge.carbon import CsvTrace, IntensityError
from carbonedge.carbon import trace as trace_module

TRACE = (
    "timestamp,zone,gco2_per_kwh\n"
    "2024-05-01T00:00:00Z,DE,300\n"
    "2024-05-01T01:00:00Z,DE,200\n"
    "2024-05-01T02:00:00Z,DE,100\n"
)
AT = datetime(2024, 5, 1, 1, 30, tzinfo=UTC)


def _write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "trace.csv"
    path.write_bytes(data)
    return path


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    trace = CsvTrace(_write(tmp_path, b"\xef\xbb\xbf" + TRACE.encode()))
    assert trace.intensity("DE", AT).g_per_kwh == 200.0


def test_header_with_spaces_and_crlf_is_accepted(tmp_path: Path) -> None:
    text = TRACE.replace("timestamp,zone,gco2_per_kwh", "timestamp, zone , gco2_per_kwh")
    trace = CsvTrace(_write(tmp_path, text.replace("\n", "\r\n").encode()))
    assert trace.intensity("DE", AT).g_per_kwh == 200.0


@pytest.mark.parametrize("encoding", ["latin-1", "utf-16", "utf-32"])
def test_not_utf8_is_a_clear_error(tmp_path: Path, encoding: str) -> None:
    data = (TRACE + "2024-05-01T03:00:00Z,Z\xfcrich,50\n").encode(encoding)
    with pytest.raises(IntensityError, match=r"trace\.csv: intensity trace is not UTF-8 text"):
        CsvTrace(_write(tmp_path, data))


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("2024-05-01T03:00:00Z,DE,nan", "must be >= 0"),
        ("2024-05-01T03:00:00Z,DE,inf", "must be >= 0"),
        ("2024-05-01T03:00:00Z,DE,-1", "must be >= 0"),
        ("2024-05-01T03:00:00Z,DE,1e400", "must be >= 0"),
        ("2024-05-01T03:00:00Z,DE,1e9", "<= 10000"),
        ("2024-05-01T03:00:00Z,DE,high", "is not a number: 'high'"),
        ("0001-01-01T00:00:00+05:00,DE,1", "field 'timestamp' is not ISO 8601"),
        ("9999-12-31T23:59:59-05:00,DE,1", "field 'timestamp' is not ISO 8601"),
    ],
)
def test_bad_rows_name_line_and_field(tmp_path: Path, row: str, message: str) -> None:
    with pytest.raises(IntensityError, match=rf"trace\.csv:5: .*{message}"):
        CsvTrace(_write(tmp_path, (TRACE + row + "\n").encode()))


def test_csv_syntax_errors_are_intensity_errors(tmp_path: Path) -> None:
    with pytest.raises(IntensityError, match=r"trace\.csv:5: field 'gco2_per_kwh'"):
        CsvTrace(_write(tmp_path, (TRACE + "2024-05-01T03:00:00Z,DE,1\x00\n").encode()))
    huge_field = TRACE + "2024-05-01T03:00:00Z," + "Z" * 200_000 + ",1\n"
    with pytest.raises(IntensityError, match="not a valid CSV file"):
        CsvTrace(_write(tmp_path, huge_field.encode()))


def test_long_values_are_cut_in_messages(tmp_path: Path) -> None:
    with pytest.raises(IntensityError) as info:
        CsvTrace(_write(tmp_path, (TRACE + "x" * 100_000 + ",DE,1\n").encode()))
    assert len(str(info.value)) < 300


def test_oversized_trace_is_refused_before_reading_it_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trace_module, "MAX_TRACE_BYTES", len(TRACE) - 1)
    with pytest.raises(IntensityError, match="larger than"):
        CsvTrace(_write(tmp_path, TRACE.encode()))


def test_points_are_sorted_utc(tmp_path: Path) -> None:
    trace = CsvTrace(_write(tmp_path, TRACE.encode()))
    points = trace.points("DE")
    assert [p[1] for p in points] == [300.0, 200.0, 100.0]
    assert points[0][0] == datetime(2024, 5, 1, tzinfo=UTC)
    with pytest.raises(IntensityError, match="no rows for zone 'FR'"):
        trace.points("FR")
