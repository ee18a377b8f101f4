"""Turning flows per movement: iterative proportional fitting of lane counts (numba).

Each scan, stop-line lane counts are split over the lane's movements by the previous shares,
then alternately scaled so that the flows into every outgoing link match its entry counts
(normalised per intersection) and every lane's total matches its stop-line count. Shared
lanes (right/through) are what this resolves; dedicated lanes are exact by construction.
All kernels are ``@njit(cache=True)`` on flat arrays; parameters are passed in.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def fit_turning(acc_stop, acc_in, row_lane, row_mov, row_share, mov_from, mov_to, mov_int,
             lane_link, n_int, n_links, iters, smoothing):
    """Fit movement counts to stop-line lane counts and outgoing entry counts (IPF) per scan.

    Start from each lane's count split by the previous shares; alternately scale the rows of
    each outgoing link to its (intersection-normalised) entry count and re-split every lane
    to its stop-line count. Returns movement counts and the smoothed new row shares.
    """
    n_rows, n_mov = row_lane.shape[0], mov_from.shape[0]
    x = np.zeros(n_rows)
    for r in range(n_rows):
        x[r] = acc_stop[row_lane[r]] * row_share[r]
    s_int, e_int = np.zeros(n_int), np.zeros(n_int)
    seen = np.full(n_links, -1)
    for r in range(n_rows):
        i = mov_int[row_mov[r]]
        s_int[i] += x[r]
        o = mov_to[row_mov[r]]
        if seen[o] != i:  # each outgoing link once per intersection
            seen[o] = i
            e_int[i] += acc_in[o]
    for _ in range(iters):
        tot_o = np.zeros(n_links)
        for r in range(n_rows):
            tot_o[mov_to[row_mov[r]]] += x[r]
        for r in range(n_rows):
            i, o = mov_int[row_mov[r]], mov_to[row_mov[r]]
            if tot_o[o] > 0 and e_int[i] > 0:
                x[r] *= min(max(acc_in[o] * s_int[i] / e_int[i] / tot_o[o], 0.2), 5.0)
        lane_tot = np.zeros(acc_stop.shape[0])
        for r in range(n_rows):
            lane_tot[row_lane[r]] += x[r]
        for r in range(n_rows):
            if lane_tot[row_lane[r]] > 0:
                x[r] *= acc_stop[row_lane[r]] / lane_tot[row_lane[r]]
    share = row_share.copy()
    lane_tot = np.zeros(acc_stop.shape[0])
    for r in range(n_rows):
        lane_tot[row_lane[r]] += x[r]
    for r in range(n_rows):
        if lane_tot[row_lane[r]] > 0:
            share[r] = (1 - smoothing) * row_share[r] + smoothing * x[r] / lane_tot[row_lane[r]]
    mov_count = np.zeros(n_mov)
    for r in range(n_rows):
        mov_count[row_mov[r]] += x[r]
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
