"""Shared helpers for the fleet tests: small fleets and a small torch model."""

from __future__ import annotations

from typing import Any

import pytest

from carbonedge.fleet.spec import FleetSpec, parse_fleet


def small_fleet(*quotas: float, memory_mb: int = 512) -> FleetSpec:
    nodes: list[dict[str, Any]] = [
        {
            "name": f"n{i}",
            "cpu_quota": q,
            "memory_mb": memory_mb,
            "intensity_g_per_kwh": 400 + 10 * i,
            "idle_w": 1.0,
            "max_w": 5.0,
        }
        for i, q in enumerate(quotas)
    ]
    return parse_fleet({"nodes": nodes}, "test-fleet")


@pytest.fixture(autouse=True)
def _one_torch_thread() -> None:
    import torch

    torch.set_num_threads(1)
