"""Detector QA: counts table -> dense per-interval arrays, quality flags and imputed values.

Every detector is checked every interval, causally (only the past is used, so the same code
runs live). A flagged or missing value is never used as is: it is replaced by an imputation
from healthy neighbours — the loop of the other kind on the same lane (entry <-> stop line,
conservation along the lane), else the healthy detectors of the same kind on the same link
scaled by their historical shares, else the detector's own history — and the imputation
carries a variance that the estimator uses to widen its uncertainty.

Flags (bit mask per detector per interval): ``NO_DATA``, ``STUCK`` (repeated non-trivial
value, or zero while its neighbours see traffic), ``CHATTER`` (more counts than its neighbour or
than its occupancy allows), ``INCONSISTENT`` (flow vs occupancy vs speed disagree),
``IMPLAUSIBLE`` (beyond physical limits).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
from numba import njit

from signalopt.config import QAParams, per_interval
from signalopt.errors import CountsError
from signalopt.io.counts import CountsTable
from signalopt.network import DETECTOR_KINDS, JAM_SPACING_M, CompiledNetwork

NO_DATA, STUCK, CHATTER, INCONSISTENT, IMPLAUSIBLE = 1, 2, 4, 8, 16
FLAG_NAMES = {NO_DATA: "no_data", STUCK: "stuck", CHATTER: "chatter",
              INCONSISTENT: "inconsistent", IMPLAUSIBLE: "implausible"}
KIND_ENTRY, KIND_STOPLINE, KIND_ZONE = 0, 1, 2  # indices into network.DETECTOR_KINDS
QUEUE_REACH_M = 30.0  # loops of one lane this close share the stop line's standing queue
# how a value was imputed (source code per detector per interval)
SRC_MEASURED, SRC_PARTNER, SRC_SIBLINGS, SRC_HISTORY, SRC_UPSTREAM = 0, 1, 2, 3, 4


class DetectorFrame(NamedTuple):
    """Dense detector data: row = interval (``times`` = starts), column = detector index; NaN = missing."""

    times: np.ndarray
    count: np.ndarray
    occupancy: np.ndarray
    speed: np.ndarray


def flag_names(bits: int) -> str:
    """A QA bit mask in words, e.g. ``"no_data,stuck"`` ("" when healthy)."""
    return ",".join(name for bit, name in FLAG_NAMES.items() if int(bits) & bit)


class DetectorModel(NamedTuple):
    """Static detector topology the QA kernel needs, compiled once per network."""

    kind: np.ndarray  # (n_det,) index into DETECTOR_KINDS
    partner: np.ndarray  # (n_det,) loop of the other kind on the same link+lane, -1 if none
    group: np.ndarray  # (n_det,) index of its (link, kind) group
    group_indptr: np.ndarray  # CSR over groups
    group_det: np.ndarray
    speed_limit: np.ndarray  # (n_det,) speed limit of its link, m/s
    covers: np.ndarray  # (n_det,) for a zone, the stop-line loop inside it on its lane, else -1
    near: np.ndarray  # (n_det,) bool: its partner loop is within QUEUE_REACH_M (shares its queue)
    holds: np.ndarray  # (n_det,) vehicles the lane between it and its partner loop holds at jam
    feeds: np.ndarray  # (n_det,) for a zone, the entry loop on its lane, else -1
    feeds_holds: np.ndarray  # (n_det,) vehicles the lane between that loop and the zone holds at jam


class QAState(NamedTuple):
    """What QA remembers between intervals (per detector)."""

    last_count: np.ndarray
    last_occ: np.ndarray
    run: np.ndarray  # intervals the same non-trivial value repeated
    zero_run: np.ndarray  # vehicles neighbours counted since this one last counted any
    hist_count: np.ndarray  # EWMA of healthy counts (NaN until first seen)
    hist_occ: np.ndarray


class QAResult(NamedTuple):
    """One interval (1-D) or many (2-D, interval x detector) of QA output."""

    flags: np.ndarray  # uint8 bit mask
    count: np.ndarray  # measured if healthy, else imputed (never NaN)
    count_var: np.ndarray  # variance of ``count`` (veh^2)
    occupancy: np.ndarray  # measured if healthy, else imputed (%)
    speed: np.ndarray  # measured if healthy, else NaN
    source: np.ndarray  # SRC_* code


def detector_model(net: CompiledNetwork) -> DetectorModel:
    """Compile the neighbour structure of ``net``'s detectors (partners, same-kind groups)."""
    n = net.n_detectors
    partner = np.full(n, -1, dtype=np.int64)
    loops: dict[tuple[int, int, int], int] = {}
    for d in range(n):
        loops.setdefault((int(net.det_link[d]), int(net.det_lane[d]), int(net.det_kind[d])), d)
    for d in range(n):
        kind = int(net.det_kind[d])
        if kind in (KIND_ENTRY, KIND_STOPLINE):
            other = KIND_STOPLINE if kind == KIND_ENTRY else KIND_ENTRY
            partner[d] = loops.get((int(net.det_link[d]), int(net.det_lane[d]), other), -1)
    keys = net.det_link.astype(np.int64) * 3 + net.det_kind.astype(np.int64)
    uniq, group = np.unique(keys, return_inverse=True) if n else (keys, keys)
    order = np.argsort(group, kind="stable")
    indptr = np.zeros(len(uniq) + 1, dtype=np.int64)
    indptr[1:] = np.cumsum(np.bincount(group, minlength=len(uniq)))
    speed = net.link_speed[net.det_link] if n else np.zeros(0)
    gap = np.where(partner >= 0, np.abs(net.det_pos - net.det_pos[partner]), 0.0)
    covers = np.full(n, -1, dtype=np.int64)
    feeds, feeds_holds = np.full(n, -1, dtype=np.int64), np.zeros(n)
    for d in np.flatnonzero(net.det_kind == KIND_ZONE):
        s = loops.get((int(net.det_link[d]), int(net.det_lane[d]), KIND_STOPLINE), -1)
        if s >= 0 and net.det_pos[d] <= net.det_pos[s] <= net.det_pos[d] + net.det_length[d]:
            covers[d] = s
        e = loops.get((int(net.det_link[d]), int(net.det_lane[d]), KIND_ENTRY), -1)
        if e >= 0 and net.det_pos[e] <= net.det_pos[d]:
            feeds[d] = e
            feeds_holds[d] = (net.det_pos[d] - net.det_pos[e]) / JAM_SPACING_M
    return DetectorModel(
        kind=np.ascontiguousarray(net.det_kind, dtype=np.int64), partner=partner,
        group=group.astype(np.int64), group_indptr=indptr, group_det=order.astype(np.int64),
        speed_limit=np.ascontiguousarray(speed, dtype=np.float64), covers=covers,
        near=(partner >= 0) & (gap <= QUEUE_REACH_M), holds=gap / JAM_SPACING_M,
        feeds=feeds, feeds_holds=feeds_holds,
    )


