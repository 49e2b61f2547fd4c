"""Optional embodied-carbon fields in fleet TOML and device profiles (paper V.A future work)."""

from __future__ import annotations

from pathlib import Path

import pytest

from carbonedge.carbon import embodied_g
from carbonedge.errors import ConfigError
from carbonedge.fleet import device_profile_names, load_fleet
from carbonedge.fleet.spec import FleetSpec, device_embodied, load_device_profile

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fleet.toml"

NODE = """
[[nodes]]
name = "pi"
cpu_quota = 1.0
memory_mb = 1024
intensity_g_per_kwh = 380
idle_w = 1.6
max_w = 5.0
"""


def _load(tmp_path: Path, extra: str, device: str = "") -> FleetSpec:
    path = tmp_path / "fleet.toml"
    path.write_text(NODE + device + extra)
    return load_fleet(path)


def test_node_with_both_fields_gets_a_profile(tmp_path: Path) -> None:
    spec = _load(tmp_path, "embodied_kgco2e = 20.0\nlifetime_years = 4\n")
    node = spec.nodes[0]
    assert node.embodied is not None
    assert (node.embodied.embodied_kgco2e, node.embodied.lifetime_years) == (20.0, 4.0)
    assert node.embodied.source == "fleet.toml: nodes[0] (user-supplied)"
    # 1 h on a quarter of the board: 20 kg x 1000 x 3600 / (4 x 365.25 x 86400) x 0.25
    assert embodied_g(node.embodied, 3600.0, 0.25) == pytest.approx(0.1425964, rel=1e-6)


def test_node_can_cite_its_source(tmp_path: Path) -> None:
    extra = 'embodied_kgco2e = 7\nlifetime_years = 5\nembodied_source = "my LCA, 2024"\n'
    node = _load(tmp_path, extra).nodes[0]
    assert node.embodied.source == "my LCA, 2024"


@pytest.mark.parametrize(
    ("extra", "field", "message"),
    [
        ("embodied_kgco2e = 20\n", "lifetime_years", "both or neither"),
        ("lifetime_years = 4\n", "embodied_kgco2e", "both or neither"),
        ("embodied_kgco2e = 0\nlifetime_years = 4\n", "embodied_kgco2e", "> 0"),
        ("embodied_kgco2e = 20\nlifetime_years = -1\n", "lifetime_years", "> 0"),
        ("embodied_kgco2e = nan\nlifetime_years = 4\n", "embodied_kgco2e", "finite"),
        ("embodied_kgco2e = inf\nlifetime_years = 4\n", "embodied_kgco2e", "finite"),
        ('embodied_kgco2e = "20"\nlifetime_years = 4\n', "embodied_kgco2e", "number"),
        ('embodied_source = "x"\n', "embodied_source", "needs embodied_kgco2e"),
    ],
)
def test_errors_name_file_and_field(tmp_path: Path, extra: str, field: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, extra)
    text = str(info.value)
    assert text.startswith(f"fleet.toml: nodes[0].{field}") and message in text


def test_existing_fleets_and_profiles_load_without_embodied_data() -> None:
    assert all(n.embodied is None for n in load_fleet(None).nodes)
    spec = load_fleet(EXAMPLE)
    assert all(n.embodied is None for n in spec.nodes)
    assert spec.node("pi4-green").power.max_w == 5.0  # device profile still applies


def test_shipped_profiles_carry_embodied_data_only_with_a_cited_source() -> None:
    for name in device_profile_names():
        table = load_device_profile(name)
        profile = device_embodied(name, table)  # raises on a figure without a source
        if profile is None:
            assert "embodied_kgco2e" not in table and "lifetime_years" not in table
        else:
            assert len(table["embodied_source"]) > 20


def test_node_on_a_profile_without_data_has_none_unless_it_gives_its_own(tmp_path: Path) -> None:
    device = 'device = "raspberry-pi-4"\n'
    assert _load(tmp_path, "", device).nodes[0].embodied is None
    own = _load(tmp_path, "embodied_kgco2e = 9\nlifetime_years = 3\n", device)
    assert own.nodes[0].embodied.embodied_kgco2e == 9.0


def test_device_profile_figures_are_validated() -> None:
    good = {"embodied_kgco2e": 12.0, "lifetime_years": 5, "embodied_source": "Vendor PCF, 2024"}
    profile = device_embodied("board", good)
    assert profile is not None and profile.source == "device profile board: Vendor PCF, 2024"
    with pytest.raises(ConfigError, match="embodied_source"):
        device_embodied("board", {"embodied_kgco2e": 12.0, "lifetime_years": 5})
    with pytest.raises(ConfigError, match="go together"):
        device_embodied("board", {"embodied_kgco2e": 12.0, "embodied_source": "Vendor PCF"})
    with pytest.raises(ConfigError, match="> 0"):
        device_embodied("board", {**good, "lifetime_years": 0})
    with pytest.raises(ConfigError, match="without"):
        device_embodied("board", {"embodied_source": "Vendor PCF, 2024"})
