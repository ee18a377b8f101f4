"""Actuation bounds: the min/max green a local actuated controller may use inside the plan.

As in SCATS, the strategic plan fixes cycle and splits; the local controller may end a green
early when its queue has cleared (gap-out, never below ``min_dur``) or extend it up to
``max_dur`` when traffic keeps arriving.
"""

from __future__ import annotations

import numpy as np

from signalopt.network import CompiledNetwork


def actuation_bounds(
    net: CompiledNetwork,
    durations: np.ndarray,
    *,
    min_green: np.ndarray,
    min_frac: float,
    max_frac: float,
    saturated: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per phase (min_dur, max_dur): greens in [max(min_green, min_frac*g), max_frac*g];
    clearances fixed at their duration (never shortened).

    ``saturated`` (bool per intersection) limits the ``min_frac`` floor to intersections near
    capacity, where every extra switch costs capacity; elsewhere greens may gap out at the
    minimum green and stay responsive.
    """
    owner = net.phase_int
    green = net.phase_is_green
    frac = min_frac if saturated is None else np.where(saturated[owner], min_frac, 0.0)
    floor = np.maximum(min_green[owner], frac * durations)
    lo = np.where(green, np.minimum(floor, durations), durations)
    hi = np.where(green, np.maximum(max_frac * durations, durations), durations)
    return lo, hi
