"""Property tests of every file parser a user (or a stranger's file) can reach.

Fleet TOML (``load_fleet``), node-state TOML/JSON (``load_fleet_file``) and CSV intensity traces
(``CsvTrace``) get random bytes, random encodings, random numbers (NaN, inf, huge, negative),
random nesting and mutations of valid files. Each must load, with only finite numbers in what it
returns, or raise a :class:`CarbonEdgeError` whose message is one line; never another exception.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from carbonedge.carbon import CsvTrace
from carbonedge.errors import CarbonEdgeError
from carbonedge.fleet import load_fleet
from carbonedge.fleet.spec import _NODE_KEYS
from carbonedge.scheduling.fleet_file import load_fleet_file

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _mostly(good: st.SearchStrategy[Any], wild: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``good`` four times in five, else ``wild``: most examples get deep into validation,
    the rest probe it (``one_of`` alone would not weight the branches)."""
    return st.sampled_from([True, True, True, True, False]).flatmap(lambda ok: good if ok else wild)


ENCODINGS = _mostly(
    st.just("utf-8"), st.sampled_from(["utf-8-sig", "utf-16", "utf-32", "latin-1", "shift_jis"])
)

# -- values -----------------------------------------------------------------------------------

NUMBERS = (
    st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.sampled_from([0, -1, 0.4, 1.0, 512, 1e9, 1e9 + 1, 1e308, -1e308, 5e-324, 2**53])
)
SCALARS = NUMBERS | st.booleans() | st.text(max_size=12)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


class Deep:
    """An array nested ``depth`` deep, written as text (a real nested list would overflow the
    serialisers' and Hypothesis's own recursion)."""

    def __init__(self, depth: int) -> None:
        self.depth = depth

    def __repr__(self) -> str:
        return f"Deep({self.depth})"

    def text(self) -> str:
        return "[" * self.depth + "1" + "]" * self.depth


DEEP = st.sampled_from([1, 3, 31, 32, 33, 200, 3000]).map(Deep)
PLAUSIBLE = st.floats(min_value=0.1, max_value=1e4) | st.integers(min_value=1, max_value=4096)
FIELD_VALUES = _mostly(PLAUSIBLE, NUMBERS | SCALARS | VALUES | DEEP)

# every key the loader knows, so that a key added there is fuzzed here too
FLEET_KEYS = sorted(_NODE_KEYS)
FLEET_NODE = {
    "name": "a",
    "cpu_quota": 0.5,
    "memory_mb": 512,
    "intensity_g_per_kwh": 400,
    "idle_w": 1,
    "max_w": 5,
}
STATE_KEYS = [
    "name",
    "cpu_quota",
    "memory_mb",
    "avg_time_s",
    "power_w",
    "intensity_g_per_kwh",
    "load",
    "latency_ms",
    "tasks_in_flight",
    "free_cpu",
    "free_memory_mb",
]
STATE_NODE = {
    "name": "a",
    "cpu_quota": 1.0,
    "memory_mb": 1024,
    "avg_time_s": 0.3,
    "power_w": 3.0,
    "intensity_g_per_kwh": 400,
}
NAMES = _mostly(
    st.sampled_from(["a", "node-1", "Node_2.eu"]),
    st.sampled_from(["../x", "/abs", "", "a b", "x" * 64, "caf\u00e9"]) | st.text(max_size=8),
)


def _nodes(base: dict[str, Any], keys: list[str]) -> st.SearchStrategy[Any]:
    overrides = st.dictionaries(
        st.sampled_from(keys) | st.text(max_size=5), FIELD_VALUES, max_size=2
    )
    node = st.builds(lambda over, name: {**base, "name": name, **over}, overrides, NAMES)
    return _mostly(st.lists(node, min_size=1, max_size=3), st.lists(node, max_size=3) | VALUES)


def _documents(base: dict[str, Any], keys: list[str], top: list[str]) -> st.SearchStrategy[Any]:
    extra = _mostly(
        st.just({}),
        st.dictionaries(st.sampled_from(top) | st.text(max_size=5), FIELD_VALUES, max_size=2),
    )
    return st.builds(lambda nodes, more: {"nodes": nodes, **more}, _nodes(base, keys), extra)


