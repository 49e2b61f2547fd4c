"""Weights of Eq. 3 and the scheduling modes of Table I.

``S = wR SR + wL SL + wP SP + wB SB + wC SC`` (paper Eq. 3). Weights are kept exactly as given,
never rescaled: Table I's rows already sum to 1.0, and every policy's choice is unchanged when all
five weights are multiplied by the same positive factor (only the printed totals scale).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from carbonedge.errors import ConfigError

__all__ = ["MODES", "Weights", "resolve_weights"]

_NAMES = ("w_r", "w_l", "w_p", "w_b", "w_c")


@dataclass(frozen=True, slots=True)
class Weights:
    """The five weights of Eq. 3, dimensionless.

    Attributes:
        w_r: resource availability (SR).
        w_l: load balance (SL).
        w_p: performance (SP).
        w_b: fairness / balance (SB).
        w_c: carbon efficiency (SC, Eq. 4).

    Raises:
        ConfigError: unless all five are finite numbers >= 0 and at least one is > 0.
    """

    w_r: float
    w_l: float
    w_p: float
    w_b: float
    w_c: float

    def __post_init__(self) -> None:
        for name in _NAMES:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"weights.{name}: must be a number, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"weights.{name}: must be a finite number >= 0, got {value!r}")
        if not any(self.as_tuple()):
            raise ConfigError("weights: at least one of wR, wL, wP, wB, wC must be > 0")

    def as_tuple(self) -> tuple[float, float, float, float, float]:
        """``(wR, wL, wP, wB, wC)`` as floats, in Eq. 3's order."""
        return (
            float(self.w_r),
            float(self.w_l),
            float(self.w_p),
            float(self.w_b),
            float(self.w_c),
        )

    @classmethod
    def from_sequence(cls, values: Sequence[float]) -> Weights:
        """Build from five numbers in Eq. 3's order (wR, wL, wP, wB, wC)."""
        if len(values) != 5:
            raise ConfigError(
                f"weights: need 5 numbers (wR,wL,wP,wB,wC), got {len(values)}: {list(values)!r}"
            )
        return cls(*values)

    @classmethod
    def parse(cls, text: str) -> Weights:
        """Parse ``"wR,wL,wP,wB,wC"``, e.g. ``"0.2,0.2,0.15,0.15,0.3"``."""
        parts = [p.strip() for p in text.split(",")]
        try:
            numbers = [float(p) for p in parts]
        except ValueError:
            raise ConfigError(
                f"weights: expected 5 comma-separated numbers wR,wL,wP,wB,wC, got {text!r}"
            ) from None
        return cls.from_sequence(numbers)

    def with_carbon(self, w_c: float) -> Weights:
        """These weights with wC set to ``w_c`` and the other four scaled to sum to ``1 - w_c``.

        The other four keep their proportions: ``w_x' = w_x (1 - w_c) / (wR + wL + wP + wB)``.
        This is how :func:`~carbonedge.scheduling.sweep_wc` moves along Fig. 3's axis.
        """
        if not 0.0 <= w_c <= 1.0:
            raise ConfigError(f"w_c: must be between 0 and 1, got {w_c!r}")
        rest = self.w_r + self.w_l + self.w_p + self.w_b
        if rest == 0:
            raise ConfigError("weights: wR+wL+wP+wB is 0, nothing to scale against w_c")
        k = (1.0 - w_c) / rest
        return Weights(self.w_r * k, self.w_l * k, self.w_p * k, self.w_b * k, w_c)


#: Table I of the paper (read-only).
MODES: Mapping[str, Weights] = MappingProxyType(
    {
        "performance": Weights(0.25, 0.25, 0.30, 0.15, 0.05),
        "balanced": Weights(0.20, 0.20, 0.15, 0.15, 0.30),
        "green": Weights(0.15, 0.15, 0.10, 0.10, 0.50),
    }
)


def resolve_weights(mode: str | Weights | Sequence[float]) -> Weights:
    """A Table I mode by name, a :class:`Weights`, or five numbers (wR, wL, wP, wB, wC)."""
    if isinstance(mode, Weights):
        return mode
    if isinstance(mode, str):
        try:
            return MODES[mode]
        except KeyError:
            raise ConfigError(
                f"mode: unknown mode {mode!r}; choose one of {', '.join(sorted(MODES))}"
            ) from None
    return Weights.from_sequence(list(mode))
