"""In-transit volume estimator: vehicles per link, queues, turning ratios, movement flows.

Each link carries a *cell*: the road between its entry loops and its exit cross-section (its
stop-line loops, else the entry loops of the next links, else the link end with free-flow
exit; a road split at a plain node with no loop at the joint is one cell up to the next stop
line). A link without entry loops takes as inflow what the stop lines upstream released into
it (lane counts x turning shares); one whose inflow nobody counts is held in steady state.
Per interval a two-state Kalman filter per cell predicts by conservation,

    N' = N + in - out - beta * x,        beta' = beta (random walk),

where ``beta`` is the cell's net loss fraction (trips that end or start inside it, which
counts never see) and ``x`` the flow it applies to: the inflow, or the outflow where a queue
stands on the exit loops (trips ending there wait in it). It corrects with a vehicle
measurement: camera zone occupancy -> vehicles where a zone exists, else loop occupancy ->
density x length (weak), plus half of each vehicle straddling a boundary loop (counts put it
wholly on one side, a zone sees part of it). Imputed counts (QA) add their variance to the
prediction, so uncertainty grows when detectors fail. Link vehicles = cell + head (before
the entry loops; from the zone's queue profile where a camera sees it, counted by fronts) +
tail (after the stop line) - the part of the cell lying on the next link (never more than
the cell holds). Vehicles inside junctions = stop-line flow (where only a camera sees the
approach: the vehicles its zones saw pass) x a dwell that grows with the occupancy at the
junction's exits. The model-bias part of the reported std depends on how each link is
observed (camera, loops only, neither). The network total sums the links before clipping each at
0, so noise around empty links does not bias it upwards.
Every scan (120 s) turning flows are fitted (``signalopt.turning``): each lane's split over its
movements that best explains, interval by interval, the entry counts of the outgoing links
(without entry loops: what leaves each outgoing road at its next stop line).

All kernels are ``@njit(cache=True)`` on flat arrays; NaN marks missing data. The static
arrays they read come from ``signalopt.estimator_model``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
from numba import njit

from signalopt.config import REFERENCE_INTERVAL_S, EstimatorParams, QAParams
from signalopt.detectors import (
    DetectorFrame,
    QAResult,
    QAState,
    build_frame,
    init_qa_state,
    qa_interval,
)
from signalopt.estimator_model import (  # noqa: F401  (re-exported)
    IN_LOOPS,
    IN_RELEASED,
    IN_UNKNOWN,
    OBS_LOOPS,
    OUT_FREE,
    OUT_MERGED,
    OUT_NEXT_ENTRY,
    OUT_STOPLINE,
    EstimatorModel,
    _is_uturn,
    estimator_model,
)
from signalopt.io.counts import CountsTable
from signalopt.network import CompiledNetwork
from signalopt.turning import fit_turning, prior_shares, turning_ratios


class EstimatorState(NamedTuple):
    """Everything carried from one interval to the next (the previous scan's state)."""

    qa: QAState
    cell: np.ndarray  # (n_links,) vehicles in each cell
    beta: np.ndarray  # (n_links,) net loss fraction
    p00: np.ndarray  # covariance of (cell, beta)
    p01: np.ndarray
    p11: np.ndarray
    link_vehicles: np.ndarray
    healthy_vehicles: np.ndarray  # (n_links,) each link's estimate when last all its inputs worked
    link_var: np.ndarray
    links_total: float  # sum of the link estimates before clipping at 0
    internal: float  # vehicles inside junctions
    internal_var: float
    lane_queue: np.ndarray  # (n_lanes,)
    row_share: np.ndarray  # (n_rows,) share of its lane's flow going to the row's movement
    turning_ratio: np.ndarray  # (n_mov,)
    scan_stop: np.ndarray  # (intervals per scan, n_lanes) stop-line counts of this scan
    prev_stop: np.ndarray  # (n_lanes,) stop-line counts of the previous scan's last interval
    scan_in: np.ndarray  # (intervals per scan, n_links) entry counts of this scan
    flow_avg: np.ndarray  # (n_links,) recent entry-loop inflow per interval (NaN: no loops)
    len_hist: np.ndarray  # (LENGTH_BINS,) recent vehicle-length samples (``vehicle_length``)
    acc_flags: np.ndarray  # (n_det,) OR of QA flags over the current scan
    acc_intervals: int
    t_end: float  # end of the last interval processed (NaN before the first)


class Estimate(NamedTuple):
    """One scan summary; consumed by the optimizer (names, shapes, units are a contract).

    ``lane_queue[k]`` is the queue on approach lane ``(lane_link[k], lane_lane[k])``.
    """

    t: float  # end of the scan, s
    link_vehicles: np.ndarray  # (n_links,) vehicles on each link now
    link_std: np.ndarray  # (n_links,)
    network_vehicles: float  # all vehicles in the network, junctions included
    network_std: float
    mov_flow: np.ndarray  # (n_mov,) veh/h arriving for each movement, mean over the scan
    turning_ratio: np.ndarray  # (n_mov,) share of the from-link's outflow; sums to 1 per link
    lane_queue: np.ndarray  # (n_lanes,) queued vehicles per approach lane
    lane_link: np.ndarray  # (n_lanes,) link index of each approach lane
    lane_lane: np.ndarray  # (n_lanes,) lane index (0 = rightmost) of each approach lane
    mov_queue: np.ndarray  # (n_mov,) queued vehicles waiting for each movement
    detector_flags: np.ndarray  # (n_det,) OR of QA flags over the scan (0 = healthy)
    vehicle_length_m: float  # effective vehicle length the densities used (learned or prior)


@njit(cache=True)
def _density(o, veh_len, jam):
    """Vehicles per metre of one lane from an occupancy percentage (capped at jam density)."""
    if o != o or o <= 0.0:
        return 0.0
    return min(o / 100.0 / veh_len, 1.0 / jam)


@njit(cache=True)
def _occ_share(o):
    """Share of the interval (0-1) a loop was occupied: the expected vehicles over it."""
    return min(max(o, 0.0), 100.0) / 100.0 if o == o else 0.0


@njit(cache=True)
def _standing_queue(o, arrivals, T, cap):
    """Mean vehicles standing in a lane whose stop-line loop was occupied a share ``o`` of
    the interval: the car on the loop, joined by the lane's ``arrivals`` (per s) over its
    standing time o x T, counted whole since a queue standing now often began before the
    interval; at most ``cap``. (The loop's density over a fixed stretch read a lone car
    waiting out a red as a 30 m queue: RESCO's approaches read up to 2x high.)"""
    return min(o * (1.0 + arrivals * o * T), cap)


@njit(cache=True)
def _head_density(k_in, k_out, k_zone, seen, loops):
    """Density of the first metres of a link that the cell before it holds: its zones' and
    entry loops' mean (a camera sees the whole turn bay), else either, else its stop line's."""
    if seen:
        return 0.5 * (k_zone + k_in) if loops else k_zone
    return k_in if loops else k_out


@njit(cache=True)
def _sees_head(zone_indptr, zone_start, zone_det, entry_pos, link):
    """Whether a camera zone of ``link`` starts within the first half of its head (the
    road before its entry loops), so that the queue it shows reaches into the head."""
    if entry_pos[link] <= 0.0:
        return False
    for j in range(zone_indptr[link], zone_indptr[link + 1]):
        if zone_start[zone_det[j]] <= 0.5 * entry_pos[link]:
            return True
    return False


@njit(cache=True)
def _link_inputs(count, cvar, occ, src, in_indptr, in_det, out_indptr, out_det, out_w,
                 zone_indptr, zone_det, zone_start, zone_end, entry_pos, exit_pos, link_len,
                 link_lanes, veh_len, jam, count_var, zone_rel, zone_abs, loop_rel, loop_abs,
                 out_weight, succ_indptr, succ, succ_w, boundary, link_speed, T, k_released,
                 loop_cell_rel, delay, standing, queue_zone):
    """Per link: in/out counts with variances, loop densities and the zone vehicle measurement.

    Where a link has zones, its cell is measured piece by piece: zones where they look, the
    unseen stretch of the link at its entry loops' density (zones sit downstream, so the gap
    is next to those loops), and the part of the cell on the next links at their zones'
    density (a camera sees the whole turn bay), else at their entry loops'.
    """
    n = link_len.shape[0]
    u, uv, w, wv = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
    k_in, k_out, k_zone = np.zeros(n), np.zeros(n), np.zeros(n)
    z, zr = np.full(n, np.nan), np.full(n, np.inf)
    head_q = np.zeros(n)
    for l in range(n):  # noqa: E741
        o_in, o_out = 0.0, 0.0  # loop occupancy (0-1) summed over the cell's boundary lanes
        for j in range(in_indptr[l], in_indptr[l + 1]):
            d = in_det[j]
            u[l] += count[d]
            uv[l] += cvar[d] + count_var
            k_in[l] += _density(occ[d], veh_len, jam)
            o_in += _occ_share(occ[d])
        for j in range(out_indptr[l], out_indptr[l + 1]):
            d = out_det[j]
            w[l] += out_w[j] * count[d]
            wv[l] += out_w[j] * out_w[j] * (cvar[d] + count_var)
            k_out[l] += out_w[j] * _density(occ[d], veh_len, jam)
            o_out += out_w[j] * _occ_share(occ[d])
        cell_len = exit_pos[l] - entry_pos[l]
        hi = min(exit_pos[l], link_len[l])
        zv, zvar, cov = 0.0, 0.0, 0.0
        nz = zone_indptr[l + 1] - zone_indptr[l]
        for j in range(zone_indptr[l], zone_indptr[l + 1]):
            d = zone_det[j]
            kd = _density(occ[d], veh_len, jam)
            k_zone[l] += kd
            # queue from the stop line: the zone's vehicles at jam spacing; the part of the
            # head (before the entry loops) it reaches holds jam density, the rest the loops'
            if entry_pos[l] > 0.0 and zone_start[d] <= 0.5 * entry_pos[l]:
                span = zone_end[d] - zone_start[d]
                reach = min(max(kd * span * jam - (zone_end[d] - entry_pos[l]), 0.0), entry_pos[l])
                k_free = min(k_in[l] / max(link_lanes[l], 1.0), 1.0 / jam)
                head_q[l] += reach / jam + (entry_pos[l] - reach) * k_free
                # a queue standing from the stop line past the link start has its last
                # vehicle's front on the link but part of its body before it: fronts (what a
                # link holds) = floor(x0 / jam) + 1, bodies (what the zone sees) = x0 / jam
                x0 = zone_end[d]
                head_q[l] += reach / entry_pos[l] * (np.floor(x0 / jam) + 1.0 - x0 / jam)
            ov = max(0.0, min(zone_end[d], hi) - max(zone_start[d], entry_pos[l]))
            zv += kd * ov
            cov += ov
            zvar += zone_abs * zone_abs + (kd * ov) ** 2 * (zone_rel * zone_rel + (src[d] > 0))
        has_in, has_out = in_indptr[l + 1] > in_indptr[l], out_indptr[l + 1] > out_indptr[l]
        # the loops' mean density (queues form downstream), or either alone
        ow = out_weight[l]
        k_loop = k_in[l] if not has_out else (
            (1.0 - ow) * k_in[l] + ow * k_out[l] if has_in else k_out[l])
        has_loops = has_in or has_out
        if nz > 0:
            # the unseen stretch at the entry loops' density, else at that of the flow the
            # stop lines upstream released into it, else at the zones' (over all lanes)
            if in_indptr[l + 1] > in_indptr[l]:
                k_gap = k_in[l]
            elif k_released[l] == k_released[l]:
                k_gap = k_released[l]
            else:
                k_gap = k_zone[l] * link_lanes[l] / nz
            gap = max(0.0, hi - entry_pos[l] - cov / max(nz, 1))
            fill = gap * k_gap
            z[l] = zv + fill + boundary * (o_out - o_in)
            zr[l] = zvar + (loop_rel * fill) ** 2 + (loop_abs * loop_abs if fill > 0.5 else 0.0)
        elif in_indptr[l + 1] > in_indptr[l] and cell_len > 0:
            if standing[l] and has_out:
                # a stop-line loop tells that a queue stands on it, not how far back it
                # reaches (a lone car waiting out a red keeps it occupied): each of its lanes
                # holds the standing queue, and the entry loops' density covers the rest of
                # a long approach
                arrivals = u[l] / T / (in_indptr[l + 1] - in_indptr[l])  # per lane and s
                k_len = k_in[l] * (cell_len - queue_zone)
                for j in range(out_indptr[l], out_indptr[l + 1]):
                    k_len += _standing_queue(out_w[j] * _occ_share(occ[out_det[j]]), arrivals,
                                             T, cell_len / jam)
            else:
                k_len = k_loop * cell_len
            z[l] = k_len + boundary * (o_out - o_in)
            zr[l] = (loop_cell_rel[l] * z[l]) ** 2 + loop_abs * loop_abs
        elif has_loops and cell_len > 0:
            # stop-line loops only (Little's law): the outflow x the time a vehicle spends in
            # the cell, its free travel time plus its wait at the stop line
            z[l] = w[l] / T * (cell_len / link_speed[l] + delay[l])
            zr[l] = (loop_cell_rel[l] * z[l]) ** 2 + loop_abs * loop_abs
    for l in range(n):  # noqa: E741  the cell's stretch on the next links
        ext = exit_pos[l] - link_len[l]
        if z[l] != z[l] or zone_indptr[l + 1] == zone_indptr[l] or ext <= 0.0:
            continue
        zx = 0.0
        for j in range(succ_indptr[l], succ_indptr[l + 1]):
            s = succ[j]
            if _sees_head(zone_indptr, zone_start, zone_det, entry_pos, s):
                # the queue profile its camera shows (a queue stands at the bay's far end)
                zx += succ_w[j] * head_q[s] * min(ext / entry_pos[s], 1.0)
            else:
                zx += succ_w[j] * ext * _head_density(
                    k_in[s], k_out[s], k_zone[s], zone_indptr[s + 1] > zone_indptr[s],
                    in_indptr[s + 1] > in_indptr[s])
        z[l] += zx
        zr[l] += (zone_rel * zx) ** 2
    return u, uv, w, wv, k_in, k_out, k_zone, z, zr, head_q


@njit(cache=True)
def _kalman(cell, beta, p00, p01, p11, u, uv, w, wv, z, zr, x_loss, out_kind, in_known,
            entry_pos, exit_pos, link_speed, link_lanes, jam, T, process_var, sink_var):
    """Conservation predict + measurement update of every cell's (vehicles, loss fraction).

    ``z``/``zr``: vehicle measurement and its variance (NaN = none); ``x_loss``: the flow the
    loss fraction applies to this interval (``_loss_base``). Where ``in_known`` is False the
    caller has set the inflow to the outflow (steady state); a free exit with an unknown
    inflow keeps its vehicles, turned over at its travel time as noise. A merged link
    (``OUT_MERGED``) has no cell of its own: it stays empty.
    """
    n = cell.shape[0]
    c2, b2 = cell.copy(), beta.copy()
    q00, q01, q11 = p00.copy(), p01.copy(), p11.copy()
    out = w.copy()
    for l in range(n):  # noqa: E741
        if out_kind[l] == 3:
            c2[l], out[l] = 0.0, 0.0
            continue
        cell_len = max(exit_pos[l] - entry_pos[l], 1.0)
        a, stay, gone, turnover = 1.0, 1.0, w[l], 0.0
        if out_kind[l] == 2:  # free exit: vehicles leave after their travel time tau
            frac = min(1.0, T * link_speed[l] / cell_len)
            a, gone = 1.0 - frac, 0.0
            stay = min(1.0, cell_len / link_speed[l] / T)  # entered in the last tau s
            out[l] = frac * cell[l] + (1.0 - stay) * u[l]
            if not in_known[l]:
                turnover = max(frac * cell[l], 1.0)
                a, stay, out[l] = 1.0, 0.0, turnover
        x = x_loss[l]
        pred = a * cell[l] + stay * u[l] - gone - beta[l] * x
        P00 = a * a * p00[l] - 2.0 * a * x * p01[l] + x * x * p11[l]
        P00 += process_var + uv[l] + wv[l] + turnover
        P01 = a * p01[l] - x * p11[l]
        P11 = p11[l] + sink_var
        if z[l] == z[l]:
            zz = z[l] + 0.5 * (pred - cell[l])  # zone is an interval mean; state is its end
            S = P00 + zr[l]
            K0, K1 = P00 / S, P01 / S
            innov = zz - pred
            pred += K0 * innov
            b2[l] = beta[l] + K1 * innov
            P11 -= K1 * P01
            P00, P01 = P00 - K0 * P00, P01 - K0 * P01
        cap = (cell_len / jam + 1.0) * link_lanes[l]  # fronts in a jam: at most one more per lane
        # it may dip below 0 (clipping at 0 would bias sums upwards), but no further than it
        # can hold: a degenerate cell (loops on a link a few metres long) must not run away
        c2[l] = min(max(pred, -cap), cap)
        b2[l] = min(max(b2[l], -0.5), 0.9)
        if P00 > cap * cap:  # noqa: SIM300  (nor can its uncertainty: no wider than it holds)
            P01 *= cap / np.sqrt(P00)
            P00 = cap * cap
        q00[l], q01[l], q11[l] = max(P00, 1e-9), P01, max(P11, 1e-12)
    return c2, b2, q00, q01, q11, out


@njit(cache=True)
def _tail(out_kind, exit_pos, link_len, zone_reach, k_out, k_zone, veh_len):
    """Vehicles a link holds after its stop-line loop, at the density of the zone where one
    reaches that far (``zone_reach``: its zones' furthest end), else at the loop's. A loop
    counts a vehicle out once its back has passed, and the link holds it while its front is
    on it, so only a setback longer than a vehicle holds any: its excess over ``veh_len``
    (pilot128's 2 m setback holds none; counted at the density over the whole setback, it
    added 4-6 % to the network)."""
    if out_kind not in (0, 3):
        return 0.0
    k = k_zone if zone_reach >= exit_pos else k_out
    return max(0.0, link_len - exit_pos - veh_len) * k


def link_tails(model: EstimatorModel, k_out: np.ndarray, k_zone: np.ndarray,
               veh_len: float) -> np.ndarray:
    """Per link, the vehicles the estimate puts after its stop-line loop (``_tail``), from the
    loop and zone densities ``measure`` returns and the vehicle length."""
    n = model.link_len.shape[0]
    reach = np.full(n, -np.inf)
    np.maximum.at(reach, np.repeat(np.arange(n), np.diff(model.zone_indptr)),
                  model.zone_end[model.zone_det])
    return np.array([_tail(model.out_kind[l], model.exit_pos[l], model.link_len[l], reach[l],
                           k_out[l], k_zone[l], veh_len) for l in range(n)])  # noqa: E741


@njit(cache=True)
def _link_vehicles(cell, p00, w, cross, k_in, k_out, k_zone, head_q, dwell, out_kind,
                   entry_pos, exit_pos, link_len, link_storage, zone_indptr, zone_det,
                   zone_start, zone_end, succ_indptr, succ, succ_w, T, node_s, loop_rel,
                   veh_len):
    """Vehicles per link (cell + head + tail - part on the next link) and inside junctions
    (``cross``: vehicles per interval crossing the signalised junction at a link's end, NaN
    where it ends elsewhere; ``node_s``: per link, seconds through the plain node at its
    cell's exit)."""
    n = cell.shape[0]
    head, tail = np.zeros(n), np.zeros(n)
    for l in range(n):  # noqa: E741
        ze = -np.inf
        for j in range(zone_indptr[l], zone_indptr[l + 1]):
            ze = max(ze, zone_end[zone_det[j]])
        if _sees_head(zone_indptr, zone_start, zone_det, entry_pos, l):
            # where a camera sees the head too, the queue it shows reaches into it
            head[l] = head_q[l]
        elif out_kind[l] == 3:
            head[l] = entry_pos[l] * k_out[l]  # merged, unseen: the road before its stop line
        elif entry_pos[l] > 0.0:
            # a vehicle is on the link once its front is, and in the cell once its back
            # has passed the entry loops: the head holds the road before them plus a car
            head[l] = (entry_pos[l] + veh_len) * k_in[l]
        tail[l] = _tail(out_kind[l], exit_pos[l], link_len[l], ze, k_out[l], k_zone[l], veh_len)
    # A cell reaching into its successors' heads hands them that part of its vehicles, but
    # never more than it holds (so the network total is the cells plus the uncovered heads
    # and tails, whatever the split).
    beyond, given = np.zeros(n), np.zeros(n)
    for l in range(n):  # noqa: E741
        for j in range(succ_indptr[l], succ_indptr[l + 1]):
            beyond[l] += succ_w[j] * head[succ[j]]
        # (never a negative share: a cell that dipped below zero hands over nothing)
        f = min(1.0, max(cell[l] + head[l] + tail[l], 0.0) / beyond[l]) if beyond[l] > 1e-9 else 1.0
        for j in range(succ_indptr[l], succ_indptr[l + 1]):
            given[succ[j]] += succ_w[j] * head[succ[j]] * (f - 1.0)
        beyond[l] *= f
    veh, var = np.zeros(n), np.zeros(n)
    internal = 0.0
    for l in range(n):  # noqa: E741
        v = cell[l] + head[l] + given[l] + tail[l] - beyond[l]
        veh[l] = min(v, link_storage[l])
        var[l] = p00[l] + (loop_rel * (head[l] + tail[l] + beyond[l])) ** 2
        if cross[l] == cross[l]:
            internal += cross[l] / T * dwell[l]  # Little's law
        elif out_kind[l] == 1:
            internal += w[l] / T * node_s[l]
    return veh, var, internal


@njit(cache=True)
def _lane_queues(occ, speed, lane_link, lane_stop, lane_zone, zone_start, zone_end, link_speed,
                 link_lanes, veh, veh_len, jam, halt_speed, flags):
    """Queued vehicles per approach lane from its zone (occupancy x halting share) or stop loop.

    A zone QA flagged counts as absent where the lane's stop-line loop is healthy: its
    imputed value comes from the other lanes' cameras, and a lane's queue is its own (a
    through lane held 26 halting vehicles while its turning siblings, and so the imputed
    zone, showed none)."""
    n = lane_link.shape[0]
    q = np.zeros(n)
    for k in range(n):
        link = lane_link[k]
        d = lane_zone[k]
        s = lane_stop[k]
        if d >= 0 and flags[d] != 0 and s >= 0 and flags[s] == 0:
            d = -1
        if d >= 0:
            nveh = _density(occ[d], veh_len, jam) * (zone_end[d] - zone_start[d])
            v = speed[d]
            if v == v:
                halt = min(max(1.0 - (v - halt_speed) / (0.6 * link_speed[link]), 0.0), 1.0)
            else:
                halt = 1.0 if nveh > 0.5 else 0.0
            q[k] = nveh * halt
        elif lane_stop[k] >= 0:
            o = occ[lane_stop[k]]
            share = o / 100.0 if o == o else 0.0
            q[k] = veh[link] / link_lanes[link] * share
    return q


def _loss_base(model: EstimatorModel, u: np.ndarray, w: np.ndarray, k_out: np.ndarray,
               jam: float) -> np.ndarray:
    """The flow a link's loss fraction applies to this interval.

    Trips ending on a link drive to its end: at once in free flow (the loss follows the
    inflow), with the queue where one stands at the exit (it follows the outflow: FIFO). The
    exit loops' density relative to jam says which. A free exit has no outflow count.
    """
    wsum = model.out_wsum
    q = np.clip(k_out * jam / np.where(wsum > 0, wsum, 1.0), 0.0, 1.0)
    free = (model.out_kind == OUT_FREE) | (wsum <= 0)
    return np.where(free, u, (1.0 - q) * u + q * w)


def _any_flagged(model: EstimatorModel, flags: np.ndarray) -> np.ndarray:
    """Per link: whether any detector its estimate uses is flagged this interval."""
    return _any_flagged_kernel(flags, model.meas_link, model.meas_det, model.link_len.shape[0])


@njit(cache=True)
def _any_flagged_kernel(flags, meas_link, meas_det, n_links):
    """``_any_flagged`` on flat arrays."""
    out = np.zeros(n_links, dtype=np.bool_)
    for j in range(meas_link.shape[0]):
        if flags[meas_det[j]] != 0:
            out[meas_link[j]] = True
    return out


def _junction_crossings(model: EstimatorModel, params: EstimatorParams, out: np.ndarray,
                        count: np.ndarray, occupancy: np.ndarray) -> np.ndarray:
    """Vehicles per interval crossing the signalised junction at each link's end (NaN where
    none): its stop-line count, else (an approach only a camera sees) what its zones saw
    pass, the vehicles seen in the interval less those standing in view."""
    m, p = model, params
    return _junction_crossings_kernel(out, count, occupancy, m.out_kind, m.is_approach,
                                      m.zone_indptr, m.zone_det, m.zone_start, m.zone_end,
                                      p.vehicle_length_m, p.jam_spacing_m)


@njit(cache=True)
def _junction_crossings_kernel(out, count, occ, out_kind, is_approach, zone_indptr, zone_det,
                               zone_start, zone_end, veh_len, jam):
    """``_junction_crossings`` on flat arrays."""
    n = out.shape[0]
    cross = np.full(n, np.nan)
    for l in range(n):  # noqa: E741
        if out_kind[l] == 0:
            cross[l] = out[l]
        elif out_kind[l] == 2 and is_approach[l]:
            seen = 0.0
            for j in range(zone_indptr[l], zone_indptr[l + 1]):
                d = zone_det[j]
                c = count[d] if count[d] == count[d] else 0.0
                standing = _density(occ[d], veh_len, jam) * (zone_end[d] - zone_start[d])
                seen += max(c - standing, 0.0)
            cross[l] = seen
    return cross


def _internal_var(model: EstimatorModel, out: np.ndarray, params: EstimatorParams) -> float:
    """Variance of the vehicles inside junctions: ``junction_rel_std`` of the stop-line flow
    times the dwell at a typical exit occupancy (2 %). It depends on counts only, so losing
    an exit loop's occupancy cannot make the estimate look more certain."""
    flow = out[model.out_kind == OUT_STOPLINE].sum() / params.interval_s
    dwell = params.junction_s + params.junction_block_s * 0.02
    return float((params.junction_rel_std * flow * dwell) ** 2)


def _junction_dwell(model: EstimatorModel, params: EstimatorParams, k_in: np.ndarray,
                    occupancy: np.ndarray) -> np.ndarray:
    """Per link, the mean seconds a vehicle crossing the signalised junction at its end spends
    inside it (Little's law turns the crossing flow into vehicles inside): ``junction_s``,
    plus ``junction_block_s`` x the occupancy at the junction's exits (vehicles wait inside
    while the exit is full), plus ``junction_start_s`` x the occupancy of the link's own
    stop-line loops (a queue standing on them starts from rest, and crosses slower). The
    three are least squares on time means (positions every 2 s, not the scan instants) of
    pilot128 seed 45, not a scored seed, under fixed time and signalopt."""
    m, p = model, params
    down = _exit_occupancy(m, k_in, p.vehicle_length_m)[m.exit_link]
    n = m.link_len.shape[0]
    occ = np.nan_to_num(occupancy[m.out_det]) / 100.0
    stop = np.bincount(m.out_link, weights=occ, minlength=n) / np.maximum(np.diff(m.out_indptr), 1)
    stop = np.where(m.out_kind == OUT_STOPLINE, stop, 0.0)
    return p.junction_s + p.junction_block_s * down + p.junction_start_s * stop


def _exit_occupancy(model: EstimatorModel, k_in: np.ndarray, veh_len: float) -> np.ndarray:
    """Per approach link: mean occupancy (0-1) at the entry loops of the links it turns into."""
    n = model.link_len.shape[0]
    occ = k_in * veh_len / np.maximum(model.link_lanes, 1.0)
    tot = np.bincount(model.mov_from, weights=occ[model.mov_to], minlength=n)
    return tot / np.maximum(np.bincount(model.mov_from, minlength=n), 1)


def init_state(model: EstimatorModel, params: EstimatorParams | None = None) -> EstimatorState:
    """The state before any data: empty network, loss fraction at its prior."""
    params = params or EstimatorParams()
    n, n_det = model.link_len.shape[0], model.det.kind.shape[0]
    k = max(1, int(np.ceil(params.scan_s / params.interval_s - 1e-9)))  # intervals per scan
    share, ratio = prior_shares(model.row_lane, model.mov_from, n_lanes=model.lane_link.shape[0],
                                n_links=n)
    return EstimatorState(
        qa=init_qa_state(n_det), cell=np.zeros(n), beta=np.full(n, params.sink_prior),
        p00=np.full(n, 1.0), p01=np.zeros(n), p11=np.full(n, params.sink_prior_var),
        link_vehicles=np.zeros(n), healthy_vehicles=np.zeros(n), link_var=np.full(n, 1.0),
        links_total=0.0, internal=0.0, internal_var=0.0,
        lane_queue=np.zeros(model.lane_link.shape[0]), row_share=share, turning_ratio=ratio,
        scan_stop=np.zeros((k, model.lane_link.shape[0])), scan_in=np.zeros((k, n)),
        prev_stop=np.zeros(model.lane_link.shape[0]),
        flow_avg=np.where(model.in_kind == IN_LOOPS, 0.0, np.nan),
        len_hist=_length_prior(params),
        acc_flags=np.zeros(n_det, dtype=np.uint8), acc_intervals=0, t_end=float("nan"),
    )


def update_interval(
    model: EstimatorModel, state: EstimatorState, qa: QAResult, *, t_end: float,
    params: EstimatorParams,
) -> EstimatorState:
    """Advance the estimate by one detector interval (``qa`` = that interval's QA output)."""
    m = model
    len_hist = _length_hist(state.len_hist, m, qa, params)
    p = _with_length(params, len_hist)
    loops_in = np.bincount(m.in_link, weights=qa.count[m.in_det], minlength=m.link_len.shape[0])
    flow_avg = _smooth(state.flow_avg, loops_in, min(p.interval_s / p.split_smoothing_s, 1.0))
    succ_w = split_weights(m, flow_avg)
    u, uv, w, wv, k_in, k_out, k_zone, z, zr, head_q = measure(
        m, p, qa.count, qa.occupancy, count_var=qa.count_var, source=qa.source,
        row_share=state.row_share, succ_w=succ_w)
    x_loss = _loss_base(m, u, w, k_out, p.jam_spacing_m)
    per_30s = p.interval_s / REFERENCE_INTERVAL_S  # the noise levels are stated per 30 s
    cell, beta, p00, p01, p11, out = _kalman(
        state.cell, state.beta, state.p00, state.p01, state.p11, u, uv, w, wv, z, zr,
        x_loss, m.out_kind, m.in_kind != IN_UNKNOWN, m.entry_pos, m.exit_pos, m.link_speed,
        m.link_lanes, p.jam_spacing_m, p.interval_s, p.process_var * per_30s,
        p.sink_var * per_30s)
    dwell = _junction_dwell(m, p, k_in, qa.occupancy)
    cross = _junction_crossings(m, p, out, qa.count, qa.occupancy)
    veh, var, internal = _link_vehicles(
        cell, p00, out, cross, k_in, k_out, k_zone, head_q, dwell, m.out_kind, m.entry_pos,
        m.exit_pos, m.link_len, m.link_storage, m.zone_indptr, m.zone_det,
        m.zone_start, m.zone_end, m.succ_indptr, m.succ, succ_w, p.interval_s,
        np.where(m.cross_s > 0, m.cross_s, p.node_s), p.loop_rel_std, p.vehicle_length_m)
    links_total = float(veh.sum())  # unclipped: an unbiased sum of unbiased link estimates
    veh = np.maximum(veh, 0.0)
    queue = _lane_queues(qa.occupancy, qa.speed, m.lane_link, m.lane_stop, m.lane_zone,
                         m.zone_start, m.zone_end, m.link_speed, m.link_lanes, veh,
                         p.vehicle_length_m, p.jam_spacing_m, p.halt_speed_ms, qa.flags)
    stop = np.where(m.lane_stop >= 0, qa.count[np.maximum(m.lane_stop, 0)], 0.0)
    return state._replace(
        cell=cell, beta=beta, p00=p00, p01=p01, p11=p11, link_vehicles=veh,
        healthy_vehicles=np.where(_any_flagged(m, qa.flags), state.healthy_vehicles, veh),
        links_total=links_total, link_var=var,
        internal=float(internal), internal_var=_internal_var(m, out, p),
        lane_queue=queue, scan_stop=_add_row(state.scan_stop, state.acc_intervals, stop),
        scan_in=_add_row(state.scan_in, state.acc_intervals, _fit_inflow(m, u, w)),
        flow_avg=flow_avg, len_hist=len_hist,
        acc_flags=state.acc_flags | qa.flags, acc_intervals=state.acc_intervals + 1,
        t_end=float(t_end))


LENGTH_MIN_M, LENGTH_STEP_M, LENGTH_BINS = 1.0, 0.05, 481  # bins centred on 1.00 ... 25.00 m


def _length_prior(params: EstimatorParams) -> np.ndarray:
    """The length histogram before any data: ``length_prior_n`` samples at the prior."""
    hist = np.zeros(LENGTH_BINS)
    hist[_length_bin(params.vehicle_length_m)] = params.length_prior_n
    return hist


@njit(cache=True)
def _length_bin(length):
    """Histogram bin of a vehicle length (clamped to the histogram's range)."""
    k = round((length - LENGTH_MIN_M) / LENGTH_STEP_M)
    return min(max(k, 0), LENGTH_BINS - 1)


def _length_hist(hist: np.ndarray, model: EstimatorModel, qa: QAResult,
                 params: EstimatorParams) -> np.ndarray:
    """Age the histogram and add this interval's samples: every healthy entry loop that
    vehicles crossed at free speed, occupancy x interval x speed / count (a vehicle covers a
    point for its length over its speed; queues and turning starts are slower)."""
    p = params
    return _length_hist_kernel(hist, np.exp(-p.interval_s / p.length_memory_s), model.in_det,
                               qa.flags, qa.count, qa.occupancy, qa.speed, p.interval_s,
                               p.free_speed_ms)


@njit(cache=True)
def _length_hist_kernel(hist, decay, entry_det, flags, count, occ, speed, T, v_free):
    out = hist * decay
    for d in entry_det:
        if flags[d] == 0 and count[d] > 0 and speed[d] >= v_free:  # NaN speed: no sample
            out[_length_bin(occ[d] / 100.0 * T * speed[d] / count[d])] += 1.0
    return out


def vehicle_length(hist: np.ndarray) -> float:
    """Median of the length histogram, m (robust to buses and the odd slow vehicle)."""
    c = np.cumsum(hist)
    return LENGTH_MIN_M + LENGTH_STEP_M * int(np.searchsorted(c, 0.5 * c[-1]))


def _with_length(params: EstimatorParams, hist: np.ndarray) -> EstimatorParams:
    """``params`` with the learned vehicle length (and the jam spacing its gap behind it)."""
    if not params.learn_vehicle_length:
        return params
    length = vehicle_length(hist)
    gap = params.jam_spacing_m - params.vehicle_length_m
    return params.model_copy(update={"vehicle_length_m": length, "jam_spacing_m": length + gap})


def split_weights(model: EstimatorModel, flow_avg: np.ndarray) -> np.ndarray:
    """Share of each successor's entry count that a link feeding it takes as its outflow
    (``succ_w`` order): its recent inflow over all its successors' (a link feeding a next
    link with others takes what it brought, not an equal share). The static equal share
    where a flow is not counted or none came yet."""
    m = model
    return _split_weights_kernel(flow_avg, m.succ_indptr, m.succ, m.succ_w, m.out_kind)


@njit(cache=True)
def _split_weights_kernel(flow_avg, succ_indptr, succ, succ_w, out_kind):
    w = succ_w.copy()
    for l in range(succ_indptr.shape[0] - 1):  # noqa: E741
        if out_kind[l] != 1:  # OUT_NEXT_ENTRY
            continue
        into = 0.0
        for j in range(succ_indptr[l], succ_indptr[l + 1]):
            into += flow_avg[succ[j]]
        if not into > 1e-6 or flow_avg[l] != flow_avg[l]:  # NaN: a flow nobody counts
            continue
        for j in range(succ_indptr[l], succ_indptr[l + 1]):
            if succ_w[j] < 1.0:  # only a count shared with other feeders
                w[j] = min(flow_avg[l] / into, 1.0)
    return w


@njit(cache=True)
def _smooth(avg, x, a):
    """Exponential average that skips a missing (NaN) value; a NaN average stays NaN."""
    out = avg.copy()
    for i in range(avg.shape[0]):
        if x[i] == x[i]:
            out[i] = (1.0 - a) * avg[i] + a * x[i]
    return out


def _loop_cell_rel(model: EstimatorModel, params: EstimatorParams) -> np.ndarray:
    """Per link, the relative std of its cell's measurement where no camera sees it: loop
    occupancy (``loop_cell_rel_std`` where counts close the cell and a stop line ends it,
    else ``loop_rel_std``), or with stop-line loops alone Little's law
    (``stopline_rel_std``)."""
    m, p = model, params
    no_entry = np.diff(m.in_indptr) == 0
    return np.where(m.obs == OBS_LOOPS, p.loop_cell_rel_std,
                    np.where(no_entry, p.stopline_rel_std, p.loop_rel_std))


def _exit_loop_weight(model: EstimatorModel, params: EstimatorParams) -> np.ndarray:
    """Per link, the weight of its exit loops' density in its loop measurement:
    ``loop_out_weight``, less the share of those loops that stand in an approach's standing
    queue (``queue_zone_m`` from its stop line). Such a loop reads the queue at the stop line,
    not the road before it: spread over that road, it read pilot128 36 % high."""
    m, p = model, params
    out = np.full(m.link_len.shape[0], p.loop_out_weight)
    if p.queue_zone_m <= 0 or m.succ.shape[0] == 0:
        return out
    s = m.succ
    queued = m.is_approach[s] & (m.link_len[s] - m.entry_pos[s] < p.queue_zone_m)
    owner = np.repeat(np.arange(out.shape[0]), np.diff(m.succ_indptr))
    total = np.bincount(owner, weights=m.succ_w, minlength=out.shape[0])
    in_queue = np.bincount(owner, weights=m.succ_w * queued, minlength=out.shape[0])
    share = np.divide(in_queue, total, out=np.zeros_like(total), where=total > 0)
    return np.where(m.out_kind == OUT_NEXT_ENTRY, out * (1.0 - share), out)


def _reads_standing_queue(model: EstimatorModel, params: EstimatorParams) -> np.ndarray:
    """Per link, whether its stop-line loops, where loops alone measure it, read as the queue
    standing there (``_standing_queue``): an approach cell longer than ``queue_zone_m``."""
    m, qz = model, params.queue_zone_m
    return (m.out_kind == OUT_STOPLINE) & (m.exit_pos - m.entry_pos > qz) & (qz > 0)


def _fit_inflow(model: EstimatorModel, u: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Each link's inflow as the turning fit sees it: its entry counts, or, for a link fed by
    the stop lines upstream, what leaves its cell at the next stop line (the same vehicles
    a little later: storage changes average out over scans)."""
    return np.where((model.in_kind == IN_RELEASED) & (model.out_kind == OUT_STOPLINE), w, u)


def measure(
    model: EstimatorModel, params: EstimatorParams, count: np.ndarray, occupancy: np.ndarray, *,
    count_var: np.ndarray | None = None, source: np.ndarray | None = None,
    row_share: np.ndarray | None = None, succ_w: np.ndarray | None = None,
) -> tuple[np.ndarray, ...]:
    """``_link_inputs`` for one interval of detector arrays on ``model`` with ``params``:
    in/out counts and variances, loop densities, the cell measurement, the head's queue.

    ``count_var``/``source`` come from QA (imputed counts); without them every value counts
    as measured. A link without entry loops takes as inflow what the stop lines upstream
    released into it (each lane's count split by ``row_share``, the current turning shares;
    equal shares if omitted), else (``IN_UNKNOWN``) its outflow: steady state. ``succ_w``:
    each feeder's share of a next link's entry count (``split_weights``; static if omitted).
    """
    m, p = model, params
    n_det = count.shape[0]
    cvar = np.zeros(n_det) if count_var is None else count_var
    src = np.zeros(n_det, dtype=np.int64) if source is None else source
    if row_share is None:
        row_share = prior_shares(m.row_lane, m.mov_from, n_lanes=m.lane_link.shape[0],
                                 n_links=m.link_len.shape[0])[0]
    rel_u, rel_v = _released_inflow(count, cvar, row_share, m.lane_stop, m.row_lane,
                                    m.into_indptr, m.into_row, p.count_var, p.released_rel_std)
    released, unknown = m.in_kind == IN_RELEASED, m.in_kind == IN_UNKNOWN
    k_released = np.where(released, rel_u / (p.interval_s * m.link_speed), np.nan)
    succ_w = m.succ_w if succ_w is None else succ_w
    out_w = m.out_w if not succ_w.size else np.where(
        m.out_succ >= 0, succ_w[np.maximum(m.out_succ, 0)], m.out_w)
    out = list(_link_inputs(
        count, cvar, occupancy, src, m.in_indptr, m.in_det, m.out_indptr, m.out_det, out_w,
        m.zone_indptr, m.zone_det, m.zone_start, m.zone_end, m.entry_pos, m.exit_pos,
        m.link_len, m.link_lanes, p.vehicle_length_m, p.jam_spacing_m, p.count_var,
        p.zone_rel_std, p.zone_abs_std, p.loop_rel_std, p.loop_abs_std, _exit_loop_weight(m, p),
        m.succ_indptr, m.succ, succ_w, p.loop_boundary, m.link_speed, p.interval_s,
        k_released, _loop_cell_rel(m, p), m.signal_delay, _reads_standing_queue(m, p),
        p.queue_zone_m))
    u, uv, w, wv = out[:4]
    out[0] = np.where(released, rel_u, np.where(unknown, w, u))
    out[1] = np.where(released, rel_v, np.where(unknown, wv + np.maximum(w, 1.0), uv))
    return tuple(out)


@njit(cache=True)
def _released_inflow(count, cvar, row_share, lane_stop, row_lane, into_indptr, into_row,
                     count_var, rel_std):
    """Per link: what the stop lines upstream released into it (lane count x the lane's share
    to the link's movement) and its variance (counts, plus ``rel_std`` of it for the shares);
    NaN where a lane feeding it has no stop-line count."""
    n = into_indptr.shape[0] - 1
    u, v = np.zeros(n), np.zeros(n)
    for l in range(n):  # noqa: E741
        for j in range(into_indptr[l], into_indptr[l + 1]):
            r = into_row[j]
            d = lane_stop[row_lane[r]]
            sh = row_share[r]
            u[l] += sh * (count[d] if d >= 0 else np.nan)
            v[l] += sh * sh * ((cvar[d] if d >= 0 else np.nan) + count_var)
        v[l] += (rel_std * u[l]) ** 2
    return u, v


def _add_row(table: np.ndarray, k: int, row: np.ndarray) -> np.ndarray:
    """``table`` with ``row`` added to row ``k`` (the last row takes any extra intervals)."""
    out = table.copy()
    out[min(k, table.shape[0] - 1)] += row
    return out


def _calibrated_var(
    model: EstimatorModel, state: EstimatorState, params: EstimatorParams,
) -> tuple[np.ndarray, float]:
    """Link and network variances with the errors the filter cannot see as independent noise.

    The filter's per-link variances assume independent errors; the model's own bias (effective
    vehicle length, vehicles in junctions) is shared across links, so it adds in the network
    sum as a correlated term: ``model_rel_std`` x network vehicles (larger on links no camera
    sees, by their ``obs`` class). Failed detectors add ``failed_rel_std`` x the vehicles on
    links in proportion to the share of their detectors flagged during the scan (of the worst
    kind), independent across links: they fail at random and their imputations err both ways
    (summed as shared, the std at 30 % failed was 4-9x the error on pilot128).
    """
    veh = state.link_vehicles
    n_links = veh.shape[0]
    bad = (state.acc_flags[model.meas_det] != 0).astype(np.float64)
    # a link's share of failed inputs: the worst kind (entry loops, exit loops, zones), since
    # one dead entry loop of two hides half the inflow however many zones still work
    kind = model.det.kind[model.meas_det]
    share = np.zeros(n_links)
    for k in np.unique(kind):
        of_kind = kind == k
        n_k = np.bincount(model.meas_link[of_kind], minlength=n_links)
        bad_k = np.bincount(model.meas_link[of_kind], weights=bad[of_kind], minlength=n_links)
        share = np.maximum(share, bad_k / np.maximum(n_k, 1))
    # both shared terms scale with a link's level while its inputs worked where some have
    # failed: failed inputs can drag the estimate down, which must not shrink its uncertainty
    scale = np.where(share > 0, np.maximum(veh, state.healthy_vehicles), veh)
    fail = params.failed_rel_std * share * scale
    p = params
    rel = np.array([p.model_rel_std, p.uncounted_rel_std, p.loops_only_rel_std,
                    p.weak_rel_std, p.stopline_only_rel_std, p.entry_only_rel_std])[model.obs]
    # a long approach whose queue its stop-line loops only hint at (``_standing_queue``)
    long_loops = (model.obs == OBS_LOOPS) & _reads_standing_queue(model, p)
    rel = np.where(long_loops, p.standing_queue_rel_std, rel)
    bias = rel * scale  # by observability class: links no camera sees are biased far more
    # a cell closed by healthy entry loops and seen by a camera is pinned by both: the
    # filter's variance (flat process noise, sized for tracking) overstates its error, so the
    # link reports a share of it plus count noise growing with its vehicles (Poisson-like);
    # with any input flagged it keeps the filter's variance (imputed counts' variance is real)
    pinned = (np.diff(model.in_indptr) > 0) & (np.diff(model.zone_indptr) > 0) & (share == 0)
    own = np.where(pinned, p.pinned_var_share * state.link_var + p.pinned_var_per_vehicle * veh,
                   state.link_var)
    link_var = own + fail**2 + bias**2
    # the shared bias (clipped levels: conservative) adds up across links, junctions included
    shared = bias.sum() + p.model_rel_std * state.internal
    net_var = (p.link_var_share * state.link_var.sum() + state.internal_var + shared**2
               + (fail**2).sum())
    return link_var, float(net_var)


def _fit_seen(model: EstimatorModel, bad: np.ndarray) -> np.ndarray:
    """Links whose inflow (``_fit_inflow``) constrains the turning fit: healthy entry loops, or
    fed by the stop lines upstream and drained by healthy stop-line loops."""
    n = model.link_len.shape[0]
    in_bad = np.bincount(model.in_link, weights=bad[model.in_det], minlength=n) > 0
    out_bad = np.bincount(model.out_link, weights=bad[model.out_det], minlength=n) > 0
    drained = (model.in_kind == IN_RELEASED) & (model.out_kind == OUT_STOPLINE) & ~out_bad
    return ((np.diff(model.in_indptr) > 0) & ~in_bad) | drained


def summarize(
    model: EstimatorModel, state: EstimatorState, *, params: EstimatorParams
) -> tuple[Estimate, EstimatorState]:
    """Close the scan: fit turning flows, compute movement flows/queues; reset accumulators."""
    n_links = model.link_len.shape[0]
    n_k = min(state.acc_intervals, state.scan_stop.shape[0])
    bad = state.acc_flags != 0  # flagged at some point during the scan
    lane_seen = (model.lane_stop >= 0) & ~bad[np.maximum(model.lane_stop, 0)]
    mov_count, share = fit_turning(
        state.scan_stop, state.scan_in, n_k, model.row_lane, model.row_mov, state.row_share,
        model.mov_to, _fit_seen(model, bad), lane_seen,
        model.mov_from.shape[0], params.turn_iterations, params.flow_smoothing,
        state.prev_stop, min(params.turn_lag_s / params.interval_s, 1.0))
    ratio = turning_ratios(mov_count, state.turning_ratio, model.mov_from, n_links)
    scan_s = max(state.acc_intervals, 1) * params.interval_s
    arrivals = state.scan_in[:n_k].sum(axis=0)[model.mov_from]
    mov_flow = ratio * arrivals * 3600.0 / scan_s
    mov_queue = np.zeros(model.mov_from.shape[0])
    np.add.at(mov_queue, model.row_mov, state.lane_queue[model.row_lane] * share)
    link_var, net_var = _calibrated_var(model, state, params)
    est = Estimate(
        t=state.t_end, link_vehicles=state.link_vehicles, link_std=np.sqrt(link_var),
        network_vehicles=float(max(state.links_total, 0.0) + state.internal),
        network_std=float(np.sqrt(net_var)),
        mov_flow=mov_flow, turning_ratio=ratio, lane_queue=state.lane_queue,
        lane_link=model.lane_link, lane_lane=model.lane_lane, mov_queue=mov_queue,
        detector_flags=state.acc_flags,
        vehicle_length_m=_with_length(params, state.len_hist).vehicle_length_m)
    state = state._replace(
        row_share=share, turning_ratio=ratio, scan_stop=np.zeros_like(state.scan_stop),
        prev_stop=state.scan_stop[max(n_k - 1, 0)].copy(),
        scan_in=np.zeros_like(state.scan_in), acc_flags=np.zeros_like(state.acc_flags),
        acc_intervals=0)
    return est, state


def step(
    model: EstimatorModel, state: EstimatorState, count: np.ndarray, occupancy: np.ndarray,
    speed: np.ndarray, *, t_start: float, params: EstimatorParams, qa_params: QAParams,
) -> EstimatorState:
    """QA one interval of raw detector arrays (NaN = missing), then update the estimate."""
    expected = _expected_entry(model, count, state.qa.hist_count, state.row_share)
    qa, qa_state = qa_interval(model.det, state.qa, count, occupancy, speed,
                               interval_s=params.interval_s, params=qa_params, expected=expected)
    state = state._replace(qa=qa_state)
    return update_interval(model, state, qa, t_end=t_start + params.interval_s, params=params)


def _expected_entry(model: EstimatorModel, count: np.ndarray, hist: np.ndarray,
                    row_share: np.ndarray) -> np.ndarray:
    """Per detector: the count upstream conservation predicts for an entry loop (NaN = none).

    The stop lines of a junction release each lane's count over its movements (the current
    turning shares); a link fed only by movements gets their sum, shared over its entry loops
    as their counts have been (equally before any history). Any missing stop-line count
    upstream leaves the link without a prediction.
    """
    m = model
    zero = np.zeros(count.shape[0])
    flow, _ = _released_inflow(count, zero, row_share, m.lane_stop, m.row_lane, m.into_indptr,
                               m.into_row, 0.0, 0.0)
    return _expected_entry_kernel(flow, np.diff(m.into_indptr) > 0, hist, m.in_indptr,
                                  m.in_det, count.shape[0])


@njit(cache=True)
def _expected_entry_kernel(flow, fed, hist, in_indptr, in_det, n_det):
    """``_expected_entry``: each fed link's released ``flow`` split over its entry loops."""
    out = np.full(n_det, np.nan)
    for link in range(flow.shape[0]):
        lo, hi = in_indptr[link], in_indptr[link + 1]
        if not fed[link] or hi == lo:
            continue
        tot, known = 0.0, True
        for j in range(lo, hi):
            h = hist[in_det[j]]
            known = known and h == h
            tot += h if h == h else 0.0
        if not known and hi - lo > 1:
            # which lanes the flow takes is unknown until every loop has a history (a lane
            # nobody uses must not be called stuck for counting nobody)
            continue
        for j in range(lo, hi):
            share = hist[in_det[j]] / tot if known and tot > 0.0 else 1.0 / (hi - lo)
            out[in_det[j]] = flow[link] * share
    return out


def _is_scan_end(t_end: float, n_acc: int, params: EstimatorParams) -> bool:
    """A scan closes at multiples of ``scan_s`` (or after scan_s worth of intervals)."""
    k = round(t_end / params.scan_s)
    aligned = abs(k * params.scan_s - t_end) < 1e-6 * params.scan_s
    return aligned or n_acc * params.interval_s >= params.scan_s - 1e-9


def run_estimator(
    counts: CountsTable | pd.DataFrame | DetectorFrame, net: CompiledNetwork,
    params: EstimatorParams | None = None, state: EstimatorState | None = None, *,
    qa_params: QAParams | None = None, model: EstimatorModel | None = None,
) -> tuple[list[Estimate], EstimatorState]:
    """Run QA + estimation over every interval after ``state`` and return one Estimate per scan.

    Parameters
    ----------
    counts
        Accepted count rows (or an already pivoted ``DetectorFrame``).
    net
        The compiled network the detector ids refer to.
    params, qa_params
        Estimator and QA parameters (defaults if omitted).
    state
        The state returned by the previous call (the previous scan's state); None = start.
    model
        ``estimator_model(net)``, to skip recompiling it on every call.

    Returns
    -------
    estimates, state
        One ``Estimate`` per scan closed during this call, and the state to pass next time.
    """
    params, qa_params = params or EstimatorParams(), qa_params or QAParams()
    model = model or estimator_model(net)
    state = state or init_state(model, params)
    after = state.t_end - params.interval_s if state.t_end == state.t_end else -np.inf
    frame = counts if isinstance(counts, DetectorFrame) else build_frame(
        counts, net, interval_s=params.interval_s, after=after)
    estimates: list[Estimate] = []
    for k in range(frame.times.shape[0]):
        if frame.times[k] <= after:
            continue
        state = step(model, state, frame.count[k], frame.occupancy[k], frame.speed[k],
                     t_start=float(frame.times[k]), params=params, qa_params=qa_params)
        if _is_scan_end(state.t_end, state.acc_intervals, params):
            est, state = summarize(model, state, params=params)
            estimates.append(est)
    return estimates, state


def estimate(
    counts: CountsTable | pd.DataFrame, net: CompiledNetwork, *,
    params: EstimatorParams | None = None, state: EstimatorState | None = None,
    qa_params: QAParams | None = None,
) -> tuple[Estimate | None, EstimatorState]:
    """Estimate the current traffic state from counts: the last scan's ``Estimate`` and state."""
    ests, state = run_estimator(counts, net, params, state, qa_params=qa_params)
    return (ests[-1] if ests else None), state
