"""A node's response time as a queue with near-constant service (an inference of one model
takes about the same time each run), for the simulator's latencies.

A node runs ``servers`` inferences at once, each taking ``service_s``; requests arrive at
``rate`` per second (Poisson). With offered load ``a = rate x service_s`` and utilisation
``a / servers < 1``, the chance to wait is Erlang's C formula ``C(servers, a)``, and the wait,
when there is one, is taken as exponential with mean ``service_s / (2 (servers - a))``: the
M/M/c conditional wait halved, the Allen-Cunneen approximation for deterministic service
(squared coefficient of variation 0). For one server the mean wait is then
Pollaczek-Khinchine's exact ``rho x service_s / (2 (1 - rho))``. So

    T = service_s + W,  P(W > 0) = C,  P(T > t) = C exp(-(t - service_s) / m) for t >= service_s.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

__all__ = ["erlang_c", "mean_response_s", "response_survival"]

Array = npt.NDArray[np.float64]


def erlang_c(servers: int, a: float) -> float:
    """Probability that an arrival waits (M/M/c, offered load ``a`` < ``servers``), by Erlang
    B's stable recurrence ``B_k = a B_{k-1} / (k + a B_{k-1})``, ``C = B / (1 - rho (1 - B))``."""
    if a <= 0.0:
        return 0.0
    if a >= servers:
        return 1.0
    b = 1.0
    for k in range(1, servers + 1):
        b = a * b / (k + a * b)
    return b / (1.0 - (a / servers) * (1.0 - b))


def mean_response_s(servers: int, service_s: float, rate_per_s: float) -> float:
    """Mean time in the node (s): service plus the mean wait; ``inf`` at saturation."""
    a = rate_per_s * service_s
    if a >= servers:
        return math.inf
    return service_s + erlang_c(servers, a) * service_s / (2.0 * (servers - a))


def response_survival(
    servers: npt.NDArray[np.int64], service_s: Array, rate_per_s: Array, t_s: Array
) -> Array:
    """``P(T > t)`` per node (rows) and time (columns); ``t_s`` (K,) for all rows or (N, K)."""
    a = rate_per_s * service_s
    c = np.array([erlang_c(int(k), float(x)) for k, x in zip(servers, a, strict=True)])
    room = np.maximum(servers - a, 1e-12)
    mean_wait = (service_s / (2.0 * room))[:, None]
    t = t_s if t_s.ndim == 2 else t_s[None, :]
    late = t - service_s[:, None]
    tail = c[:, None] * np.exp(-np.maximum(late, 0.0) / mean_wait)
    return np.where(late < 0.0, 1.0, tail)
