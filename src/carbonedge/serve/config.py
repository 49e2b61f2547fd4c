"""Settings of ``carbonedge serve``: what the HTTP front serves, plus the engine's settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from carbonedge.engine import EngineSettings
from carbonedge.errors import ConfigError
from carbonedge.serve.limits import ServerLimits

DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024

__all__ = ["DEFAULT_MAX_BODY_BYTES", "ServeConfig"]


@dataclass(frozen=True)
class ServeConfig:
    """What the server runs.

    Attributes:
        model: a name ``carbonedge.models.build_model`` accepts (paper model by default).
        weights: a checkpoint file, or None for seeded random weights (predictions meaningless).
        seed: seed of the random weights.
        runtime: ``"torch"`` (eager, the paper's) or ``"onnx"`` (ONNX Runtime).
        host, port: where to listen (port 0: a free port chosen by the OS).
        max_body_bytes: largest request body accepted, in bytes (larger: HTTP 413).
        backlog: the listening socket's queue of connections not yet accepted.
        tenants: the tenants file (API keys, budgets; ``carbonedge tenants``); None or a
            missing file: no tenants, requests need no key (loopback addresses only).
        allow_open: serve without tenants on an address other than loopback.
        limits: time per request head and body, open connections, bodies held at once,
            concurrent decodes (:class:`carbonedge.serve.limits.ServerLimits`).
        engine: the fleet, backend, scheduler, meter, ledger and admission settings.
    """

    model: str = "mobilenet_v2"
    weights: str | None = None
    seed: int = 0
    runtime: Literal["torch", "onnx"] = "torch"
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    backlog: int = 2048
    tenants: Path | None = None
    allow_open: bool = False
    limits: ServerLimits = field(default_factory=ServerLimits)
    engine: EngineSettings = field(default_factory=lambda: EngineSettings(run_prefix="serve"))

    def __post_init__(self) -> None:
        if self.runtime not in ("torch", "onnx"):
            raise ConfigError(f"runtime: must be 'torch' or 'onnx', got {self.runtime!r}")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port: must be 0..65535, got {self.port}")
        if self.max_body_bytes < 1:
            raise ConfigError(f"max_body_bytes: must be >= 1, got {self.max_body_bytes}")
        if not self.engine.window_s > 0:
            raise ConfigError(
                f"window_s: must be a number > 0 (seconds; the meter window whose rates charge "
                f"requests), got {self.engine.window_s}"
            )
        if self.backlog < 1:
            raise ConfigError(f"backlog: must be >= 1, got {self.backlog}")
        if self.engine.slo_ms is not None and not self.engine.slo_ms > 0:
            raise ConfigError(f"slo_ms: must be > 0, got {self.engine.slo_ms}")
        if self.engine.slo_ms is not None and self.engine.policy != "constrained":
            raise ConfigError(
                f"slo_ms: applies to policy 'constrained' only, policy is {self.engine.policy!r}"
            )

    @property
    def weights_note(self) -> str:
        """One sentence on the weights, repeated in every response."""
        if self.weights is None:
            return (
                f"random weights (seed {self.seed}): latency and energy are real, "
                "predictions are meaningless"
            )
        return f"weights from checkpoint {self.weights}"
