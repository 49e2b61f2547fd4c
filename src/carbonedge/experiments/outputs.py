"""The results folder: every table and figure as files, the ledger, report.md, reuse.

``<out>/<digest of the parameters>/`` holds ``params.json`` (written first) and
``complete.json`` (written when every result is in), then ``report.html``, rendered from the
finished folder (:mod:`carbonedge.experiments.html_report`). A folder with ``complete.json`` is
reused unless ``overwrite`` (its ``report.html`` rendered if missing); a folder without it (an
interrupted run) is recomputed.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from carbonedge.accounting import EnergyMeter
from carbonedge.carbon import EmbodiedProfile
from carbonedge.errors import ConfigError
from carbonedge.experiments.calibration import fig_node_energy
from carbonedge.experiments.html_report import HTML_NAME, write_html_report
from carbonedge.experiments.params import ExperimentParams
from carbonedge.experiments.plots import fig2, fig3
from carbonedge.experiments.records import (
    ConfigSummary,
    ExperimentResult,
    RunRecord,
    summaries,
)
from carbonedge.experiments.report import headline, headline_text, write_report
from carbonedge.experiments.sensitivity import fig_sensitivity
from carbonedge.experiments.tables import (
    overhead_table,
    primary_model,
    render_ii,
    render_iv,
    render_overhead,
    render_sweep,
    render_v,
    sweep_rows,
    table_ii,
    table_iv,
    table_v,
)
from carbonedge.experiments.verdict import (
    calibrated_cpu_ms,
    render_verdicts,
    self_checks,
    verdicts,
)
from carbonedge.fleet import FleetBackend, load_fleet

MARKER = "complete.json"
PARAMS = "params.json"
TABLES_TXT = "tables.txt"
FIG2 = "fig2_latency_vs_carbon.png"
FIG3 = "fig3_weight_sweep.png"
FIG_NODE_ENERGY = "fig_node_energy.png"
FIG_SENSITIVITY = "fig_sensitivity.png"


def _fleet_rows(result: ExperimentResult) -> list[tuple[str, float, float, float]]:
    return [(n, q, float(m), i) for n, q, m, i, _ in result.env.nodes]


def _our_point(result: ExperimentResult) -> tuple[float, float] | None:
    """(task time on a full core in s, running power at full core in W) of our fleet: the
    calibrated task CPU time of the primary model on the largest node and its profile power."""
    model = primary_model(result)
    big = max(result.env.nodes, key=lambda n: n[1])
    cpu = calibrated_cpu_ms(result).get((model, big[0]))
    try:
        spec = load_fleet(result.params.fleet_file)
    except ConfigError:
        return None
    node = next((n for n in spec.nodes if n.name == big[0]), None)
    if cpu is None or node is None:
        return None
    return cpu.mean / 1000.0, node.power.power_w(1.0) / big[1]


def _clean(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def write_json(path: Path, data: Any) -> None:
    """JSON with NaN/inf as null (strict JSON)."""
    path.write_text(json.dumps(_clean(data), indent=2, allow_nan=False) + "\n", encoding="utf-8")


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """CSV with the union of the rows' keys as header, in first-seen order."""
    header: list[str] = []
    for r in rows:
        header += [k for k in r if k not in header]
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: "" if v is None else v for k, v in _clean(dict(r)).items()})


def _flat_run(run: RunRecord) -> dict[str, Any]:
    data = run.to_dict()
    overhead = data.pop("overhead_us")
    data.pop("margins", None)
    for key in ("node_energy_kwh", "usage_pct", "node_cpu_s"):
        for node, value in data.pop(key).items():
            data[f"{node}_{key}"] = value
    data["decisions"] = len(overhead)
    return data


def terminal_text(result: ExperimentResult, sums: Sequence[ConfigSummary]) -> str:
    """Tables II, IV, V, overhead, sweep and the headline, as printed in the terminal."""
    model = primary_model(result)
    nodes = result.node_names
    quick = " — SMOKE TEST (--quick), not numbers to quote" if result.params.min_run_s == 0 else ""
    parts = [
        f"Verdict ({model}, {result.params.repeats} repeats{quick})",
        render_verdicts(verdicts(result, sums)),
        "",
        "Self-checks:",
        *(f"- {c}" for c in self_checks(result, sums) or ["no contradiction found."]),
        "",
        f"Table II ({model}; 95% CI over {result.params.repeats} repeat(s); paper beside)",
        render_ii(table_ii(result, sums)),
        "",
        "Table IV (all models)",
        render_iv(table_iv(result, sums)),
        "",
        f"Table V (node usage, % of tasks, {model})",
        render_v(table_v(result, sums, model), nodes),
        "",
        "Scheduling overhead per decision",
        render_overhead(overhead_table(result, sums)),
        "",
        "Weight sweep (Fig. 3)",
        render_sweep(sweep_rows(result), nodes),
        "",
        f"Energy: {result.env.energy_method_text}",
        f"Attribution: {result.params.attribution}; tasks charged: {result.charge_method}; "
        f"enforcement: {result.env.enforcement}",
        "",
        *(line.replace("**", "") for line in headline_text(headline(result, sums))),
    ]
    return "\n".join(parts)


