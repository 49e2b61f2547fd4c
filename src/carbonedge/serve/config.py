"""Settings of ``carbonedge serve``: one frozen dataclass, validated where it is built."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from carbonedge.errors import ConfigError

MeterKind = Literal["codecarbon", "fake"]
METER_KINDS: tuple[str, ...] = ("codecarbon", "fake")
DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024

__all__ = ["DEFAULT_MAX_BODY_BYTES", "METER_KINDS", "MeterKind", "ServeConfig"]


@dataclass(frozen=True)
class ServeConfig:
    """What the server runs and how it accounts for energy.

    Attributes:
        model: a name ``carbonedge.models.build_model`` accepts (paper model by default).
        weights: a checkpoint file, or None for seeded random weights (predictions meaningless).
        seed: seed of the random weights.
        runtime: ``"torch"`` (eager, the paper's) or ``"onnx"`` (ONNX Runtime).
        mode: Table I mode (``performance``, ``balanced``, ``green``).
        policy: scheduler policy (``paper``, ``normalized``, ``constrained``).
        slo_ms: latency SLO per task in ms for the ``constrained`` policy (None: none).
        host, port: where to listen (port 0: a free port chosen by the OS).
        max_body_bytes: largest request body accepted, in bytes (larger: HTTP 413).
        ledger: SQLite ledger file, or None for an in-memory ledger (lost on exit).
        meter: ``"codecarbon"`` (CodeCarbon's OfflineEmissionsTracker) or ``"fake"``.
        window_s: length of one meter window in s; per-request energy uses the last closed one.
        measure_power_secs: CodeCarbon's sampling interval in s.
        country_iso_code: recorded with CodeCarbon readings (3 letters), optional.
    """

    model: str = "mobilenet_v2"
    weights: str | None = None
    seed: int = 0
    runtime: Literal["torch", "onnx"] = "torch"
    mode: str = "balanced"
    policy: str = "normalized"
    slo_ms: float | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    ledger: Path | None = None
    meter: MeterKind = "codecarbon"
    window_s: float = 5.0
    measure_power_secs: float = 1.0
    country_iso_code: str | None = None

    def __post_init__(self) -> None:
        if self.runtime not in ("torch", "onnx"):
            raise ConfigError(f"runtime: must be 'torch' or 'onnx', got {self.runtime!r}")
        if self.meter not in METER_KINDS:
            raise ConfigError(f"meter: must be one of {METER_KINDS}, got {self.meter!r}")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port: must be 0..65535, got {self.port}")
        if self.max_body_bytes < 1:
            raise ConfigError(f"max_body_bytes: must be >= 1, got {self.max_body_bytes}")
        for name in ("window_s", "measure_power_secs"):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ConfigError(f"{name}: must be a number > 0 (seconds), got {value}")
        if self.slo_ms is not None and not self.slo_ms > 0:
            raise ConfigError(f"slo_ms: must be > 0, got {self.slo_ms}")
        if self.slo_ms is not None and self.policy != "constrained":
            raise ConfigError(
                f"slo_ms: applies to policy 'constrained' only, policy is {self.policy!r}"
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