def init_qa_state(n_detectors: int) -> QAState:
    """A fresh QA state: no history, no runs."""
    nan = np.full(n_detectors, np.nan)
    zero = np.zeros(n_detectors, dtype=np.int64)
    return QAState(nan.copy(), nan.copy(), zero, np.zeros(n_detectors), nan.copy(), nan.copy())


def build_frame(
    counts: CountsTable | pd.DataFrame, net: CompiledNetwork, *, interval_s: float,
    after: float = -np.inf,
) -> DetectorFrame:
    """Pivot accepted count rows into dense (interval x detector) arrays, NaN where missing.

    Intervals are every ``interval_s`` from the first start after ``after`` to the last one,
    so a silent interval of the whole network still appears (all NaN).
    """
    df = counts.frame if isinstance(counts, CountsTable) else counts
    df = df[df["interval_start"] > after]
    if not len(df):
        empty = np.zeros((0, net.n_detectors))
        return DetectorFrame(np.zeros(0), empty, empty.copy(), empty.copy())
    t = df["interval_start"].to_numpy(dtype=np.float64)
    t0 = float(t.min())
    row = np.rint((t - t0) / interval_s).astype(np.int64)
    if np.any(np.abs(row * interval_s + t0 - t) > 1e-6 * max(1.0, interval_s)):
        bad = df["interval_start"].iloc[int(np.argmax(np.abs(row * interval_s + t0 - t)))]
        msg = f"interval_start {bad:g} is not on the {interval_s:g} s grid starting at {t0:g}"
        raise CountsError(msg)
    # a hash-table lookup of all ids at once (Series.map over strings is ~10x slower)
    col = pd.Index(net.det_ids).get_indexer(df["detector_id"])
    if (col < 0).any():
        msg = f"unknown detector {df['detector_id'].iloc[int(np.argmax(col < 0))]!r}"
        raise CountsError(msg)
    shape = (int(row.max()) + 1, net.n_detectors)
    out = [np.full(shape, np.nan) for _ in range(3)]
    for arr, name in zip(out, ("count", "occupancy", "speed"), strict=True):
        arr[row, col] = df[name].to_numpy(dtype=np.float64)
    return DetectorFrame(t0 + interval_s * np.arange(shape[0]), *out)


