"""Statistics over repeats: mean and 95% confidence interval (Student t), percentiles.

The paper reports "95% confidence intervals" over three repeats (IV.A.4). The interval here is
``mean ± t_{0.975, n-1} x s / sqrt(n)`` with ``s`` the sample standard deviation. The t
quantile is scipy's (``scipy.stats.t.ppf``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def t_quantile_975(df: int) -> float:
    """Two-sided 95% Student t quantile for ``df`` degrees of freedom (df >= 1), scipy's."""
    if df < 1:
        raise ValueError(f"df must be >= 1, got {df}")
    from scipy import stats

    return float(stats.t.ppf(0.975, df))


@dataclass(frozen=True)
class MeanCI:
    """Mean of ``n`` values and the half-width of its 95% CI (NaN when n < 2).

    Units are those of the values.
    """

    mean: float
    half_width: float
    n: int

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    @property
    def relative(self) -> float:
        """Half-width over |mean| (the paper's "CI below 15% of mean"); NaN if undefined."""
        if self.n < 2 or self.mean == 0 or math.isnan(self.half_width):
            return math.nan
        return self.half_width / abs(self.mean)

    def format(self, digits: int = 2, *, scientific: bool = False) -> str:
        """``12.34 ± 0.56`` (or ``12.34`` when there is one value)."""
        spec = f".{digits}{'e' if scientific else 'f'}"
        if math.isnan(self.mean):
            return "n/a"
        if self.n < 2 or math.isnan(self.half_width):
            return format(self.mean, spec)
        return f"{format(self.mean, spec)} ± {format(self.half_width, spec)}"

    def to_dict(self) -> dict[str, float | int | None]:
        def num(x: float) -> float | None:
            return None if math.isnan(x) else x

        return {"mean": num(self.mean), "ci95": num(self.half_width), "n": self.n}


def mean_ci(values: Sequence[float]) -> MeanCI:
    """Mean and 95% CI half-width (Student t, n-1 df) of ``values``; NaN values are dropped."""
    xs = [float(v) for v in values if not math.isnan(float(v))]
    n = len(xs)
    if n == 0:
        return MeanCI(math.nan, math.nan, 0)
    mean = math.fsum(xs) / n
    if n == 1:
        return MeanCI(mean, math.nan, 1)
    var = math.fsum((x - mean) ** 2 for x in xs) / (n - 1)
    return MeanCI(mean, t_quantile_975(n - 1) * math.sqrt(var / n), n)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation between order statistics."""
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"q must be in 0..100, got {q}")
    xs = sorted(float(v) for v in values)
    if not xs:
        return math.nan
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)
