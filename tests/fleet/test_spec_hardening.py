"""Fleet files that are hostile or broken: every one is a ConfigError naming file and field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from carbonedge.errors import ConfigError
from carbonedge.fleet import load_fleet
from carbonedge.fleet.spec import MAX_FLEET_NODES, parse_fleet
from carbonedge.validation import MAX_CONFIG_BYTES, MAX_FIELD_VALUE, MAX_NESTING_DEPTH

NODE = """
[[nodes]]
name = "{name}"
cpu_quota = {quota}
memory_mb = 512
intensity_g_per_kwh = 400
idle_w = 1
max_w = 5
"""


def _write(tmp_path: Path, data: str | bytes) -> Path:
    path = tmp_path / "fleet.toml"
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8")
    return path


def test_fleet_file_not_utf8_is_a_clear_error(tmp_path: Path) -> None:
    path = _write(
        tmp_path, NODE.format(name="a", quota=1).replace("400", "400 # \xe9").encode("latin-1")
    )
    with pytest.raises(ConfigError, match=r"fleet\.toml: fleet file is not UTF-8 text \(byte 0xe9"):
        load_fleet(path)


def test_fleet_file_utf16_is_a_clear_error(tmp_path: Path) -> None:
    path = _write(tmp_path, NODE.format(name="a", quota=1).encode("utf-16"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_fleet(path)


def test_fleet_file_with_utf8_bom_loads(tmp_path: Path) -> None:
    path = _write(tmp_path, b"\xef\xbb\xbf" + NODE.format(name="a", quota=1).encode())
    assert load_fleet(path).names == ("a",)


@pytest.mark.parametrize("value", ["nan", "+nan", "-nan", "inf", "+inf", "-inf"])
@pytest.mark.parametrize(
    "field", ["cpu_quota", "memory_mb", "intensity_g_per_kwh", "idle_w", "max_w", "pue"]
)
def test_non_finite_numbers_are_refused_at_load(tmp_path: Path, field: str, value: str) -> None:
    text = NODE.format(name="a", quota=1)
    text = "\n".join(
        f"{field} = {value}" if line.startswith(f"{field} =") else line
        for line in text.splitlines()
    )
    if f"{field} =" not in text:
        text += f"\n{field} = {value}\n"
    with pytest.raises(
        ConfigError, match=rf"fleet\.toml: nodes\[0\]\.{field} .*finite.*{value.lstrip('+-')}"
    ):
        load_fleet(_write(tmp_path, text))


def test_nan_quota_names_file_field_and_value(tmp_path: Path) -> None:
    path = _write(tmp_path, NODE.format(name="a", quota="nan"))
    with pytest.raises(ConfigError) as info:
        load_fleet(path)
    assert str(info.value) == "fleet.toml: nodes[0].cpu_quota must be a finite number, got nan"


def test_embodied_inf_is_refused(tmp_path: Path) -> None:
    text = NODE.format(name="a", quota=1) + "embodied_kgco2e = inf\nlifetime_years = 4\n"
    with pytest.raises(ConfigError, match=r"embodied_kgco2e must be a finite number, got inf"):
        load_fleet(_write(tmp_path, text))


def test_huge_numbers_are_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, NODE.format(name="a", quota="1e300"))
    with pytest.raises(
        ConfigError, match=re.escape(f"cpu_quota must be at most {MAX_FIELD_VALUE:g}")
    ):
        load_fleet(path)
    huge_int = _write(tmp_path, NODE.format(name="a", quota="9" * 5000))
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_fleet(huge_int)


def test_unknown_top_level_table_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "[extra]\nx = 1\n" + NODE.format(name="a", quota=1))
    with pytest.raises(
        ConfigError, match=r"fleet\.toml: 'extra' is not a known table \(known: nodes\)"
    ):
        load_fleet(path)
    with pytest.raises(ConfigError, match="'node' is not a known table"):
        load_fleet(
            _write(tmp_path, NODE.format(name="a", quota=1).replace("[[nodes]]", "[[node]]"))
        )


@pytest.mark.parametrize(
    "name",
    [
        "../escape",
        "..",
        ".",
        "/etc",
        "a/b",
        "a b",
        "-leading-dash",
        ".hidden",
        "a" * 64,
        "caf\u00e9",
        "tab\there",
        "new\nline",
        "nul\x00",
    ],
)
def test_bad_node_names_are_refused(name: str) -> None:
    node = {"name": name, "cpu_quota": 1, "memory_mb": 512, "intensity_g_per_kwh": 1}
    with pytest.raises(ConfigError, match=r"src: nodes\[0\]\.name must be 1-63 letters") as info:
        parse_fleet({"nodes": [{**node, "idle_w": 0, "max_w": 1}]}, "src")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["a", "node-high", "Node_1.eu-west", "9", "a" * 63])
def test_good_node_names_load(name: str) -> None:
    node = {"name": name, "cpu_quota": 1, "memory_mb": 512, "intensity_g_per_kwh": 1}
    assert parse_fleet({"nodes": [{**node, "idle_w": 0, "max_w": 1}]}, "src").names == (name,)


def test_deep_nesting_is_refused_without_recursion_error(tmp_path: Path) -> None:
    deep = NODE.format(name="a", quota=1) + "pue = " + "[" * 5000 + "]" * 5000 + "\n"
    with pytest.raises(ConfigError, match=r"fleet\.toml: invalid TOML"):
        load_fleet(_write(tmp_path, deep))
    dotted = "nodes = 1\n" + ".".join(["k"] * 500) + " = 1\n"
    with pytest.raises(ConfigError, match="is not a known table"):
        load_fleet(_write(tmp_path, dotted))
    nested: object = 1
    for _ in range(MAX_NESTING_DEPTH + 5):
        nested = [nested]
    with pytest.raises(ConfigError, match=f"nests deeper than {MAX_NESTING_DEPTH} levels"):
        parse_fleet({"nodes": [nested]}, "src")


def test_oversized_file_is_refused_before_parsing(tmp_path: Path) -> None:
    path = _write(tmp_path, b"#" * (MAX_CONFIG_BYTES + 1))
    with pytest.raises(ConfigError, match=f"larger than {MAX_CONFIG_BYTES} bytes"):
        load_fleet(path)


def test_too_many_nodes_are_refused() -> None:
    nodes = [
        {
            "name": f"n{i}",
            "cpu_quota": 1,
            "memory_mb": 1,
            "intensity_g_per_kwh": 1,
            "max_w": 1,
            "idle_w": 0,
        }
        for i in range(MAX_FLEET_NODES + 1)
    ]
    with pytest.raises(ConfigError, match=f"more than {MAX_FLEET_NODES} nodes"):
        parse_fleet({"nodes": nodes}, "src")


def test_error_messages_cut_long_values() -> None:
    node = {"name": "a", "cpu_quota": "x" * 100_000, "memory_mb": 1, "intensity_g_per_kwh": 1}
    with pytest.raises(ConfigError) as info:
        parse_fleet({"nodes": [node]}, "src")
    assert len(str(info.value)) < 200


def test_a_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read fleet file"):
        load_fleet(tmp_path)
