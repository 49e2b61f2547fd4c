"""Node states like the paper's (Section IV.A) for the scheduling tests."""

from __future__ import annotations

import pytest

from carbonedge.scheduling import NodeState


def make_node(
    name: str = "n",
    cpu_quota: float = 1.0,
    memory_mb: float = 1024.0,
    *,
    free_cpu: float | None = None,
    free_memory_mb: float | None = None,
    load: float = 0.0,
    latency_ms: float = 1.0,
    avg_time_s: float = 0.3,
    tasks_in_flight: int = 0,
    power_w: float = 3.0,
    intensity_g_per_kwh: float = 500.0,
) -> NodeState:
    return NodeState(
        name=name,
        cpu_quota=cpu_quota,
        memory_mb=memory_mb,
        free_cpu=cpu_quota if free_cpu is None else free_cpu,
        free_memory_mb=memory_mb if free_memory_mb is None else free_memory_mb,
        load=load,
        latency_ms=latency_ms,
        avg_time_s=avg_time_s,
        tasks_in_flight=tasks_in_flight,
        power_w=power_w,
        intensity_g_per_kwh=intensity_g_per_kwh,
    )


def paper_nodes(power_w_per_core: float = 3.0) -> list[NodeState]:
    """Node-High/Medium/Green: the paper's quotas, memory and intensities, idle.

    Execution times 0.30/0.45/0.65 s (the paper's order, slower on smaller quotas); power
    proportional to the quota (the paper apportions host power by quota).
    """
    spec = (
        ("Node-High", 1.0, 1024.0, 620.0, 0.30),
        ("Node-Medium", 0.6, 512.0, 530.0, 0.45),
        ("Node-Green", 0.4, 512.0, 380.0, 0.65),
    )
    return [
        make_node(
            name,
            q,
            mem,
            avg_time_s=t,
            power_w=power_w_per_core * q,
            intensity_g_per_kwh=intensity,
        )
        for name, q, mem, intensity, t in spec
    ]


@pytest.fixture
def paper_fleet() -> list[NodeState]:
    return paper_nodes()
