"""Timing-plan optimizer: estimated movement flows -> cycle, splits, offsets, actuation bounds.

``optimize`` composes the steps in data-flow order: flow ratios (critical lanes) -> Webster
cycle per intersection -> common region cycle -> splits -> bounded change vs previous plan ->
green-wave offsets -> actuation bounds. Pure arrays in, arrays out; the previous scan's
``OptimizerState`` is the only memory.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from signalopt.config import OptimizerParams
from signalopt.network import CompiledNetwork
from signalopt.optimize.actuation import actuation_bounds
from signalopt.optimize.offsets import Corridors, coordinate_offsets, corridor_graph
from signalopt.optimize.smoothing import limit_change
from signalopt.optimize.splits import (
    green_splits,
    intersection_y,
    lane_of_triple,
    phase_flow_ratios,
    round_greens,
    webster_cycles,
)

__all__ = ["OptimizerState", "PlanArrays", "initial_state", "optimize"]


class PlanArrays(NamedTuple):
    """Plans for every intersection as flat arrays (phases in CSR order of the network)."""

    cycle: np.ndarray  # (n_int,)
    offset: np.ndarray  # (n_int,) start of phase 0, in [0, cycle)
    duration: np.ndarray  # (n_phases,)
    min_dur: np.ndarray
    max_dur: np.ndarray
    phase_y: np.ndarray  # (n_phases,) critical flow ratio used


class OptimizerState(NamedTuple):
    """What the optimizer carries from one scan to the next."""

    lane_index: np.ndarray
    corridors: Corridors
    phase_y: np.ndarray | None
    plan: PlanArrays | None


def initial_state(net: CompiledNetwork) -> OptimizerState:
    """Precompute the network-static parts (lane grouping, corridors) once."""
    return OptimizerState(lane_of_triple(net), corridor_graph(net), None, None)


def optimize(
    net: CompiledNetwork,
    mov_flow: np.ndarray,
    mov_queue: np.ndarray,
    state: OptimizerState,
    params: OptimizerParams,
    *,
    frozen: np.ndarray | None = None,
) -> tuple[PlanArrays, OptimizerState]:
    """Compute every intersection's plan from movement arrival flows (veh/h) and queues (veh).

    ``frozen`` (bool per intersection) keeps those intersections on their previous plan.
    """
    # 1. critical flow ratio per phase, smoothed across scans against detector noise
    y = phase_flow_ratios(net, mov_flow, lane_index=state.lane_index,
                          sat_flow_lane=params.sat_flow_veh_h_lane)
    if state.phase_y is not None:
        y = params.y_smoothing * y + (1 - params.y_smoothing) * state.phase_y
    # 2. Webster cycle per intersection; one region cycle keeps green waves possible
    cycles = webster_cycles(net, y, startup_loss_s=params.startup_loss_s,
                            min_cycle=params.min_cycle_s, max_cycle=params.max_cycle_s,
                            max_y=params.max_y)
    if params.common_cycle and cycles.size:
        cycles = np.full_like(cycles, np.round(np.quantile(cycles, params.common_cycle_quantile)))
    min_green = np.maximum(params.min_green_s, net.int_ped_min)
    cycles = np.maximum(cycles, _minimum_cycle(net, min_green))
    # 3. greens ∝ flow ratio (clearances copied from the network)
    durations = green_splits(net, y, cycles, min_green=min_green, y_floor=params.y_floor)
    # 4. bounded change versus the previous plan
    prev = state.plan
    if prev is not None:
        # whole-second limits, so that rounding to whole seconds below cannot overshoot them
        durations = limit_change(net, durations, prev.duration,
                                 max_cycle_change=np.floor(params.max_cycle_change_s),
                                 max_green_change=np.floor(params.max_green_change_s),
                                 min_green=min_green)
    durations = round_greens(net, durations, np.add.reduceat(durations, net.int_phase_indptr[:-1])
                             if cycles.size else cycles)
    cycles = np.add.reduceat(durations, net.int_phase_indptr[:-1]) if cycles.size else cycles
    # 5. offsets: green waves along the heaviest corridors
    if params.coordinate:
        offsets = coordinate_offsets(net, state.corridors, durations, cycles, mov_flow, mov_queue,
                                     discharge_s_per_veh=params.discharge_s_per_veh,
                                     min_flow_veh_h=params.min_coord_flow_veh_h,
                                     prev_offsets=None if prev is None else prev.offset)
    else:
        offsets = np.zeros_like(cycles)
    # 6. bounds for local actuation inside the plan
    local = params.local_control != "fixed"
    y_sum = intersection_y(net, y)
    lo, hi = actuation_bounds(net, durations, min_green=min_green,
                              min_frac=params.act_min_frac if local else 1.0,
                              max_frac=params.act_max_frac if local else 1.0,
                              saturated=y_sum >= params.act_min_sat_y if local else None)
    plan = PlanArrays(cycles, offsets % np.maximum(cycles, 1e-9), durations, lo, hi, y)
    if frozen is not None and prev is not None and frozen.any():
        plan = _keep_frozen(net, plan, prev, frozen)
    return plan, state._replace(phase_y=y, plan=plan)


def _minimum_cycle(net: CompiledNetwork, min_green: np.ndarray) -> np.ndarray:
    """Shortest feasible cycle: all clearances plus every green at its minimum."""
    owner = net.phase_int
    need = np.where(net.phase_is_green, min_green[owner], net.phase_duration)
    return np.add.reduceat(need, net.int_phase_indptr[:-1]) if need.size else need


def _keep_frozen(net: CompiledNetwork, plan: PlanArrays, prev: PlanArrays,
                 frozen: np.ndarray) -> PlanArrays:
    owner = net.phase_int
    fp = frozen[owner]
    return PlanArrays(
        np.where(frozen, prev.cycle, plan.cycle), np.where(frozen, prev.offset, plan.offset),
        np.where(fp, prev.duration, plan.duration), np.where(fp, prev.min_dur, plan.min_dur),
        np.where(fp, prev.max_dur, plan.max_dur), plan.phase_y,
    )
