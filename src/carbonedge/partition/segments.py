"""Runnable segments of a partitioned model, and their ONNX export (adapter).

A :class:`ModelSegment` holds consecutive units of the model (the same module objects, so no
weights are copied in-process) and applies them in order; composing the segments in order gives
the model's output. Segments pickle with ``torch.save`` (their classes live in importable
modules), so the fleet can ship them to node processes.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from carbonedge.partition.chain import check_chain, find_chain
from carbonedge.partition.errors import PartitionError
from carbonedge.partition.planner import Plan


class ModelSegment(nn.Module):
    """Units ``[start, stop)`` of a model; ``forward`` applies them in order.

    Attributes:
        index: the segment's position in the pipeline (0-based).
        unit_names: the qualified names of the units it holds.
    """

    def __init__(
        self, index: int, start: int, stop: int, units: Sequence[tuple[str, nn.Module]]
    ) -> None:
        super().__init__()
        self.index = index
        self.start = start
        self.stop = stop
        self.unit_names = tuple(name for name, _ in units)
        self.units = nn.Sequential(*(module for _, module in units))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.units(x)
        return out

    def extra_repr(self) -> str:
        return f"index={self.index}, units=[{self.start}, {self.stop})"


def _boundaries(plan_or_boundaries: Plan | Sequence[int], n: int) -> list[int]:
    cuts = list(
        plan_or_boundaries.boundaries
        if isinstance(plan_or_boundaries, Plan)
        else plan_or_boundaries
    )
    edges = [0, *cuts, n]
    if any(not isinstance(c, int) for c in cuts) or any(
        a >= b for a, b in itertools.pairwise(edges)
    ):
        raise PartitionError(
            f"boundaries {cuts} must be increasing cut positions in 1..{n - 1} ({n} units)"
        )
    return edges


def build_segments(
    model: nn.Module,
    plan_or_boundaries: Plan | Sequence[int],
    input_shape: tuple[int, ...] | None = (1, 3, 224, 224),
) -> list[ModelSegment]:
    """Cut ``model`` at the plan's boundaries into runnable segments, in pipeline order.

    Args:
        model: the eval-mode model that was analysed.
        plan_or_boundaries: a :class:`Plan` or the cut positions (start index of every segment
            but the first, in units of :func:`~carbonedge.partition.analysis.analyze`).
        input_shape: when given, the cut points are checked against ``model``'s forward on a
            random input of this shape first (None skips the check).

    Raises:
        PartitionError: no cut points, or boundaries out of range.
    """
    chain = find_chain(model)
    if input_shape is not None:
        check_chain(model, chain, tuple(input_shape))
    edges = _boundaries(plan_or_boundaries, len(chain))
    segments = [
        ModelSegment(i, start, stop, chain[start:stop])
        for i, (start, stop) in enumerate(itertools.pairwise(edges))
    ]
    # A new nn.Module starts in training mode; keep the model's mode (eval for inference),
    # or exporters that restore the mode afterwards would switch the shared layers to training.
    for segment in segments:
        segment.train(model.training)
    return segments


def export_segments_onnx(
    segments: Sequence[nn.Module],
    input_shape: tuple[int, ...],
    out_dir: str | Path,
    opset: int = 17,
) -> list[Path]:
    """Write ``segment_<i>.onnx`` for each segment into ``out_dir`` and return the paths.

    Each segment is traced (``torch.onnx.export(..., dynamo=False)``) on a zero tensor of the
    shape it receives: ``input_shape`` for the first, the previous segment's output after. The
    input is named ``input`` and the output ``output``; the batch dimension is dynamic.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    x = torch.zeros(tuple(input_shape))
    for i, segment in enumerate(segments):
        path = out / f"segment_{i}.onnx"
        with torch.no_grad():  # not inference_mode: the exporter traces with y as next input
            y = segment(x)
        torch.onnx.export(
            segment,
            (x,),
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
        )
        paths.append(path)
        x = y
    return paths
