"""Cut-able units of a model and their costs (paper Section III.E, Eq. 5).

A *unit* is a block whose only connection to the rest of the model is one activation tensor,
so a model can be cut between any two consecutive units. This module is pure (no torch): the
adapter in :mod:`carbonedge.partition.analysis` fills these values from a real model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from carbonedge.partition.errors import PartitionError

CostKind = Literal["eq5", "macs", "measured"]
COST_KINDS: tuple[CostKind, ...] = ("eq5", "macs", "measured")


@dataclass(frozen=True)
class Unit:
    """One cut-able unit of a model, in forward order.

    Attributes:
        index: position in the model's forward order (0-based).
        name: qualified module path (``features.3``, ``blocks.1.0``) or a head name.
        type: class name of the unit's module (``InvertedResidual``, ``Conv2d``, ...).
        parameters: number of trainable parameters inside the unit.
        output_shape: shape of the activation the unit produces for the analysed input.
        output_bytes: size of that activation in bytes (fp32: 4 bytes per element); this is
            what crosses the network when the model is cut after this unit.
        eq5_cost: the paper's Eq. 5 summed over every layer inside the unit: Conv
            ``kh x kw x Cin x Cout`` (groups ignored, as printed), Linear ``Nin x Nout``,
            any other layer its own parameter count (dimensionless).
        macs: multiply-accumulates of the unit's Conv and Linear layers at the analysed input
            size (groups and output spatial size counted; other layers count 0).
        latency_ms: median wall time of the unit alone on one thread, in milliseconds.
    """

    index: int
    name: str
    type: str
    parameters: int
    output_shape: tuple[int, ...]
    output_bytes: int
    eq5_cost: float
    macs: int
    latency_ms: float

    def cost(self, kind: CostKind) -> float:
        """The unit's cost under ``kind`` (``eq5``, ``macs`` or ``measured`` milliseconds)."""
        if kind == "eq5":
            return self.eq5_cost
        if kind == "macs":
            return float(self.macs)
        if kind == "measured":
            return self.latency_ms
        raise PartitionError(f"unknown cost kind {kind!r}; choose one of {', '.join(COST_KINDS)}")


def unit_costs(units: list[Unit] | tuple[Unit, ...], kind: CostKind) -> list[float]:
    """The per-unit costs under ``kind``, in forward order."""
    return [unit.cost(kind) for unit in units]


def unit_comm_bytes(units: list[Unit] | tuple[Unit, ...]) -> list[int]:
    """Bytes sent when cutting after each unit but the last (length ``len(units) - 1``)."""
    return [unit.output_bytes for unit in units[:-1]]
