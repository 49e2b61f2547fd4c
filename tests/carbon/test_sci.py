"""SCI (ISO/IEC 21031) from ledger rows, its Impact Framework manifest, and ``carbonedge sci``.

The ledger below is small enough to compute by hand; the hand computation is written out
next to each assertion.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from carbonedge.accounting import ComponentEnergy
from carbonedge.carbon import (
    EmbodiedProfile,
    EmissionsLedger,
    IntensityReading,
    LedgerRow,
    task_row,
)
from carbonedge.carbon.impact_manifest import impact_manifest, write_impact_manifest
from carbonedge.carbon.ledger_file import read_ledger
from carbonedge.carbon.sci import SciError, busy_seconds, energy_label, sci_score
from carbonedge.cli.main import main

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
MEASURED = "cpu=rapl gpu=none ram=rapl"
MODELLED = "cpu=cpu-load-model gpu=none ram=constant"


def row(
    task_id: str,
    node: str,
    start_s: float,
    end_s: float,
    energy: ComponentEnergy,
    intensity: float,
    pue: float,
    method: str,
) -> LedgerRow:
    return task_row(
        task_id=task_id,
        run_id="run-1",
        node=node,
        model="mobilenet_v2",
        runtime="onnx",
        started_at=T0 + timedelta(seconds=start_s),
        finished_at=T0 + timedelta(seconds=end_s),
        latency_ms=(end_s - start_s) * 1000.0,
        cpu_s=end_s - start_s,
        energy=energy,
        intensity=IntensityReading(intensity, node, T0, "static"),
        pue=pue,
        energy_method=method,
        attribution_method="cputime",
    )


def ledger() -> list[LedgerRow]:
    """Node A (500 g/kWh, PUE 1.2, RAPL) and node B (modelled energy, intensity 300 then 200).

    t1 and t2 overlap on A; p1 is a two-stage pipeline (p1/0 on A, p1/1 on B); t3 on B.
    """
    return [
        row("t1", "A", 0, 2, ComponentEnergy(1e-3, 0.0, 0.5e-3), 500.0, 1.2, MEASURED),
        row("t2", "A", 1, 3, ComponentEnergy(2e-3), 500.0, 1.2, MEASURED),
        row("p1/0", "A", 10, 11, ComponentEnergy(1e-3), 500.0, 1.2, MEASURED),
        row("p1/1", "B", 11, 13, ComponentEnergy(4e-3), 300.0, 1.0, MODELLED),
        row("t3", "B", 20, 21, ComponentEnergy(1e-3), 200.0, 1.0, MODELLED),
    ]


# Device of node A: TE = 100 kgCO2e over EL = 5 years, the node holds RS = 1/4 of it.
BOARD = EmbodiedProfile(embodied_kgco2e=100.0, lifetime_years=5.0, source="test figure")
EL_S = 5 * 365.25 * 86400  # 157,788,000 s


def test_sci_of_a_hand_made_ledger() -> None:
    score = sci_score(ledger(), embodied_by_node={"A": BOARD}, resource_share_by_node={"A": 0.25})
    a, b = score.nodes
    # R: inferences t1, t2, p1 (two stage rows), t3 = 4; A holds 1 + 1 + 1/2, B 1/2 + 1.
    assert score.inferences == 4 and score.inferences_label == "measured"
    assert (a.inferences, b.inferences) == (pytest.approx(2.5), pytest.approx(1.5))
    # E (PUE included): A = (1.5e-3 + 2e-3 + 1e-3) x 1.2 = 5.4e-3 kWh; B = 4e-3 + 1e-3 = 5e-3.
    assert a.it_energy_kwh == pytest.approx(4.5e-3)
    assert a.energy_kwh == pytest.approx(5.4e-3) and b.energy_kwh == pytest.approx(5e-3)
    assert score.energy_kwh == pytest.approx(10.4e-3)
    # E x I: A = 0.9 + 1.2 + 0.6 = 2.7 g (1.5e-3 x 500 x 1.2 = 0.9, ...); B = 4e-3 x 300 +
    # 1e-3 x 200 = 1.4 g, so B's energy-weighted I = 1.4 / 5e-3 = 280 g/kWh.
    assert a.operational_g == pytest.approx(2.7) and b.operational_g == pytest.approx(1.4)
    assert a.intensity_g_per_kwh == pytest.approx(500.0)
    assert b.intensity_g_per_kwh == pytest.approx(280.0)
    assert score.operational_g == pytest.approx(4.1)
    assert score.intensity_g_per_kwh == pytest.approx(4.1 / 10.4e-3)
    # TS: A held [0, 3] (t1, t2 overlap) + [10, 11] = 4 s; B [11, 13] + [20, 21] = 3 s.
    assert a.busy_s == pytest.approx(4.0) and b.busy_s == pytest.approx(3.0)
    # M_A = TE x TS/EL x RS = 100,000 g x 4 / 157,788,000 x 0.25 = 6.3376e-4 g; B has none.
    m_a = 100_000.0 * 4.0 / EL_S * 0.25
    assert m_a == pytest.approx(6.33762e-4, rel=1e-5)
    assert a.embodied_g == pytest.approx(m_a) and a.time_share == pytest.approx(4.0 / EL_S)
    assert b.embodied_g == 0.0 and b.embodied_label == "missing"
    assert score.missing_embodied == ("B",) and score.embodied_label == "missing"
    # SCI = (E x I + M) / R = (4.1 + 6.3376e-4) / 4 = 1.025158 g per inference.
    assert score.sci_g_per_inference == pytest.approx((4.1 + m_a) / 4)
    assert score.sci_g_per_inference == pytest.approx(1.025158, rel=1e-6)
    assert score.embodied_g_per_inference == pytest.approx(m_a / 4)
    # Labels: A's energy is RAPL (measured), B's CodeCarbon's model: the whole is modelled.
    assert (a.energy_label, b.energy_label, score.energy_label) == (
        "measured",
        "modelled",
        "modelled",
    )
    assert score.intensity_label == "sourced" and a.embodied_label == "sourced"
    assert score.started_at == T0.isoformat()
    assert score.finished_at == (T0 + timedelta(seconds=21)).isoformat()


def test_every_node_with_a_footprint_is_sourced_and_defaults_to_whole_device() -> None:
    score = sci_score(ledger(), embodied_by_node={"A": BOARD, "B": BOARD})
    assert score.embodied_label == "sourced" and score.missing_embodied == ()
    # RS defaults to 1: M = 100,000 g x (4 + 3) s / EL.
    assert score.embodied_g == pytest.approx(100_000.0 * 7.0 / EL_S)


def test_helpers_and_errors() -> None:
    assert energy_label(["cpu=rapl gpu=none ram=rapl", "cpu=nvml"]) == "measured"
    assert energy_label(["cpu=rapl gpu=none ram=constant"]) == "modelled"
    assert energy_label(["cpu=fake gpu=fake ram=fake"]) == "modelled"
    assert energy_label(["window-cputime"]) == "modelled"
    t = [T0 + timedelta(seconds=s) for s in range(6)]
    assert busy_seconds([(t[0], t[2]), (t[1], t[3]), (t[4], t[5]), (t[4], t[4])]) == 4.0
    with pytest.raises(SciError, match="no ledger rows"):
        sci_score([])
    with pytest.raises(SciError, match="node 'A' must be between 0 and 1"):
        sci_score(ledger(), resource_share_by_node={"A": 1.5})


def test_impact_framework_manifest_has_the_sci_plugin_fields(tmp_path: Path) -> None:
    score = sci_score(ledger(), embodied_by_node={"A": BOARD}, resource_share_by_node={"A": 0.25})
    path = write_impact_manifest(score, tmp_path / "sci.yaml")
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# Impact Framework manifest")
    manifest = yaml.safe_load(text)
    assert manifest == yaml.safe_load(yaml.safe_dump(impact_manifest(score)))
    assert manifest["name"] == "carbonedge-sci" and "SCI" in manifest["description"]
    sci = manifest["initialize"]["plugins"]["sci"]
    assert (sci["method"], sci["path"]) == ("Sci", "builtin")
    assert sci["config"]["functional-unit"] == "requests"
    adder = manifest["initialize"]["plugins"]["sum-carbon"]
    assert (adder["method"], adder["path"]) == ("Sum", "builtin")
    assert adder["config"]["input-parameters"] == ["carbon-operational", "carbon-embodied"]
    children = manifest["tree"]["children"]
    assert list(children) == ["A", "B"]
    carbon = requests = 0.0
    for name, child in children.items():
        assert child["pipeline"]["compute"] == ["sum-carbon", "sci"]
        (inp,) = child["inputs"]
        datetime.fromisoformat(inp["timestamp"])
        # IF's Sci plugin requires duration >= 1 s (an integer window here).
        assert isinstance(inp["duration"], int) and inp["duration"] >= 1
        assert inp["carbon"] == pytest.approx(inp["carbon-operational"] + inp["carbon-embodied"])
        assert inp["requests"] > 0
        # IF evaluates a string holding "=" as arithmetic: none may hold one.
        assert not any(isinstance(v, str) and "=" in v for v in inp.values()), name
        carbon += inp["carbon"]
        requests += inp["requests"]
    assert children["A"]["inputs"][0]["device/emissions-embodied"] == pytest.approx(100_000.0)
    assert children["A"]["inputs"][0]["carbonedge/energy-method"] == "cpu:rapl gpu:none ram:rapl"
    assert "device/emissions-embodied" not in children["B"]["inputs"][0]
    # What IF's aggregation computes at the root: sum carbon / sum requests = our SCI.
    assert carbon / requests == pytest.approx(score.sci_g_per_inference)
    assert manifest["aggregation"] == {"metrics": ["carbon", "requests"], "type": "both"}


FLEET_TOML = """
[[nodes]]
name = "A"
cpu_quota = 1.0
memory_mb = 1024
intensity_g_per_kwh = 500
idle_w = 0.0
max_w = 8.0
embodied_kgco2e = 100.0
lifetime_years = 5.0