def qa_interval(
    model: DetectorModel, state: QAState, count: np.ndarray, occupancy: np.ndarray,
    speed: np.ndarray, *, interval_s: float, params: QAParams, expected: np.ndarray | None = None,
) -> tuple[QAResult, QAState]:
    """Check one interval of every detector, impute what is flagged; return result and new state.

    ``expected``: per detector, the count that upstream conservation predicts (NaN = none),
    e.g. an entry loop's share of the flow the stop lines upstream released into its link.
    It stands in for a partner loop where a detector has none.
    """
    if expected is None:
        expected = np.full(count.shape[0], np.nan)
    res = _qa_step(
        np.ascontiguousarray(count, dtype=np.float64),
        np.ascontiguousarray(occupancy, dtype=np.float64),
        np.ascontiguousarray(speed, dtype=np.float64),
        np.ascontiguousarray(expected, dtype=np.float64),
        *model, *state, interval_s, params.max_flow_veh_h_lane,
        max(params.stuck_intervals, int(np.ceil(params.stuck_min_s / interval_s - 1e-9))),
        params.stuck_zero_vehicles, params.stuck_zero_zone_vehicles, params.chatter_ratio,
        params.chatter_min_count,
        params.vehicle_length_m, params.max_occupancy_per_flow,
        per_interval(params.history_weight, interval_s),
        params.share_prior_veh_h * interval_s / 3600.0, params.share_prior_occupancy,
    )
    return QAResult(*res[:6]), QAState(*res[6:])


def run_qa(
    frame: DetectorFrame, model: DetectorModel, *, interval_s: float,
    params: QAParams | None = None, state: QAState | None = None,
) -> tuple[QAResult, QAState]:
    """Run QA over every interval of ``frame``; return 2-D results and the final state."""
    params = params or QAParams()
    state = state or init_qa_state(frame.count.shape[1])
    outs = []
    for k in range(frame.count.shape[0]):
        res, state = qa_interval(model, state, frame.count[k], frame.occupancy[k],
                                 frame.speed[k], interval_s=interval_s, params=params)
        outs.append(res)
    if not outs:
        z = np.zeros((0, frame.count.shape[1]))
        return QAResult(z.astype(np.uint8), z, z, z, z, z.astype(np.int64)), state
    return QAResult(*(np.stack(a) for a in zip(*outs, strict=True))), state


