"""Small exact statistics: a rate with its Wilson score interval, and a median."""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import median
from typing import Iterable

__all__ = ["Rate", "wilson", "median_or_none", "mean_or_none"]

Z95 = 1.959963984540054  # the two-sided 95 % normal quantile


@dataclass(frozen=True, slots=True)
class Rate:
    hits: int
    n: int
    low: float | None = None  # Wilson score interval (95 %)
    high: float | None = None

    @property
    def value(self) -> float | None:
        return self.hits / self.n if self.n else None

    def __str__(self) -> str:
        if not self.n:
            return "–"
        return f"{self.value:.1%} [{self.low:.1%}, {self.high:.1%}] ({self.hits}/{self.n})"


def wilson(hits: int, n: int, z: float = Z95) -> Rate:
    """``hits`` of ``n`` with the Wilson score interval: well behaved at 0 %, 100 % and small n."""
    if n <= 0:
        return Rate(hits, 0)
    if not 0 <= hits <= n:
        raise ValueError(f"hits must be between 0 and n, got {hits} of {n}")
    p = hits / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return Rate(hits, n, max(0.0, centre - half), min(1.0, centre + half))


def median_or_none(values: Iterable[float]) -> float | None:
    values = list(values)
    return median(values) if values else None


def mean_or_none(values: Iterable[float]) -> float | None:
    values = list(values)
    return sum(values) / len(values) if values else None