[[nodes]]
name = "B"
cpu_quota = 0.5
memory_mb = 512
intensity_g_per_kwh = 300
idle_w = 0.0
max_w = 4.0
"""


def test_cli_sci_reads_a_ledger_and_writes_a_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with EmissionsLedger(tmp_path / "ledger.sqlite") as db:
        for r in ledger():
            db.append(r)
        db.export_csv(tmp_path / "ledger.csv")
    assert read_ledger(tmp_path / "ledger.csv") == read_ledger(tmp_path / "ledger.sqlite")
    fleet = tmp_path / "fleet.toml"
    fleet.write_text(FLEET_TOML, encoding="utf-8")
    out = tmp_path / "sci.yaml"
    argv = ["sci", "--ledger", str(tmp_path / "ledger.sqlite"), "--fleet", str(fleet)]
    assert main([*argv, "--share", "A=0.25", "--manifest", str(out), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["sci_g_per_inference"] == pytest.approx((4.1 + 100_000.0 * 4 / EL_S / 4) / 4)
    assert data["missing_embodied"] == ["B"] and out.is_file()
    assert main([*argv, "--run", "run-1"]) == 0
    text = capsys.readouterr().out
    # Without --share, RS = 1: M_A = 100,000 g x 4 s / EL.
    assert f"SCI : {(4.1 + 100_000.0 * 4 / EL_S) / 4:.6g} gCO2e per inference" in text
    assert "M   :" in text and "missing; no footprint for B" in text


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--share", "A=2"], "--share 'A=2': use NODE=F with F between 0 and 1"),
        (["--run", "nope"], "has no rows for run 'nope'"),
    ],
)
def test_cli_sci_bad_input_exits_two(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    with EmissionsLedger(tmp_path / "ledger.sqlite") as db:
        db.append(ledger()[0])
    assert main(["sci", "--ledger", str(tmp_path / "ledger.sqlite"), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_cli_sci_missing_ledger_names_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sci", "--ledger", str(tmp_path / "none.sqlite")]) == 2
    assert f"{tmp_path / 'none.sqlite'}: no such ledger file" in capsys.readouterr().err
    assert not (tmp_path / "none.sqlite").exists()
