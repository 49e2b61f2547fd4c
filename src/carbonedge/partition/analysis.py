"""Layer analysis: a model's cut-able units with Eq. 5, MACs and measured latency (adapter).

For every unit found by :func:`carbonedge.partition.chain.find_chain` this records its
parameters, output activation size and three costs (see :class:`~carbonedge.partition.units.Unit`):

- Eq. 5 (Section III.E) summed over every module inside the unit: each convolution adds
  ``prod(kernel) x Cin x Cout`` (groups and bias ignored, as printed), each ``nn.Linear`` adds
  ``Nin x Nout`` (bias ignored), every other module adds the parameters it owns directly
  (BatchNorm: weight + bias = 2C; activations, pooling: 0);
- MACs at the analysed input: forward hooks on convolutions (``numel(out) x Cin/groups x
  prod(kernel)``) and linear layers (``numel(out) x Nin``); nothing else counts;
- latency: each unit alone on its real input, one thread, median of ``repeats`` timed runs after
  one warm-up, in ms.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from carbonedge.models.macs import counting_macs
from carbonedge.partition.chain import Chain, check_chain, find_chain
from carbonedge.partition.eq5 import eq5_conv, eq5_linear
from carbonedge.partition.errors import PartitionError
from carbonedge.partition.units import Unit


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one intra-op thread inside the block, restoring the previous setting."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def eq5_cost(module: nn.Module) -> int:
    """Eq. 5 summed over ``module`` and everything inside it (see the module docstring)."""
    total = 0
    for sub in module.modules():
        if isinstance(sub, nn.modules.conv._ConvNd):
            total += eq5_conv(tuple(sub.kernel_size), sub.in_channels, sub.out_channels)
        elif isinstance(sub, nn.Linear):
            total += eq5_linear(sub.in_features, sub.out_features)
        else:
            total += sum(p.numel() for p in sub.parameters(recurse=False))
    return total


def count_unit_macs(module: nn.Module, x: torch.Tensor) -> tuple[int, torch.Tensor]:
    """MACs of one forward of ``module`` on ``x`` (conv and linear layers), and its output."""
    with counting_macs(module) as count, torch.inference_mode():
        out = module(x)
    return count.total, out


def measure_ms(fn: Callable[[torch.Tensor], Any], x: torch.Tensor, repeats: int = 5) -> float:
    """Median wall time of ``fn(x)`` over ``repeats`` runs after one warm-up, one thread, ms."""
    if repeats < 1:
        raise PartitionError(f"repeats = {repeats!r}: at least one timed run is needed")
    times = []
    with one_thread(), torch.inference_mode():
        fn(x)
        for _ in range(repeats):
            start = time.perf_counter_ns()
            fn(x)
            times.append((time.perf_counter_ns() - start) / 1e6)
    return statistics.median(times)


def _type_name(module: nn.Module) -> str:
    if type(module) is nn.Sequential:
        inner = "+".join(type(c).__name__ for c in module.children())
        return f"Sequential({inner})" if len(inner) <= 40 else "Sequential"
    return type(module).__name__


def analyze_chain(chain: Chain, input_shape: tuple[int, ...], repeats: int = 5) -> list[Unit]:
    """Analyse an already-checked chain (see :func:`analyze`)."""
    x = torch.randn(input_shape, generator=torch.Generator().manual_seed(0))
    units = []
    for index, (name, module) in enumerate(chain):
        macs, out = count_unit_macs(module, x)
        if not isinstance(out, torch.Tensor):
            raise PartitionError(f"unit {name!r} returns {type(out).__name__}, not one tensor")
        latency = measure_ms(module, x, repeats)
        units.append(
            Unit(
                index=index,
                name=name,
                type=_type_name(module),
                parameters=sum(p.numel() for p in module.parameters()),
                output_shape=tuple(out.shape),
                output_bytes=out.numel() * out.element_size(),
                eq5_cost=float(eq5_cost(module)),
                macs=macs,
                latency_ms=latency,
            )
        )
        x = out
    return units


def analyze(
    model: nn.Module, input_shape: tuple[int, ...] = (1, 3, 224, 224), repeats: int = 5
) -> list[Unit]:
    """Ordered cut-able units of ``model`` with Eq. 5, MACs and measured latency (Sec. III.E).

    Args:
        model: an eval-mode ``nn.Module`` (an ``nn.Sequential``, a torchvision-style or a
            timm-style MobileNet; see :mod:`carbonedge.partition.chain`).
        input_shape: the input the costs and activation sizes are measured at, (B, C, H, W).
        repeats: timed runs per unit (median taken), one thread.

    Raises:
        PartitionError: training-mode model, no cut points, or units that do not reproduce the
            model's forward.
    """
    if model.training:
        raise PartitionError(
            f"{type(model).__name__} is in training mode; call model.eval() before analyze()"
        )
    chain = find_chain(model)
    check_chain(model, chain, tuple(input_shape))
    return analyze_chain(chain, tuple(input_shape), repeats)


def whole_model_ms(
    model: nn.Module, input_shape: tuple[int, ...] = (1, 3, 224, 224), repeats: int = 5
) -> float:
    """Median latency of the whole model on one thread, ms (see :func:`measure_ms`)."""
    x = torch.randn(tuple(input_shape), generator=torch.Generator().manual_seed(0))
    return measure_ms(model, x, repeats)
