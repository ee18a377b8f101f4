"""Offsets that run green waves along the heaviest corridors.

Like SUMO's tlsCoordinator and the classic maximum-spanning-tree approach to offset
optimization: links between signalised intersections are taken in order of the flow they
carry (Kruskal); each joins two groups of intersections so that the downstream green starts
when the upstream platoon arrives (free-flow travel time, less the time the waiting queue
needs to clear). Heavier corridors are coordinated first and never broken by lighter ones.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from signalopt.network import CompiledNetwork


class Corridors(NamedTuple):
    """Links from intersection ``up`` to intersection ``down`` (through unsignalised nodes)."""

    up: np.ndarray  # upstream intersection
    down: np.ndarray  # downstream intersection
    approach: np.ndarray  # link entering ``down``
    travel_s: np.ndarray  # free-flow travel time from ``up``'s stop line to ``down``'s
    feed_indptr: np.ndarray  # CSR: movements at ``up`` that feed the corridor
    feed_mov: np.ndarray
    mov_phase: np.ndarray  # per movement: the global index of the green phase serving it
    approach_indptr: np.ndarray  # CSR: movements leaving the corridor's approach link
    approach_mov: np.ndarray


def corridor_graph(net: CompiledNetwork, max_hops: int = 8) -> Corridors:
    """Build the intersection-to-intersection corridors once per network."""
    has_movs = np.diff(net.link_mov_indptr) > 0
    feeders: dict[tuple[int, int], list[int]] = {}
    info: dict[tuple[int, int], tuple[int, float]] = {}
    for m in range(net.n_movements):
        link, travel, hops = int(net.mov_to[m]), 0.0, 0
        while not has_movs[link] and hops < max_hops:
            travel += net.link_length[link] / net.link_speed[link]
            link = int(net.link_next[link])
            hops += 1
            if link < 0:
                break
        if link < 0 or not has_movs[link]:
            continue
        travel += net.link_length[link] / net.link_speed[link]
        key = (int(net.mov_to[m]), link)
        feeders.setdefault(key, []).append(m)
        info[key] = (int(net.mov_int[net.link_mov[net.link_mov_indptr[link]]]), travel)
    keys = sorted(feeders)
    up = np.array([net.mov_int[feeders[k][0]] for k in keys], dtype=np.int64)
    down = np.array([info[k][0] for k in keys], dtype=np.int64)
    approach = np.array([k[1] for k in keys], dtype=np.int64)
    travel = np.array([info[k][1] for k in keys], dtype=np.float64)
    feed_indptr = np.zeros(len(keys) + 1, dtype=np.int64)
    feed_indptr[1:] = np.cumsum([len(feeders[k]) for k in keys])
    feed_mov = np.array([m for k in keys for m in feeders[k]], dtype=np.int64)
    return Corridors(up, down, approach, travel, feed_indptr, feed_mov, _movement_phase(net),
                     net.link_mov_indptr, net.link_mov)


def _movement_phase(net: CompiledNetwork) -> np.ndarray:
    """For each movement, the longest base green phase giving it right of way (-1 if none)."""
    out = np.full(net.n_movements, -1, dtype=np.int64)
    best = np.zeros(net.n_movements)
    for p in range(net.phase_duration.size):
        for m in net.phase_mov[net.phase_mov_indptr[p]:net.phase_mov_indptr[p + 1]]:
            if net.phase_duration[p] > best[m]:
                best[m], out[m] = net.phase_duration[p], p
    return out


def coordinate_offsets(
    net: CompiledNetwork,
    corridors: Corridors,
    durations: np.ndarray,
    cycles: np.ndarray,
    mov_flow: np.ndarray,
    mov_queue: np.ndarray,
    *,
    discharge_s_per_veh: float,
    min_flow_veh_h: float,
    prev_offsets: np.ndarray | None = None,
) -> np.ndarray:
    """Offset (start of phase 0, s in [0, cycle)) of every intersection.

    With ``prev_offsets``, each coordinated group keeps its internal offsets but is shifted
    as a whole to move least from the previous plan (smooth transitions).
    """
    offsets, groups = _offsets(
        net.int_phase_indptr, durations, cycles, corridors.up, corridors.down, corridors.approach,
        corridors.travel_s, corridors.feed_indptr, corridors.feed_mov, corridors.mov_phase,
        corridors.approach_indptr, corridors.approach_mov, net.link_lanes,
        np.ascontiguousarray(mov_flow, dtype=np.float64),
        np.ascontiguousarray(mov_queue, dtype=np.float64), discharge_s_per_veh, min_flow_veh_h,
    )
    if prev_offsets is not None:
        offsets = align_to_previous(offsets, groups, prev_offsets, cycles)
    return offsets


@njit(cache=True)
def _find(parent, pot, x, cycle):
    """Root of ``x`` with path compression; ``pot[x]`` becomes offset(x) - offset(root)."""
    root = x
    acc = 0.0
    while parent[root] != root:
        acc += pot[root]
        root = parent[root]
    # compress
    y = x
    rem = acc
    while parent[y] != y:
        nxt = parent[y]
        p_y = pot[y]
        parent[y] = root
        pot[y] = rem % cycle
        rem -= p_y
        y = nxt
    return root, acc % cycle


@njit(cache=True)
def _offsets(int_indptr, durations, cycles, up, down, approach, travel, feed_indptr, feed_mov,
             mov_phase, app_indptr, app_mov, link_lanes, mov_flow, mov_queue, discharge, min_flow):
    n_int = int_indptr.size - 1
    start = np.zeros(durations.size)  # start of each phase within its cycle
    for i in range(n_int):
        acc = 0.0
        for p in range(int_indptr[i], int_indptr[i + 1]):
            start[p] = acc
            acc += durations[p]
    n_c = up.size
    weight = np.zeros(n_c)
    want = np.zeros(n_c)
    for c in range(n_c):
        best_up, f_up = -1, -1.0
        for k in range(feed_indptr[c], feed_indptr[c + 1]):
            m = feed_mov[k]
            if mov_phase[m] >= 0 and mov_flow[m] > f_up:
                best_up, f_up = m, mov_flow[m]
        best_dn, f_dn, q = -1, -1.0, 0.0
        for k in range(app_indptr[approach[c]], app_indptr[approach[c] + 1]):
            m = app_mov[k]
            q += mov_queue[m]
            if mov_phase[m] >= 0 and mov_flow[m] > f_dn:
                best_dn, f_dn = m, mov_flow[m]
        if best_up < 0 or best_dn < 0 or f_dn < min_flow:
            weight[c] = -1.0
            continue
        weight[c] = f_dn
        clear = discharge * q / max(link_lanes[approach[c]], 1)
        want[c] = start[mov_phase[best_up]] + travel[c] - clear - start[mov_phase[best_dn]]
    order = np.argsort(-weight)
    parent = np.arange(n_int)
    pot = np.zeros(n_int)
    for c in order:
        if weight[c] < 0:
            break
        i, j = up[c], down[c]
        if i == j:
            continue
        cyc = cycles[j]
        ri, pi = _find(parent, pot, i, cyc)
        rj, pj = _find(parent, pot, j, cyc)
        if ri == rj:
            continue
        # offset(j) = offset(i) + want  =>  offset(rj) = offset(ri) + pi + want - pj
        parent[rj] = ri
        pot[rj] = (pi + want[c] - pj) % cyc
    out = np.zeros(n_int)
    roots = np.zeros(n_int, dtype=np.int64)
    for i in range(n_int):
        r, p = _find(parent, pot, i, cycles[i])
        roots[i] = r
        out[i] = p % cycles[i]
        if out[i] >= cycles[i]:
            out[i] = 0.0
    return out, roots


def align_to_previous(offsets: np.ndarray, groups: np.ndarray, prev: np.ndarray,
                      cycles: np.ndarray) -> np.ndarray:
    """Shift each coordinated group as a whole to stay closest to the previous offsets.

    Only offsets *within* a group are fixed by coordination; the group's absolute shift is
    free, so pick the one that moves the signals least (circular mean of the differences).
    """
    angle = 2 * np.pi * (prev - offsets) / cycles
    n = int(groups.max()) + 1 if groups.size else 0
    s = np.bincount(groups, weights=np.sin(angle), minlength=n)
    c = np.bincount(groups, weights=np.cos(angle), minlength=n)
    shift = np.arctan2(s, c)[groups] * cycles / (2 * np.pi)
    return (offsets + shift) % cycles