@njit(cache=True)
def _own_flags(c, o, v, kind, vmax, last_c, last_o, run, T, max_flow, stuck_n, veh_len,
               occ_ratio):
    """Flags a detector earns from its own value; returns (flags, new run length)."""
    if np.isnan(c):
        return NO_DATA, 0
    f = 0
    same = c == last_c and (o == last_o or (np.isnan(o) and np.isnan(last_o)))
    nontrivial = c > 0 or (o > 0.0 and o < 100.0)
    new_run = run + 1 if same and nontrivial else 0
    if new_run + 1 >= stuck_n:
        f |= STUCK
    is_loop = kind != KIND_ZONE
    if is_loop and c > max_flow * T / 3600.0 + 2.0:
        f |= IMPLAUSIBLE
    if v == v and v > 2.0 * vmax + 10.0:
        f |= IMPLAUSIBLE
    if is_loop and o == o and o >= 99.9 and v == v and v > 5.0:
        f |= IMPLAUSIBLE
    if is_loop and o == o:
        if (c == 0 and v == v) or (c >= 3 and o == 0.0):
            f |= INCONSISTENT
        elif c >= 3 and v == v and v > 0.5:  # too little occupancy for this many vehicles
            expect = 100.0 * c * veh_len / (v * T)
            if expect > 10.0 and o < expect / occ_ratio:
                f |= INCONSISTENT
        if c >= 4 and o == o and o * T / 100.0 / c < 0.5 * veh_len / (2.0 * vmax + 10.0):
            f |= CHATTER
    return f, new_run


@njit(cache=True)
def _group_share(d, g, group_indptr, group_det, ok, values, hist, prior):
    """Sum of the healthy same-group values scaled by ``d``'s historical share (NaN if none).

    Each history gets ``prior`` added (a pseudo-observation): a share is a ratio of short
    averages, and siblings that carried almost nobody would otherwise multiply their next
    vehicle many times over."""
    tot, share_ok, share_d, n_ok, n = 0.0, 0.0, 0.0, 0, 0
    for j in range(group_indptr[g], group_indptr[g + 1]):
        e = group_det[j]
        n += 1
        h = hist[e] if hist[e] == hist[e] else -1.0
        if e == d:
            share_d = h
            continue
        if ok[e]:
            tot += values[e]
            share_ok += h
            n_ok += 1
    if n_ok == 0:
        return np.nan
    if share_d < 0.0:  # no history of its own yet: equal shares
        return tot / n_ok
    if share_ok <= 0.0:  # the healthy ones never carried anyone: they say nothing of it
        return np.nan
    return tot * (share_d + prior) / (share_ok + n_ok * prior)


