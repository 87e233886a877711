"""Win-rate statistics: mean, standard error, and the length-controlled win rate."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def win_rate(scores: Sequence[float]) -> tuple[float | None, float | None]:
    """(WR, SE) in percent: WR = 100 * mean(s), SE = 100 * std(s, ddof=1) / sqrt(n)."""
    s = np.asarray(scores, dtype=float)
    if s.size == 0:
        return None, None
    se = 100 * float(s.std(ddof=1)) / math.sqrt(s.size) if s.size > 1 else None
    return 100 * float(s.mean()), se


def fit_logistic(x: np.ndarray, y: np.ndarray, slope_penalty: float = 1.0, iterations: int = 100) -> np.ndarray:
    """(b0, b1) of P(y=1) = sigmoid(b0 + b1 x) by Newton's method; y may be soft (ties are 0.5).

    A small ridge penalty on the slope (and a tiny one on the intercept) keeps the fit finite when length
    separates the outcomes perfectly (the `length` judge does exactly that).
    """
    X = np.column_stack([np.ones_like(x), x])
    penalty = np.diag([1e-6, slope_penalty])
    w = np.zeros(2)
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-np.clip(X @ w, -30, 30)))
        grad = X.T @ (p - y) + penalty @ w
        hess = (X * (p * (1 - p))[:, None]).T @ X + penalty
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return w


def length_controlled_win_rate(scores: Sequence[float], length_diff: Sequence[float]) -> float | None:
    """Win probability (percent) at zero length difference, from a logistic fit of the per-item outcome on
    tanh(length difference / its standard deviation), the bounded feature AlpacaEval's length control uses."""
    y = np.asarray(scores, dtype=float)
    d = np.asarray(length_diff, dtype=float)
    if y.size < 2:
        return None
    std = d.std()
    x = np.tanh(d / std) if std > 0 else np.zeros_like(d)
    b0, _ = fit_logistic(x, y)
    return float(100 / (1 + math.exp(-b0)))
