"""Exact combination of running mean/variance statistics (Chan et al., 1979).

A statistic is ``(n, mean, m2)`` with ``m2`` the sum of squared deviations from the mean.
"""

from __future__ import annotations

import numpy as np

Stat = tuple[int, np.ndarray, np.ndarray]


def stat_of(samples: list[float]) -> Stat:
    """``(n, mean, m2)`` of a list of scalar samples."""
    x = np.asarray(samples, dtype=np.float64)
    mean = x.mean()
    return len(x), mean, np.square(x - mean).sum()


def combine(a: Stat, b: Stat) -> Stat:
    """Statistics of the union of two disjoint sample sets."""
    n_a, mean_a, m2_a = a
    n_b, mean_b, m2_b = b
    n = n_a + n_b
    if n_a == 0:
        return b
    if n_b == 0:
        return a
    delta = mean_b - mean_a
    mean = mean_a + delta * (n_b / n)
    m2 = m2_a + m2_b + delta**2 * (n_a * n_b / n)
    return n, mean, m2


def subtract(total: Stat, base: Stat) -> Stat:
    """Statistics of ``total``'s samples that are not in ``base`` (base ⊆ total)."""
    n_t, mean_t, m2_t = total
    n_b, mean_b, m2_b = base
    n = n_t - n_b
    if n <= 0:
        return 0, np.zeros_like(mean_t), np.zeros_like(m2_t)
    if n_b == 0:
        return total
    mean = (n_t * mean_t - n_b * mean_b) / n
    m2 = m2_t - m2_b - (mean - mean_b) ** 2 * (n_b * n / n_t)
    return n, mean, np.maximum(m2, 0.0)
