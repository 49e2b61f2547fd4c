"""Export an SCI score as a Green Software Foundation Impact Framework (IF) manifest (YAML).

The manifest lets anyone re-run our SCI with IF's own builtin plugins (``if-run --manifest
FILE``): one tree child per node, whose single input holds the node's observation window
(``timestamp``, ``duration`` in s), ``energy`` (kWh, PUE included), ``grid/carbon-intensity``
(gCO2/kWh), ``carbon-operational`` (E x I, gCO2e), ``carbon-embodied`` (M, gCO2e), ``carbon``
and the functional unit ``requests`` (the node's share of inferences, see
:mod:`carbonedge.carbon.sci`). The pipeline recomputes ``carbon`` with the builtin ``Sum``
plugin and ``sci = carbon / requests`` with the builtin ``Sci`` plugin (``method: Sci``,
``path: builtin``, ``config.functional-unit: requests``), and the ``aggregation`` block sums
``carbon`` and ``requests`` up the tree, so the root's ``carbon / requests`` is the fleet's SCI.
Labels (measured / modelled / sourced / missing) and sources travel as ``carbonedge/...``
string inputs, which IF passes through (with ``=`` written as ``:``: IF evaluates a string
input holding ``=`` as an arithmetic expression).

IF's ``Sci`` plugin requires ``duration >= 1`` s: a node's window shorter than one second is
written as 1 s (the window only places the observation in time; no value is scaled by it).
Format: IF v1.0 manifests (``config`` per plugin; ``pipeline.compute``), per the
Green-Software-Foundation/if repository's ``manifests/examples`` and builtin plugin READMEs.
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Any

from carbonedge.carbon.sci import NodeSci, SciScore

FUNCTIONAL_UNIT_FIELD = "requests"


def _metadata(description: str, unit: str) -> dict[str, Any]:
    return {
        "description": description,
        "unit": unit,
        "aggregation-method": {"time": "sum", "component": "sum"},
    }


def _text(value: str) -> str:
    """A string input IF leaves alone: IF evaluates any input string holding ``=`` as an
    arithmetic expression (``cpu=rapl`` would fail as "cpufake is missing")."""
    return value.replace("=", ":")


def _input(node: NodeSci) -> dict[str, Any]:
    span_s = (
        datetime.fromisoformat(node.finished_at) - datetime.fromisoformat(node.started_at)
    ).total_seconds()
    data: dict[str, Any] = {
        "timestamp": node.started_at,
        "duration": max(1, math.ceil(span_s)),
        "energy": node.energy_kwh,
        "grid/carbon-intensity": node.intensity_g_per_kwh,
        "carbon-operational": node.operational_g,
        "carbon-embodied": node.embodied_g,
        "carbon": node.total_g,
        FUNCTIONAL_UNIT_FIELD: node.inferences,
        "carbonedge/tasks": node.tasks,
        "carbonedge/energy-label": node.energy_label,
        "carbonedge/energy-method": _text("; ".join(node.energy_methods)),
        "carbonedge/intensity-label": node.intensity_label,
        "carbonedge/intensity-source": _text("; ".join(node.intensity_sources)),
        "carbonedge/embodied-label": node.embodied_label,
        "time-reserved": node.busy_s,
    }
    if node.embodied_total_kgco2e is not None and node.lifetime_s is not None:
        data["device/emissions-embodied"] = node.embodied_total_kgco2e * 1000.0
        data["device/expected-lifespan"] = node.lifetime_s
        data["resource-share"] = node.resource_share
        data["carbonedge/embodied-source"] = _text(node.embodied_source or "")
    return data


def impact_manifest(
    score: SciScore, *, name: str = "carbonedge-sci", description: str | None = None
) -> dict[str, Any]:
    """The manifest as plain data (dump it with any YAML writer)."""
    text = description or (
        f"SCI of CarbonEdge inference: (E x I + M) / R with R = one {score.functional_unit} "
        f"(field '{FUNCTIONAL_UNIT_FIELD}'); {score.inferences} inferences from "
        f"{score.started_at} to {score.finished_at}; E {score.energy_label}, "
        f"I {score.intensity_label}, M {score.embodied_label}, R {score.inferences_label}."
    )
    carbon_parts = ["carbon-operational", "carbon-embodied"]
    return {
        "name": name,
        "description": text,
        "tags": {"kind": "inference", "complexity": "simple", "category": "edge"},
        "aggregation": {"metrics": ["carbon", FUNCTIONAL_UNIT_FIELD], "type": "both"},
        "initialize": {
            "plugins": {
                "sum-carbon": {
                    "method": "Sum",
                    "path": "builtin",
                    "config": {"input-parameters": carbon_parts, "output-parameter": "carbon"},
                    "parameter-metadata": {
                        "inputs": {
                            "carbon-operational": _metadata(
                                "energy x grid intensity (E x I), PUE included", "gCO2e"
                            ),
                            "carbon-embodied": _metadata(
                                "embodied emissions TE x TS x RS (SCI's M)", "gCO2e"
                            ),
                        },
                        "outputs": {"carbon": _metadata("E x I + M", "gCO2e")},
                    },
                },
                "sci": {
                    "method": "Sci",
                    "path": "builtin",
                    "config": {"functional-unit": FUNCTIONAL_UNIT_FIELD},
                    "parameter-metadata": {
                        "inputs": {
                            "carbon": _metadata("E x I + M", "gCO2e"),
                            FUNCTIONAL_UNIT_FIELD: _metadata(
                                "inferences served (pipeline stages split their inference)",
                                "inferences",
                            ),
                        },
                        "outputs": {"sci": _metadata("carbon per inference", "gCO2e/inference")},
                    },
                },
            }
        },
        "tree": {
            "children": {
                node.node: {
                    "pipeline": {"compute": ["sum-carbon", "sci"]},
                    "inputs": [_input(node)],
                }
                for node in score.nodes
            }
        },
    }


def write_impact_manifest(
    score: SciScore, path: str | Path, *, name: str = "carbonedge-sci"
) -> Path:
    """Write the manifest as YAML to ``path`` (a header comment gives the SCI); returns it."""
    import yaml

    target = Path(path)
    header = (
        f"# Impact Framework manifest written by CarbonEdge. Run: if-run --manifest {target.name}\n"
        f"# SCI = (E x I + M) / R = ({score.operational_g:.6g} + {score.embodied_g:.6g}) g / "
        f"{score.inferences} {score.functional_unit}s = {score.sci_g_per_inference:.6g} "
        f"gCO2e per {score.functional_unit}\n"
        f"# E {score.energy_kwh:.6g} kWh ({score.energy_label}), I "
        f"{score.intensity_g_per_kwh:.6g} gCO2/kWh ({score.intensity_label}), M "
        f"({score.embodied_label}"
        + (
            f": no footprint for {', '.join(score.missing_embodied)}"
            if score.missing_embodied
            else ""
        )
        + ")\n"
    )
    body = yaml.safe_dump(impact_manifest(score, name=name), sort_keys=False, allow_unicode=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(header + body, encoding="utf-8")
    return target
