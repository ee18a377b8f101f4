"""Bounded change per scan: a new plan moves at most so far from the previous one.

Transitions stay smooth (no sudden cycle jumps that strand platoons) and the plan validator's
``max_cycle_change_s`` / ``max_green_change_s`` hold by construction.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from signalopt.network import CompiledNetwork


def limit_change(
    net: CompiledNetwork,
    durations: np.ndarray,
    prev_durations: np.ndarray,
    *,
    max_cycle_change: float,
    max_green_change: float,
    min_green: np.ndarray,
) -> np.ndarray:
    """Clamp each green to within ``max_green_change`` of the previous plan, keeping the cycle
    change within ``max_cycle_change`` and each green ≥ its minimum."""
    return _limit(net.int_phase_indptr, net.phase_is_green, durations, prev_durations,
                  max_cycle_change, max_green_change, min_green)


@njit(cache=True)
def _limit(indptr, is_green, new, prev, dc_max, dg_max, min_green):
    out = new.copy()
    for i in range(indptr.size - 1):
        a, b = indptr[i], indptr[i + 1]
        c_new = 0.0
        c_prev = 0.0
        for p in range(a, b):
            c_prev += prev[p]
            if is_green[p]:
                lo = max(prev[p] - dg_max, min_green[i])
                hi = prev[p] + dg_max
                out[p] = min(max(new[p], lo), hi)
            c_new += out[p]
        dc = c_new - c_prev
        excess = 0.0
        if dc > dc_max:
            excess = dc - dc_max
        elif dc < -dc_max:
            excess = dc + dc_max
        if excess == 0.0:
            continue
        # spread the excess over greens in proportion to their room to move (towards prev)
        room = 0.0
        for p in range(a, b):
            if is_green[p]:
                room += max(out[p] - prev[p], 0.0) if excess > 0 else max(prev[p] - out[p], 0.0)
        for p in range(a, b):
            if is_green[p] and room > 0:
                r = max(out[p] - prev[p], 0.0) if excess > 0 else max(prev[p] - out[p], 0.0)
                out[p] -= excess * r / room
    return out
