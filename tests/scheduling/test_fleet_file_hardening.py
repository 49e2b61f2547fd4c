"""Node-state files that are hostile or broken: every one is a ConfigError naming the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from carbonedge.errors import ConfigError
from carbonedge.scheduling.fleet_file import MAX_FIELD_VALUE, load_fleet_file
from carbonedge.validation import MAX_CONFIG_BYTES, MAX_NESTING_DEPTH

TOML_NODE = """
[[nodes]]
name = "{name}"
cpu_quota = 1.0
memory_mb = 1024
avg_time_s = 0.3
power_w = 3.0
intensity_g_per_kwh = {intensity}
"""


def _node(**fields: Any) -> dict[str, Any]:
    base = {
        "name": "a",
        "cpu_quota": 1.0,
        "memory_mb": 1024,
        "avg_time_s": 0.3,
        "power_w": 3.0,
        "intensity_g_per_kwh": 400,
    }
    return {**base, **fields}


def _write(tmp_path: Path, name: str, data: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8")
    return path


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_not_utf8_is_a_clear_error(tmp_path: Path, suffix: str) -> None:
    text = (
        TOML_NODE.format(name="a", intensity=1) + "# \xff\n"
        if suffix == ".toml"
        else json.dumps({"nodes": [_node(name="caf\xe9")]}, ensure_ascii=False)
    )
    path = _write(tmp_path, "states" + suffix, text.encode("latin-1"))
    with pytest.raises(ConfigError, match=r"states\.(toml|json): fleet file is not UTF-8"):
        load_fleet_file(path)


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_utf8_bom_loads(tmp_path: Path, suffix: str) -> None:
    text = (
        TOML_NODE.format(name="a", intensity=1)
        if suffix == ".toml"
        else json.dumps({"nodes": [_node()]})
    )
    path = _write(tmp_path, "states" + suffix, b"\xef\xbb\xbf" + text.encode())
    assert [n.name for n in load_fleet_file(path).nodes] == ["a"]


def test_deeply_nested_json_is_a_clear_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "deep.json", "[" * 100_000 + "]" * 100_000)
    with pytest.raises(ConfigError, match=r"deep\.json: not valid JSON: nests deeper"):
        load_fleet_file(path)
    moderately = {"nodes": [_node(load=json.loads("[" * 40 + "]" * 40))]}
    path = _write(tmp_path, "deep2.json", json.dumps(moderately))
    with pytest.raises(ConfigError, match=f"nests deeper than {MAX_NESTING_DEPTH} levels"):
        load_fleet_file(path)


def test_deeply_nested_toml_is_a_clear_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "deep.toml", "x = " + "[" * 5000 + "]" * 5000)
    with pytest.raises(ConfigError, match=r"deep\.toml: not valid TOML"):
        load_fleet_file(path)


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"])
def test_non_finite_json_numbers_are_refused(tmp_path: Path, token: str) -> None:
    text = json.dumps({"nodes": [_node(power_w=12345.5)]}).replace("12345.5", token)
    path = _write(tmp_path, "states.json", text)
    with pytest.raises(ConfigError, match=r"states\.json: .*(finite|not a number JSON allows)"):
        load_fleet_file(path)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
@pytest.mark.parametrize("field", ["cpu_quota", "load", "latency_ms", "free_cpu"])
def test_non_finite_toml_numbers_are_refused(tmp_path: Path, field: str, value: str) -> None:
    text = TOML_NODE.format(name="a", intensity=1)
    lines = [ln for ln in text.splitlines() if not ln.startswith(f"{field} =")]
    path = _write(tmp_path, "s.toml", "\n".join([*lines, f"{field} = {value}", ""]))
    with pytest.raises(ConfigError, match=rf"s\.toml: nodes\[0\]\.{field} must be a finite number"):
        load_fleet_file(path)


def test_non_finite_task_numbers_are_refused(tmp_path: Path) -> None:
    text = "[task]\nmemory_mb = nan\n" + TOML_NODE.format(name="a", intensity=1)
    with pytest.raises(ConfigError, match=r"task\.memory_mb must be a finite number, got nan"):
        load_fleet_file(_write(tmp_path, "s.toml", text))


def test_huge_numbers_are_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "s.toml", TOML_NODE.format(name="a", intensity="1e300"))
    with pytest.raises(ConfigError, match=r"intensity_g_per_kwh: must be at most"):
        load_fleet_file(path)
    assert MAX_FIELD_VALUE == 1e9
    digits = json.dumps({"nodes": [_node(power_w=1)]}).replace(
        '"power_w": 1', '"power_w": ' + "9" * 5000
    )
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_fleet_file(_write(tmp_path, "s.json", digits))


@pytest.mark.parametrize("name", ["../x", "/abs", "a b", "..", "-x", "a" * 64, "\u00e9t\u00e9"])
def test_bad_node_names_are_refused(tmp_path: Path, name: str) -> None:
    path = _write(tmp_path, "s.json", json.dumps({"nodes": [_node(name=name)]}))
    with pytest.raises(ConfigError, match=r"s\.json: nodes\[0\]\.name: must be 1-63 letters"):
        load_fleet_file(path)


def test_task_id_must_be_a_string_or_integer(tmp_path: Path) -> None:
    path = _write(tmp_path, "s.json", json.dumps({"task": {"task_id": [1]}, "nodes": [_node()]}))
    with pytest.raises(ConfigError, match="task_id: must be a string or an integer"):
        load_fleet_file(path)


def test_unknown_section_with_odd_key_stays_on_one_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "s.json", json.dumps({"bad\nkey": 1, "nodes": [_node()]}))
    with pytest.raises(ConfigError, match="unknown section") as info:
        load_fleet_file(path)
    assert "\n" not in str(info.value)


def test_oversized_file_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "s.toml", b" " * (MAX_CONFIG_BYTES + 1))
    with pytest.raises(ConfigError, match="larger than"):
        load_fleet_file(path)