# -- serialisers ------------------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, Deep):
        return value.text()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = (f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    return '"?"'


def _toml(document: dict[str, Any]) -> str:
    return "".join(f"{json.dumps(k)} = {_toml_value(v)}\n" for k, v in document.items())


def _json_value(value: Any) -> str:
    """JSON as Python's json module writes it (NaN, Infinity included), with Deep values."""
    if isinstance(value, Deep):
        return value.text()
    if isinstance(value, list):
        return "[" + ", ".join(_json_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = (f"{json.dumps(str(k))}: {_json_value(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    return json.dumps(value)


def _encode(text: str, encoding: str) -> bytes:
    return text.encode(encoding, errors="replace")


def _mutate(data: bytes, edits: list[tuple[int, int]], cut: int | None) -> bytes:
    out = bytearray(data)
    for position, byte in edits:
        if out:
            out[position % len(out)] = byte
    return bytes(out[:cut] if cut is not None else out)


EDITS = st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=3)
CUTS = _mostly(st.none(), st.integers(0, 400))


# -- the property -----------------------------------------------------------------------------


def _check(load: Any, path: Path) -> Any:
    try:
        result = load(path)
    except CarbonEdgeError as exc:
        message = str(exc)
        assert message and "\n" not in message, message
        event(f"refused: {type(exc).__name__}")
        return None
    event("loaded")
    return result


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _fleet_ok(spec: Any) -> None:
    if spec is None:
        return
    for node in spec.nodes:
        numbers = [node.cpu_quota, node.memory_mb, node.pue, node.power.idle_w, node.power.max_w]
        if node.intensity_g_per_kwh is not None:
            numbers.append(node.intensity_g_per_kwh)
        assert all(math.isfinite(x) for x in numbers), node


def _states_ok(states: Any) -> None:
    if states is None:
        return
    for node in states.nodes:
        assert all(math.isfinite(getattr(node, f)) for f in STATE_KEYS if f not in ("name",)), node


# -- fleet TOML -------------------------------------------------------------------------------


@SETTINGS
@given(
    document=_documents(FLEET_NODE, FLEET_KEYS, ["server", "intensity", "fleet"]),
    encoding=ENCODINGS,
)
def test_fleet_toml_documents(tmp_path: Path, document: dict[str, Any], encoding: str) -> None:
    path = _write(tmp_path / "fleet.toml", _encode(_toml(document), encoding))
    _fleet_ok(_check(load_fleet, path))


@SETTINGS
@given(data=st.binary(max_size=300), edits=EDITS, cut=CUTS, valid=st.booleans())
def test_fleet_toml_bytes(
    tmp_path: Path, data: bytes, edits: list[tuple[int, int]], cut: int | None, valid: bool
) -> None:
    if valid:
        data = _mutate(_toml({"nodes": [FLEET_NODE]}).encode(), edits, cut)
    _fleet_ok(_check(load_fleet, _write(tmp_path / "fleet.toml", data)))


# -- node-state TOML / JSON -------------------------------------------------------------------


@SETTINGS
@given(
    document=_documents(STATE_NODE, STATE_KEYS, ["extra", "node", "tasks"]),
    task=st.none()
    | st.dictionaries(st.sampled_from(["task_id", "memory_mb", "cpu"]), FIELD_VALUES),
    encoding=ENCODINGS,
    as_json=st.booleans(),
)
def test_node_state_documents(
    tmp_path: Path,
    document: dict[str, Any],
    task: dict[str, Any] | None,
    encoding: str,
    as_json: bool,
) -> None:
    if task is not None:
        document = {**document, "task": task}
    if as_json:
        text, path = _json_value(document), tmp_path / "states.json"
    else:
        text, path = _toml(document), tmp_path / "states.toml"
    _states_ok(_check(load_fleet_file, _write(path, _encode(text, encoding))))


@SETTINGS
@given(
    data=st.binary(max_size=300),
    edits=EDITS,
    cut=CUTS,
    valid=st.booleans(),
    suffix=st.sampled_from([".json", ".toml", ".txt"]),
)
def test_node_state_bytes(
    tmp_path: Path,
    data: bytes,
    edits: list[tuple[int, int]],
    cut: int | None,
    valid: bool,
    suffix: str,
) -> None:
    if valid:
        document = {"nodes": [STATE_NODE], "task": {"task_id": "t", "memory_mb": 1.0}}
        text = json.dumps(document) if suffix == ".json" else _toml(document)
        data = _mutate(text.encode(), edits, cut)
    _states_ok(_check(load_fleet_file, _write(tmp_path / f"states{suffix}", data)))


# -- CSV traces -------------------------------------------------------------------------------

GOOD_HEADER = st.just("timestamp,zone,gco2_per_kwh")
WILD_HEADER = st.sampled_from(
    [
        "timestamp,zone,gco2_per_kwh",
        " timestamp , zone , gco2_per_kwh ",
        "zone,gco2_per_kwh,timestamp",
        "time,zone,gco2_per_kwh",
        "timestamp,zone",
        "",
    ]
) | st.text(max_size=30)
OFFSETS = st.sampled_from([None, UTC, timezone(timedelta(hours=5)), timezone(-timedelta(hours=9))])
STAMPS = (
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)).map(
        lambda t: t.isoformat() + "Z"
    )
    | st.builds(
        lambda t, tz: t.replace(tzinfo=tz).isoformat(),
        st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)),
        OFFSETS,
    )
    | st.sampled_from(["2024-05-01T00:00:00Z", "0001-01-01T00:00:00+05:00", "yesterday", ""])
    | st.text(max_size=10)
)
INTENSITIES = (
    PLAUSIBLE.map(str)
    | NUMBERS.map(str)
    | st.sampled_from(["nan", "-inf", "1e400", "1_000", " 5 "])
    | st.text(max_size=6)
)
ZONES = st.sampled_from(["DE", "FR"]) | st.sampled_from(["", " DE ", "a,b"]) | st.text(max_size=4)