@njit(cache=True)
def _qa_step(count, occ, speed, expected, kind, partner, group, group_indptr, group_det, vmax, covers,
             near, holds, feeds, feeds_holds, last_c, last_o, run, zero_run, hist_c, hist_o, T, max_flow, stuck_n,
             stuck_zero_n, stuck_zero_zone_n, chatter_ratio, chatter_min, veh_len, occ_ratio, w, prior_c, prior_o):
    """QA + imputation for one interval of all detectors; returns results and the new state."""
    n = count.shape[0]
    flags = np.zeros(n, dtype=np.uint8)
    new_run = np.zeros(n, dtype=np.int64)
    for d in range(n):
        f, r = _own_flags(count[d], occ[d], speed[d], kind[d], vmax[d], last_c[d], last_o[d],
                          run[d], T, max_flow, stuck_n, veh_len, occ_ratio)
        flags[d] = f
        new_run[d] = r
    ok = flags == 0
    # stuck at zero: vehicles its partner loop (or, for a camera, the stop-line loop inside
    # its view) has counted since it last counted anyone; kept while it reads zero, so
    # sparse traffic adds up instead of restarting the count every quiet interval
    new_zero = np.where(count == 0.0, zero_run, 0.0)
    for d in range(n):  # neighbour checks: stuck at zero, chatter vs partner
        p = partner[d]
        if not ok[d]:
            continue
        if p >= 0 and ok[p]:
            ref = count[p]
            # more than the lane between them could have stored or released
            if count[d] >= chatter_min and count[d] > chatter_ratio * ref + 3.0 + holds[d]:
                flags[d] |= CHATTER
        elif p < 0 and expected[d] == expected[d]:
            ref = expected[d]  # no partner loop: what upstream released towards it
        else:
            continue
        if count[d] == 0:
            new_zero[d] += ref
            # beyond what the lane between them can hold (a queue filling a long link is
            # not a stuck stop-line loop)
            if new_zero[d] >= stuck_zero_n + holds[d]:
                flags[d] |= STUCK
    for d in range(n):  # a camera that sees nobody while the loop inside its view counts cars
        if not ok[d] or count[d] != 0:
            continue
        s, e = covers[d], feeds[d]
        if s >= 0 and ok[s]:
            new_zero[d] += count[s]
            if new_zero[d] >= stuck_zero_zone_n:
                flags[d] |= STUCK
        elif e >= 0 and ok[e]:  # that loop broken or absent: cars its lane's entry loop
            new_zero[d] += count[e]  # counted, beyond what the lane before the view holds
            if new_zero[d] >= stuck_zero_n + feeds_holds[d]:
                flags[d] |= STUCK
    ok = flags == 0
    return _impute(count, occ, speed, expected, kind, partner, near, group, group_indptr,
                   group_det, flags, ok, new_run, new_zero, hist_c, hist_o, w, prior_c, prior_o)


@njit(cache=True)
def _impute(count, occ, speed, expected, kind, partner, near, group, group_indptr, group_det,
            flags, ok, new_run, new_zero, hist_c, hist_o, w, prior_c, prior_o):
    """Replace flagged values from partner, same-kind siblings, upstream conservation or
    history; update history. ``prior_c``/``prior_o``: the pseudo-history each sibling share
    starts from (vehicles per interval, occupancy %)."""
    n = count.shape[0]
    c_out, var, o_out = count.copy(), np.zeros(n), occ.copy()
    v_out, src = speed.copy(), np.zeros(n, dtype=np.int64)
    for d in range(n):
        if ok[d]:
            if np.isnan(o_out[d]):
                o_out[d] = 0.0
            continue
        v_out[d] = np.nan
        p = partner[d]
        sib_c = _group_share(d, group[d], group_indptr, group_det, ok, count, hist_c, prior_c)
        sib_o = _group_share(d, group[d], group_indptr, group_det, ok, occ, hist_o, prior_o)
        if sib_o == sib_o:
            sib_o = min(sib_o, 100.0)
        h_c = hist_c[d] if hist_c[d] == hist_c[d] else 0.0
        h_o = hist_o[d] if hist_o[d] == hist_o[d] else 0.0
        if p >= 0 and ok[p]:
            # the partner's count (same lane, little storage between them); a stop line's
            # occupancy is mostly standing queue, which an entry loop far upstream rarely
            # sees (one within QUEUE_REACH_M shares it)
            c_out[d], src[d] = count[p], SRC_PARTNER
            if kind[d] == KIND_STOPLINE:
                o_out[d] = h_o
            elif near[d] or not (h_c > 0.0 and hist_o[d] == hist_o[d]):
                o_out[d] = occ[p]  # a stop line's queue that reaches it (or no history)
            else:  # far upstream: its own occupancy per vehicle, at the partner's count
                o_out[d] = min(h_o / h_c * count[p], 100.0)
            var[d] = 1.0 + 0.09 * count[p] * count[p]
        elif sib_c == sib_c:
            c_out[d], src[d] = sib_c, SRC_SIBLINGS
            o_out[d] = sib_o if sib_o == sib_o else h_o
            var[d] = 2.0 + 0.25 * sib_c * sib_c
        elif expected[d] == expected[d]:
            c_out[d], o_out[d], src[d] = expected[d], h_o, SRC_UPSTREAM
            var[d] = 2.0 + 0.25 * expected[d] * expected[d]
        else:
            c_out[d], o_out[d], src[d] = h_c, h_o, SRC_HISTORY
            var[d] = 4.0 + h_c * h_c
    h_c2, h_o2 = hist_c.copy(), hist_o.copy()
    was_c, now_c, was_o, now_o = np.zeros(3), np.zeros(3), np.zeros(3), np.zeros(3)
    for d in range(n):
        # a zero that neighbours contradict is suspect: it does not enter the history until
        # the detector counts again (else a stuck one's history, and so its imputed share,
        # decays before it is caught)
        if ok[d] and new_zero[d] == 0:
            h_c2[d] = count[d] if np.isnan(hist_c[d]) else (1 - w) * hist_c[d] + w * count[d]
            h_o2[d] = o_out[d] if np.isnan(hist_o[d]) else (1 - w) * hist_o[d] + w * o_out[d]
            if hist_c[d] == hist_c[d] and hist_o[d] == hist_o[d]:
                was_c[kind[d]] += hist_c[d]
                now_c[kind[d]] += h_c2[d]
                was_o[kind[d]] += hist_o[d]
                now_o[kind[d]] += h_o2[d]
    for d in range(n):  # a flagged detector's history follows its kind's trend (demand moves on)
        k = kind[d]
        if not ok[d] and was_c[k] > 0.0:
            h_c2[d] = hist_c[d] * now_c[k] / was_c[k]
        if not ok[d] and was_o[k] > 0.0:
            h_o2[d] = min(hist_o[d] * now_o[k] / was_o[k], 100.0)
    return (flags, c_out, var, o_out, v_out, src, count.copy(), occ.copy(), new_run, new_zero,
            h_c2, h_o2)