def write_outputs(result: ExperimentResult, folder: str | Path) -> Path:
    """Write every output of ``result`` into ``folder`` (created); ``complete.json`` last."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / PARAMS, result.params.to_dict())
    sums = summaries(result)
    tables = {
        "table2": table_ii(result, sums),
        "table4": table_iv(result, sums),
        "table5": table_v(result, sums),
        "overhead": overhead_table(result, sums),
        "sweep": sweep_rows(result),
        "runs": [_flat_run(r) for r in result.runs],
    }
    for name, rows in tables.items():
        write_csv(out / f"{name}.csv", rows)
        write_json(out / f"{name}.json", rows)
    write_json(out / "summaries.json", [s.to_dict() for s in sums])
    write_json(
        out / "result.json",
        {
            "params": result.params.to_dict(),
            "environment": result.env.to_dict(),
            "started_at": result.started_at,
            "wall_s": result.wall_s,
            "charge_method": result.charge_method,
            "rate": result.rate.to_dict() if result.rate else None,
            "runs": [r.to_dict() for r in result.runs],
            "sweep": [p.to_dict() for p in result.sweep],
        },
    )
    _write_ledger(result, out)
    model = primary_model(result)
    points: dict[str, list[tuple[float, float]]] = {}
    for r in result.runs:
        if r.model == model and not math.isinf(r.inf_per_g):
            points.setdefault(r.config, []).append((r.inf_per_g, r.latency_ms))
    fig2(tables["table2"], model, out / FIG2, points, result.charge_method)
    fig3(tables["sweep"], result.node_names, out / FIG3, result.charge_method)
    fig_node_energy(result, out / FIG_NODE_ENERGY)
    sensitivity = fig_sensitivity(
        _fleet_rows(result),
        out / FIG_SENSITIVITY,
        _our_point(result),
        free_memory_mb=result.free_memory_mb or None,
    )
    write_json(out / "verdict.json", [v.to_dict() for v in verdicts(result, sums)])
    write_json(out / "calibration.json", [c.to_dict() for c in result.calibration])
    (out / "report.md").write_text(write_report(result, sums, sensitivity), encoding="utf-8")
    (out / TABLES_TXT).write_text(terminal_text(result, sums) + "\n", encoding="utf-8")
    write_json(
        out / MARKER,
        {
            "finished_at": datetime.now(UTC).isoformat(),
            "digest": result.params.digest(),
            "wall_s": result.wall_s,
        },
    )
    write_html_report(out)
    return out


def _write_ledger(result: ExperimentResult, out: Path) -> None:
    """CSV exports of the rows the engine streamed into the ledger during the run: every row
    (``ledger.csv``) and one CodeCarbon-compatible ``emissions.csv`` line per measured run
    (warm-ups left out), with the run's SCI."""
    from carbonedge.carbon.emissions_csv import EmissionsContext, host_context
    from carbonedge.carbon.emissions_csv import write_emissions_csv as write_codecarbon_csv
    from carbonedge.carbon.ledger import export_rows_csv

    (out / "emissions.csv").unlink(missing_ok=True)
    export_rows_csv(result.ledger_rows, out / "ledger.csv")
    measured = [r for r in result.ledger_rows if not r.run_id.endswith("/warmup")]
    context = EmissionsContext(
        experiment_id=result.params.digest(), embodied_by_node=_embodied(result)
    )
    if result.params.backend == "local":  # the nodes ran on this machine
        context = host_context(context)
    if measured:
        write_codecarbon_csv(out / "emissions.csv", measured, context)


def _embodied(result: ExperimentResult) -> dict[str, EmbodiedProfile | None]:
    """The fleet's embodied footprints (for the SCI's M term); none if its file is gone."""
    try:
        fleet = load_fleet(result.params.fleet_file)
    except ConfigError:
        return {}
    return {n.name: n.embodied for n in fleet.nodes}


@dataclass(frozen=True)
class Outcome:
    """What :func:`reproduce` did: the folder, whether it was reused, the printed text."""

    folder: Path
    reused: bool
    text: str
    result: ExperimentResult | None = None


def reproduce(
    params: ExperimentParams,
    out: str | Path = "results",
    *,
    overwrite: bool = False,
    fleet: FleetBackend | None = None,
    meter_factory: Callable[[], EnergyMeter] | None = None,
    progress: bool = True,
    address: str | None = None,
) -> Outcome:
    """Run (or reuse) the reproduction of ``params`` in ``<out>/<digest>/`` and write outputs.

    Every task's ledger row is streamed into ``<out>/<digest>/ledger.sqlite`` as it finishes
    (a crash keeps them); ``address``: the Ray cluster when ``params.backend`` is ``ray``."""
    from carbonedge.experiments.runner import run_experiment

    folder = params.folder(out)
    if (folder / MARKER).exists() and not overwrite:
        text = (folder / TABLES_TXT).read_text(encoding="utf-8")
        if not (folder / HTML_NAME).exists():  # a folder from before report.html was written
            write_html_report(folder)
        return Outcome(folder, True, text)
    if folder.exists():
        if not (folder / PARAMS).exists():
            raise ConfigError(f"{folder}: exists and is not a results folder (no {PARAMS})")
        for item in folder.iterdir():  # earlier outputs go; the ledger's records stay
            if item.name.startswith("ledger.sqlite"):
                continue
            if item.is_dir():
                shutil.rmtree(item)
            else:
                item.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / PARAMS, params.to_dict())
    result = run_experiment(
        params,
        fleet=fleet,
        meter_factory=meter_factory,
        progress=progress,
        ledger=folder / "ledger.sqlite",
        address=address,
    )
    write_outputs(result, folder)
    return Outcome(folder, False, (folder / TABLES_TXT).read_text(encoding="utf-8"), result)
