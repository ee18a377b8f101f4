"""Turning flows per movement, fitted to each scan's interval counts (numba).

Each scan, every lane's stop-line count is split over the lane's movements by shares fitted
so that, interval by interval, the flows into every outgoing link match its entry counts.
Shared lanes (right/through) are what this resolves; dedicated lanes are exact by
construction.
All kernels are ``@njit(cache=True)`` on flat arrays; parameters are passed in.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _arrivals(scan_stop, n_k, prev_stop, lag):
    """Each lane's count as it reaches the next links' entry loops, interval by interval.

    A vehicle counted at the stop line needs ``lag`` (a share of the interval) to reach the
    next entry loop, so that share of each interval's count arrives in the next interval
    (``prev_stop``: the previous scan's last interval). Returns (arrivals, their sums).
    """
    n_lanes = scan_stop.shape[1]
    arr, tot = np.zeros((n_k, n_lanes)), np.zeros(n_lanes)
    for k in range(n_k):
        for ln in range(n_lanes):
            before = scan_stop[k - 1, ln] if k > 0 else prev_stop[ln]
            arr[k, ln] = (1.0 - lag) * scan_stop[k, ln] + lag * before
            tot[ln] += arr[k, ln]
    return arr, tot


@njit(cache=True)
def fit_turning(scan_stop, scan_in, n_k, row_lane, row_mov, row_share, mov_to, link_seen,
                lane_seen, n_mov, iters, smoothing, prev_stop, lag):
    """Fit each lane's split over its movements to one scan of interval counts (EM).

    ``scan_stop[k, lane]`` are the stop-line counts and ``scan_in[k, link]`` the entry counts
    of the scan's ``n_k`` intervals. If a lane's split is constant within the scan, the entry
    count of an outgoing link in interval k is the sum over the rows feeding it of share x
    lane count in k. Approaches are green at different times, so the intervals separate
    what the scan totals cannot (a shared right/through lane). Multiplicative
    (Richardson-Lucy) updates keep shares >= 0 and summing to 1 per lane. Links without
    healthy entry loops (``link_seen`` False) do not constrain; lanes without a healthy
    stop-line loop (``lane_seen`` False) keep their shares (their imputed counts still feed
    the predictions). Counts reach the next entry loops ``lag`` (share of an interval) late.
    Starts from, and is smoothed towards, the previous shares. Returns movement counts over
    the scan and the new shares.
    """
    n_rows, n_lanes = row_lane.shape[0], scan_stop.shape[1]
    lane_tot = np.zeros(n_lanes)
    for k in range(n_k):
        for ln in range(n_lanes):
            lane_tot[ln] += scan_stop[k, ln]
    arr, arr_tot = _arrivals(scan_stop, n_k, prev_stop, lag)
    x = row_share.copy()
    pred = np.zeros(scan_in.shape[1])
    for _ in range(iters):
        f = np.zeros(n_rows)
        for k in range(n_k):
            pred[:] = 0.0
            for r in range(n_rows):
                pred[mov_to[row_mov[r]]] += x[r] * arr[k, row_lane[r]]
            for r in range(n_rows):
                o, ln = mov_to[row_mov[r]], row_lane[r]
                if arr_tot[ln] > 0 and pred[o] > 0 and link_seen[o]:
                    f[r] += arr[k, ln] / arr_tot[ln] * scan_in[k, o] / pred[o]
                elif arr_tot[ln] > 0:
                    f[r] += arr[k, ln] / arr_tot[ln]
        tot = np.zeros(n_lanes)
        for r in range(n_rows):
            x[r] *= f[r] if arr_tot[row_lane[r]] > 0 and lane_seen[row_lane[r]] else 1.0
            tot[row_lane[r]] += x[r]
        for r in range(n_rows):
            if tot[row_lane[r]] > 0:
                x[r] /= tot[row_lane[r]]
            else:
                x[r] = row_share[r]
    mov_count = np.zeros(n_mov)
    share = row_share.copy()
    for r in range(n_rows):
        mov_count[row_mov[r]] += x[r] * lane_tot[row_lane[r]]
        if lane_tot[row_lane[r]] > 0 and lane_seen[row_lane[r]]:
            share[r] = (1 - smoothing) * row_share[r] + smoothing * x[r]
    return mov_count, share


@njit(cache=True)
def turning_ratios(mov_count, prev_ratio, mov_from, n_links):
    """Turning ratios from movement counts; a link with no outflow keeps its previous ratios."""
    tot = np.zeros(n_links)
    for m in range(mov_count.shape[0]):
        tot[mov_from[m]] += mov_count[m]
    ratio = prev_ratio.copy()
    for m in range(mov_count.shape[0]):
        if tot[mov_from[m]] > 0:
            ratio[m] = mov_count[m] / tot[mov_from[m]]
    return ratio


def prior_shares(
    row_lane: np.ndarray, mov_from: np.ndarray, *, n_lanes: int, n_links: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Equal split of each lane over its movements; equal turning ratios per link."""
    per_lane = np.bincount(row_lane, minlength=n_lanes).astype(np.float64)
    share = 1.0 / per_lane[row_lane] if row_lane.size else np.zeros(0)
    per_link = np.bincount(mov_from, minlength=n_links).astype(np.float64)
    ratio = 1.0 / per_link[mov_from] if mov_from.size else np.zeros(0)
    return share, ratio
