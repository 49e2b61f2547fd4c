"""Preparing a reproduction: intensities, meter, Monolithic node, AMP4EC pipelines, environment.

Heavy libraries are imported inside the functions that need them (torch for the partitioner,
codecarbon by the meter on start).
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Mapping

from carbonedge.accounting import EnergyMeter
from carbonedge.carbon import CodeCarbonConfig, CodeCarbonMeter, FakeMeter, IntensityReading
from carbonedge.errors import ConfigError
from carbonedge.experiments.params import ExperimentParams
from carbonedge.fleet import FleetBackend, FleetSpec, Pipeline, deploy_pipeline

#: Synthetic power of ``--meter fake`` (W): CPU at 5 W with a 1 W idle floor at the window's
#: first sample, RAM at 2 W. Only for tests and dry runs; outputs say ``fake``.
FAKE_CPU_W, FAKE_IDLE_CPU_W, FAKE_RAM_W = 5.0, 1.0, 2.0

PAPER_MONO_NODE = "node-medium"

_METHOD_TEXT = {
    "rapl": "measured by RAPL",
    "nvml": "measured by NVML",
    "cpu-load-model": "CodeCarbon CPU-load model (TDP x load, no RAPL)",
    "cpu-load-model(forced-tdp)": "CodeCarbon CPU-load model with a forced TDP (no RAPL)",
    "constant": "CodeCarbon constant power estimate",
    "constant(forced)": "constant power (forced)",
    "paper-ram-model": "the paper's 0.375 W/GB model",
    "none": "absent",
    "fake": "FAKE synthetic power profile (not a measurement)",
}


def default_meter_factory(params: ExperimentParams) -> Callable[[], EnergyMeter]:
    """The meter ``params.meter`` names: CodeCarbon (machine mode, offline) or the fake."""
    if params.meter == "fake":

        def fake() -> EnergyMeter:
            def profile(t_s: float) -> tuple[float, float, float]:
                return (FAKE_IDLE_CPU_W if t_s == 0.0 else FAKE_CPU_W, 0.0, FAKE_RAM_W)

            return FakeMeter(profile, time.monotonic, interval_s=params.measure_power_secs)

        return fake
    config = CodeCarbonConfig(
        measure_power_secs=params.measure_power_secs, ram_model=params.ram_model
    )
    return lambda: CodeCarbonMeter(config)


def describe_method(method: Mapping[str, str]) -> str:
    """``CPU: CodeCarbon CPU-load model ...; GPU: absent; RAM: ...`` from a reading's methods."""
    parts = []
    for comp in ("cpu", "gpu", "ram"):
        name = method.get(comp, "none")
        parts.append(f"{comp.upper()}: {_METHOD_TEXT.get(name, name)}")
    return "; ".join(parts)


def mono_node(
    params: ExperimentParams, spec: FleetSpec, inten: Mapping[str, IntensityReading]
) -> str:
    """The Monolithic node: ``--mono-node``, else Node-Medium (the paper's 530 g/kWh average
    scenario), else the node of median intensity."""
    if params.mono_node is not None:
        if params.mono_node not in spec.names:
            raise ConfigError(
                f"mono_node: no node {params.mono_node!r} in {spec.source} "
                f"(nodes: {', '.join(spec.names)})"
            )
        return params.mono_node
    if PAPER_MONO_NODE in spec.names:
        return PAPER_MONO_NODE
    ranked = sorted(spec.names, key=lambda n: inten[n].g_per_kwh)
    return ranked[(len(ranked) - 1) // 2]


def amp4ec_pipeline(
    fleet: FleetBackend, model: str, params: ExperimentParams
) -> tuple[Pipeline, str]:
    """AMP4EC: the model cut by the partitioner's balanced plan, one segment per node.

    Nodes are ordered by CPU quota, fastest first (no carbon term); boundaries come from
    ``plan_boundaries`` (bottleneck objective: balance share/capacity) over
    ``params.partition_cost`` unit costs. Returns the deployed pipeline and a description.
    """
    from carbonedge.models import build_model
    from carbonedge.partition import analyze, build_segments, plan_boundaries
    from carbonedge.partition.units import unit_comm_bytes, unit_costs

    spec = fleet.spec
    nodes = sorted(spec.nodes, key=lambda n: -n.cpu_quota)
    net = build_model(model, seed=params.seed).eval()
    units = analyze(net, (1, 3, 224, 224), repeats=1)
    k = min(len(nodes), len(units))
    nodes = nodes[:k]
    plan = plan_boundaries(
        unit_costs(units, params.partition_cost),
        [n.cpu_quota for n in nodes],
        unit_comm_bytes(units),
    )
    segments = build_segments(net, plan)
    pipe = deploy_pipeline(
        fleet,
        segments,
        [n.name for n in nodes],
        params.runtime,
        name=f"amp4ec/{model}",
    )
    shares = ", ".join(
        f"{n.name} units [{s.start},{s.stop}) {s.share:.0%}"
        for n, s in zip(nodes, plan.segments, strict=True)
    )
    return pipe, f"{params.partition_cost} costs, bottleneck plan: {shares}"


def machine_text() -> str:
    """CPU model, cores and RAM of this host."""
    import os

    import psutil

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    ram_gb = psutil.virtual_memory().total / 2**30
    return (
        f"{cpu}, {os.cpu_count()} cores, {ram_gb:.1f} GiB RAM, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    )


def enforcement_text(fleet: FleetBackend) -> str:
    """How CPU quotas were enforced, per node (``fleet.health()``)."""
    kinds: dict[str, list[str]] = {}
    for h in fleet.health():
        kinds.setdefault(h.enforcement, []).append(h.name)
    names = {
        "cgroup": "real cgroup CPU quota (CFS, 10 ms period)",
        "dilation": "time dilation (sleep (1/q - 1) x task CPU time)",
    }
    return "; ".join(f"{names.get(k, k)}: {', '.join(v)}" for k, v in kinds.items())
