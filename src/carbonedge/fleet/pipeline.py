"""A partitioned model run as a pipeline across nodes (paper III.E-F).

Segments (``carbonedge.partition.build_segments``) are deployed one per stage; a task runs stage
after stage, and each stage's output activation is handed to the next stage's node *through the
parent* (pipe to the parent, pipe to the next node). Routing through the parent keeps one code
path for every backend (only ``FleetBackend.submit`` is used) and lets the dispatcher see every
hop; the cost is one extra copy per hop, measured by ``bench_fleet.py`` as ``handoff_ms``.
"""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from carbonedge.fleet.base import (
    FleetBackend,
    ModuleBlob,
    Pipeline,
    RuntimeKind,
    TaskResult,
)

if TYPE_CHECKING:
    import torch

    from carbonedge.fleet.base import Array


@dataclass(frozen=True)
class PipelineResult:
    """A pipelined task: per-stage results in order; times in ms.

    ``latency_ms``: submit of stage 1 to result of the last stage. ``handoff_ms``: latency minus
    the stages' execution times (pipes, pickling, queueing: the cost of handing activations on).
    """

    task_id: str
    stages: tuple[TaskResult, ...]
    output: Array
    latency_ms: float

    @property
    def exec_ms(self) -> float:
        return sum(s.exec_ms for s in self.stages)

    @property
    def handoff_ms(self) -> float:
        return self.latency_ms - self.exec_ms

    @property
    def cpu_s(self) -> float:
        return sum(s.cpu_s for s in self.stages)


def module_payload(
    module: torch.nn.Module, input_shape: tuple[int, ...], label: str = "module"
) -> ModuleBlob:
    """Serialise ``module`` with ``torch.save`` so that a node can load and run it."""
    import torch

    buf = io.BytesIO()
    torch.save(module, buf)
    return ModuleBlob(buf.getvalue(), label, tuple(input_shape))


def segment_payloads(
    segments: Sequence[torch.nn.Module], input_shape: tuple[int, ...], label: str = "seg"
) -> list[ModuleBlob]:
    """Payloads for consecutive segments; each stage's input shape is found with a zero batch."""
    import torch

    payloads = []
    shape = tuple(input_shape)
    x = torch.zeros(shape)
    for i, seg in enumerate(segments):
        seg.eval()
        payloads.append(module_payload(seg, shape, f"{label}{i}"))
        with torch.inference_mode():
            x = seg(x)
        shape = tuple(x.shape)
    return payloads


def deploy_pipeline(
    fleet: FleetBackend,
    segments: Sequence[torch.nn.Module] | Sequence[ModuleBlob],
    nodes: Sequence[str],
    runtime: RuntimeKind = "torch",
    *,
    input_shape: tuple[int, ...] = (1, 3, 224, 224),
    name: str = "pipeline",
) -> Pipeline:
    """Deploy segment ``i`` on ``nodes[i]``; returns the stages to pass to ``submit_pipeline``."""
    if len(segments) != len(nodes):
        from carbonedge.fleet.base import DeployError

        raise DeployError(f"{len(segments)} segments but {len(nodes)} nodes given")
    payloads: list[ModuleBlob] = [s for s in segments if isinstance(s, ModuleBlob)]
    if len(payloads) != len(segments):
        payloads = segment_payloads(segments, input_shape, f"{name}/seg")  # type: ignore[arg-type]
    stages = []
    for i, (payload, node) in enumerate(zip(payloads, nodes, strict=True)):
        key = fleet.deploy(payload, [node], runtime, key=f"{name}/{i}/{runtime}")
        stages.append((node, key))
    return Pipeline(tuple(stages))


def submit_pipeline(
    fleet: FleetBackend, pipeline: Pipeline, batch: Array, *, task_id: str | None = None
) -> Future[PipelineResult]:
    """Run ``batch`` through every stage in order; the future fails if any stage fails."""
    task_id = task_id or uuid.uuid4().hex[:12]
    done: Future[PipelineResult] = Future()
    results: list[TaskResult] = []
    t0 = time.perf_counter()

    def step(i: int, x: Any) -> None:
        node, key = pipeline.stages[i]
        fut = fleet.submit(node, key, x, task_id=f"{task_id}/{i}")

        def on_done(f: Future[TaskResult]) -> None:
            exc = f.exception()
            if exc is not None:
                done.set_exception(exc)
                return
            res = f.result()
            results.append(res)
            if i + 1 < len(pipeline.stages):
                try:
                    step(i + 1, res.output)
                except Exception as e:
                    done.set_exception(e)
            else:
                latency_ms = (time.perf_counter() - t0) * 1000.0
                done.set_result(PipelineResult(task_id, tuple(results), res.output, latency_ms))

        fut.add_done_callback(on_done)

    step(0, batch)
    return done
