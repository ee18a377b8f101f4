"""Cycle length and green splits from flow ratios: Webster's method on critical lanes.

Webster (1958): cycle C = (1.5 L + 5) / (1 - Y), with L the lost time per cycle and Y the sum
of the phases' critical flow ratios y = q / s; greens share C - clearances in proportion to y.
We use the critical *lane* of each phase (HCM), so shared lanes count all movements on them.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from signalopt.network import CompiledNetwork


def lane_of_triple(net: CompiledNetwork) -> np.ndarray:
    """Index of the approach lane of each (link, lane, movement) triple."""
    key = net.lane_mov_link * 1024 + net.lane_mov_lane
    _, inverse = np.unique(key, return_inverse=True)
    return inverse.astype(np.int64)


def phase_flow_ratios(
    net: CompiledNetwork, mov_flow: np.ndarray, *, lane_index: np.ndarray, sat_flow_lane: float
) -> np.ndarray:
    """Critical flow ratio y of every phase (0 for clearances): its busiest lane's q / s."""
    return _phase_flow_ratios(
        np.ascontiguousarray(mov_flow, dtype=np.float64), net.mov_lanes, net.lane_mov_mov,
        lane_index, net.phase_mov_indptr, net.phase_mov, float(sat_flow_lane),
    )


@njit(cache=True)
def _phase_flow_ratios(mov_flow, mov_lanes, triple_mov, triple_lane, phase_mov_indptr,
                       phase_mov, sat):
    n_lanes = triple_lane.max() + 1 if triple_lane.size else 0
    lane_flow = np.zeros(n_lanes)
    for t in range(triple_mov.size):
        m = triple_mov[t]
        lane_flow[triple_lane[t]] += max(mov_flow[m], 0.0) / max(mov_lanes[m], 1)
    mov_y = np.zeros(mov_flow.size)
    for t in range(triple_mov.size):
        y = lane_flow[triple_lane[t]] / sat
        mov_y[triple_mov[t]] = max(mov_y[triple_mov[t]], y)
    n_phases = phase_mov_indptr.size - 1
    phase_y = np.zeros(n_phases)
    for p in range(n_phases):
        for k in range(phase_mov_indptr[p], phase_mov_indptr[p + 1]):
            phase_y[p] = max(phase_y[p], mov_y[phase_mov[k]])
    return phase_y


def intersection_y(net: CompiledNetwork, phase_y: np.ndarray) -> np.ndarray:
    """Per intersection, the sum of its green phases' critical flow ratios: how near capacity
    it runs (1 = saturated)."""
    if net.n_intersections == 0:
        return np.zeros(0)
    return np.add.reduceat(np.where(net.phase_is_green, phase_y, 0.0), net.int_phase_indptr[:-1])


def webster_cycles(
    net: CompiledNetwork, phase_y: np.ndarray, *, startup_loss_s: float, min_cycle: float,
    max_cycle: float, max_y: float,
) -> np.ndarray:
    """Webster's optimal cycle per intersection, clamped to [min_cycle, max_cycle]."""
    return _webster(net.int_phase_indptr, net.phase_is_green, net.phase_duration, phase_y,
                    startup_loss_s, min_cycle, max_cycle, max_y)


@njit(cache=True)
def _webster(indptr, is_green, base_dur, phase_y, startup, cmin, cmax, max_y):
    n = indptr.size - 1
    out = np.empty(n)
    for i in range(n):
        lost = 0.0
        y_sum = 0.0
        for p in range(indptr[i], indptr[i + 1]):
            if is_green[p]:
                lost += startup
                y_sum += phase_y[p]
            else:
                lost += base_dur[p]
        y_sum = min(y_sum, max_y)
        c = (1.5 * lost + 5.0) / (1.0 - y_sum)
        out[i] = min(max(c, cmin), cmax)
    return out


def green_splits(
    net: CompiledNetwork, phase_y: np.ndarray, cycles: np.ndarray, *, min_green: np.ndarray,
    y_floor: float,
) -> np.ndarray:
    """Phase durations: clearances copied from the network, greens share the rest ∝ y.

    Water-filling: greens below their minimum are fixed at it and the rest re-shared, so every
    ring sums exactly to the cycle. ``min_green`` is per intersection.
    """
    return _splits(net.int_phase_indptr, net.phase_is_green, net.phase_duration, phase_y,
                   cycles, min_green, y_floor)


@njit(cache=True)
def _splits(indptr, is_green, base_dur, phase_y, cycles, min_green, y_floor):
    out = base_dur.copy()
    for i in range(indptr.size - 1):
        a, b = indptr[i], indptr[i + 1]
        avail = cycles[i]
        for p in range(a, b):
            if not is_green[p]:
                avail -= base_dur[p]
        fixed = np.zeros(b - a, dtype=np.bool_)
        for _ in range(b - a + 1):
            w_sum = 0.0
            rest = avail
            for p in range(a, b):
                if is_green[p]:
                    if fixed[p - a]:
                        rest -= min_green[i]
                    else:
                        w_sum += max(phase_y[p], y_floor)
            changed = False
            for p in range(a, b):
                if is_green[p] and not fixed[p - a]:
                    g = rest * max(phase_y[p], y_floor) / w_sum
                    if g < min_green[i]:
                        fixed[p - a] = True
                        changed = True
            if not changed:
                break
        for p in range(a, b):
            if is_green[p]:
                out[p] = min_green[i] if fixed[p - a] else rest * max(phase_y[p], y_floor) / w_sum
    return out


def round_greens(net: CompiledNetwork, durations: np.ndarray, cycles: np.ndarray) -> np.ndarray:
    """Whole-second greens (signal controllers step in seconds) summing to the rounded cycle.

    Largest-remainder rounding: each green moves by less than a second and every ring still
    sums to its (rounded) cycle.
    """
    return _round(net.int_phase_indptr, net.phase_is_green, durations, np.round(cycles))


@njit(cache=True)
def _round(indptr, is_green, dur, cycles):
    out = dur.copy()
    for i in range(indptr.size - 1):
        a, b = indptr[i], indptr[i + 1]
        total = 0.0
        for p in range(a, b):
            if is_green[p]:
                out[p] = np.floor(dur[p])
            total += out[p]
        short = round(cycles[i] - total)
        # hand the missing seconds to the greens with the largest remainders
        for _ in range(max(short, 0)):
            best, rem = -1, -1.0
            for p in range(a, b):
                if is_green[p] and dur[p] - out[p] > rem:
                    best, rem = p, dur[p] - out[p]
            if best < 0:
                break
            out[best] += 1.0
    return out
