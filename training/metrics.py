"""Small numeric helpers shared by the benchmarks and the telemetry CLI, so every report computes
percentiles the same way."""
from __future__ import annotations


def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100) of `values`; None when empty."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def percentiles(values: list[float]) -> dict[str, float | None]:
    """P50 / P90 / P99 as a JSON-ready dict (None when there are no values)."""
    return {f"p{q}": percentile(values, q) for q in (50, 90, 99)}