def _row(stamp: str, zone: str, value: str, order: int) -> str:
    cells = [stamp, zone, value]
    return ",".join(cells[order:] + cells[:order])


HEADERS = _mostly(GOOD_HEADER, WILD_HEADER)
GOOD_ROW = st.builds(
    _row,
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)).map(
        lambda t: t.isoformat() + "Z"
    ),
    st.sampled_from(["DE", "FR"]),
    PLAUSIBLE.map(str),
    st.just(0),
)
WILD_ROW = st.builds(_row, STAMPS, ZONES, INTENSITIES, st.sampled_from([0, 1]))
ROWS = st.lists(_mostly(GOOD_ROW, WILD_ROW), max_size=6)


def _trace_ok(trace: Any) -> None:
    if trace is None:
        return
    for zone in trace.zones:
        for at, value in trace.points(zone):
            assert math.isfinite(value) and value >= 0
            assert trace.intensity(zone, at).g_per_kwh == value


@SETTINGS
@given(
    header=HEADERS,
    rows=ROWS,
    encoding=ENCODINGS,
    newline=st.sampled_from(["\n", "\r\n", "\r"]),
)
def test_csv_traces(
    tmp_path: Path, header: str, rows: list[str], encoding: str, newline: str
) -> None:
    text = newline.join([header, *rows]) + newline
    path = _write(tmp_path / "trace.csv", _encode(text, encoding))
    _trace_ok(_check(CsvTrace, path))


@SETTINGS
@given(data=st.binary(max_size=300), edits=EDITS, cut=CUTS, valid=st.booleans())
def test_csv_bytes(
    tmp_path: Path, data: bytes, edits: list[tuple[int, int]], cut: int | None, valid: bool
) -> None:
    if valid:
        text = (
            "timestamp,zone,gco2_per_kwh\n2024-05-01T00:00:00Z,DE,300\n2024-05-01T01:00:00Z,DE,1\n"
        )
        data = _mutate(text.encode(), edits, cut)
    _trace_ok(_check(CsvTrace, _write(tmp_path / "trace.csv", data)))
