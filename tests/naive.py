"""Slow, obvious Python versions of the estimator kernels: test oracles (like stumpy's naive.py)."""

from __future__ import annotations

import numpy as np


def naive_kalman(cell, beta, p, u, uv, w, wv, z, zr, *, free_frac=None, free_stay=1.0,
                 cap=np.inf, process_var=0.0, sink_var=0.0, exit_jam=0.0):
    """One predict/update of one cell with explicit 2x2 matrices.

    x = [N, beta]; predict x' = F x + [u - w, 0] with F = [[a, -b], [0, 1]], where a = 1, or
    1 - free_frac for a free exit (then w = free_frac * N is implied by a, and only the share
    ``free_stay`` of this interval's inflow, the part that entered less than one travel time
    ago, is still in the cell); the loss base b is the inflow u, blended towards the outflow w
    by ``exit_jam`` (0-1, how jammed the exit is; a free exit always uses u);
    P' = F P F^T + diag(process_var + uv + wv, sink_var). Measurement z of N (an interval mean,
    shifted by half the predicted change), H = [1, 0]. The cell is kept within +-``cap``, its variance within ``cap``^2.
    """
    a = 1.0 if free_frac is None else 1.0 - free_frac
    w_used = 0.0 if free_frac is not None else w
    b = u if free_frac is not None else (1.0 - exit_jam) * u + exit_jam * w
    F = np.array([[a, -b], [0.0, 1.0]])
    stay = 1.0 if free_frac is None else free_stay
    x = np.array([a * cell + stay * u - w_used - beta * b, beta])
    P = F @ p @ F.T + np.diag([process_var + uv + wv, sink_var])
    if not np.isnan(z):
        H = np.array([[1.0, 0.0]])
        zz = z + 0.5 * (x[0] - cell)
        S = (H @ P @ H.T)[0, 0] + zr
        K = (P @ H.T / S)[:, 0]
        x = x + K * (zz - x[0])
        P = P - np.outer(K, H @ P)
    if P[0, 0] > cap * cap:  # the uncertainty is bounded by the cell's storage too
        f = cap / np.sqrt(P[0, 0])
        P = np.array([[cap * cap, P[0, 1] * f], [P[1, 0] * f, P[1, 1]]])
    return min(max(x[0], -cap), cap), min(max(x[1], -0.5), 0.9), P


def naive_conservation(inflow: np.ndarray, outflow: np.ndarray) -> np.ndarray:
    """Vehicles in a cell after each interval: cumulative in minus cumulative out."""
    return np.cumsum(np.asarray(inflow, dtype=float) - np.asarray(outflow, dtype=float))


def naive_ratios(mov_count: np.ndarray, mov_from: np.ndarray, prev: np.ndarray) -> np.ndarray:
    """Share of each movement in its from-link's total; links without flow keep ``prev``."""
    out = prev.astype(float).copy()
    for m in range(len(mov_count)):
        tot = sum(mov_count[k] for k in range(len(mov_count)) if mov_from[k] == mov_from[m])
        if tot > 0:
            out[m] = mov_count[m] / tot
    return out


def naive_density(occ: float, veh_len: float, jam: float) -> float:
    """Vehicles per metre of lane from occupancy %, at most jam density."""
    if np.isnan(occ) or occ <= 0:
        return 0.0
    return min(occ / 100.0 / veh_len, 1.0 / jam)