def health_table(flags: np.ndarray, t: np.ndarray, net: CompiledNetwork) -> pd.DataFrame:
    """Per detector: how often QA flagged it, and why, over a run of scans (worst first).

    ``flags``: (n_scans, n_detectors) QA bit masks, each the OR over one scan's intervals
    (``Estimate.detector_flags``); ``t``: each scan's end, s. Shares are of scans; ``first_t``
    and ``last_t`` are the ends of the first and last flagged scan (NaN if never).
    """
    flags = np.asarray(flags, dtype=np.uint8).reshape(-1, net.n_detectors)
    t = np.asarray(t, dtype=np.float64)
    if t.shape[0] != flags.shape[0]:
        msg = f"{flags.shape[0]} scans of flags but {t.shape[0]} scan times"
        raise ValueError(msg)
    bad = flags != 0
    n = max(flags.shape[0], 1)
    anyb = bad.any(axis=0)
    first = np.where(anyb, t[np.argmax(bad, axis=0)] if t.size else np.nan, np.nan)
    last = np.where(anyb, t[t.size - 1 - np.argmax(bad[::-1], axis=0)] if t.size else np.nan,
                    np.nan)
    table = pd.DataFrame({
        "detector_id": list(net.det_ids),
        "kind": [DETECTOR_KINDS[int(k)] for k in net.det_kind],
        "link": [net.link_ids[k] for k in net.det_link],
        "lane": np.asarray(net.det_lane, dtype=np.int64),
        "scans": flags.shape[0],
        "flagged_%": 100 * bad.sum(axis=0) / n,
        **{f"{name}_%": 100 * ((flags & bit) != 0).sum(axis=0) / n
           for bit, name in FLAG_NAMES.items()},
        "first_t": first, "last_t": last,
        "flagged_now": bad[-1] if flags.shape[0] else np.zeros(net.n_detectors, dtype=bool),
    })
    return table.sort_values(["flagged_%", "detector_id"], ascending=[False, True],
                             kind="stable").reset_index(drop=True)
