"""The estimator's static view of a network: cells, exit cross-sections, approach lanes.

Compiled once per network (``estimator_model``) into flat arrays that the kernels in
``signalopt.estimate`` take: for every link its inflow (its entry loops, else what the stop
lines upstream release into it, else unknown), its exit cross-section (its own stop-line
loops, else the entry loops of the next links, else the stop-line loops of the one next link
where that link has no entry loops of its own (the two share one cell), else a free exit),
its zones, its successors; the approach lanes with their stop-line loop and zone; the
lane -> movement rows. Any subset of detector kinds compiles: a network with stop-line loops
only still has a cell per road between stop lines.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from signalopt.detectors import KIND_STOPLINE, KIND_ZONE, DetectorModel, detector_model
from signalopt.network import CompiledNetwork

OUT_STOPLINE, OUT_NEXT_ENTRY, OUT_FREE, OUT_MERGED = 0, 1, 2, 3
IN_LOOPS, IN_RELEASED, IN_UNKNOWN = 0, 1, 2
# how well a link's estimate is observed (its model-bias class, see ``_observability``)
OBS_CAMERA, OBS_CAMERA_UNCOUNTED, OBS_LOOPS, OBS_WEAK, OBS_STOPLINE, OBS_ENTRY = 0, 1, 2, 3, 4, 5


class EstimatorModel(NamedTuple):
    """Static arrays of the estimator, compiled once per network (see ``estimator_model``)."""

    det: DetectorModel
    link_len: np.ndarray
    link_lanes: np.ndarray
    link_storage: np.ndarray
    link_speed: np.ndarray
    entry_pos: np.ndarray  # (n_links,) mean entry-loop position, 0 if none (merged: stop line)
    exit_pos: np.ndarray  # stop-line position, or length + next entry_pos, or length
    out_kind: np.ndarray  # OUT_* per link (OUT_MERGED: its road is in the previous link's cell)
    in_kind: np.ndarray  # IN_* per link
    into_indptr: np.ndarray  # CSR link -> lane_mov rows whose stop lines release into it
    into_row: np.ndarray
    exit_link: np.ndarray  # (n_links,) the link whose movements leave this cell's exit
    obs: np.ndarray  # (n_links,) OBS_* class
    is_approach: np.ndarray  # (n_links,) bool: has movements through a signalised junction
    signal_delay: np.ndarray  # (n_links,) mean wait at the cell's exit stop line (base program), s
    cross_s: np.ndarray  # (n_links,) free time through the node at the cell's exit, s (0: unknown)
    in_indptr: np.ndarray  # CSR link -> entry loops on it
    in_det: np.ndarray
    in_link: np.ndarray  # link of each in_det entry
    out_indptr: np.ndarray  # CSR link -> detectors of its exit cross-section
    out_det: np.ndarray
    out_link: np.ndarray  # link of each out_det entry
    out_w: np.ndarray  # weight of each (shared successor entry loop)
    out_wsum: np.ndarray  # (n_links,) sum of out_w: the exit cross-section's lanes
    succ_indptr: np.ndarray  # CSR link -> successor links (for OUT_NEXT_ENTRY)
    succ: np.ndarray
    succ_w: np.ndarray  # static share of each successor's entry count (1 / its feeders)
    out_succ: np.ndarray  # succ index of each out_det entry (-1: the link's own stop line)
    zone_indptr: np.ndarray  # CSR link -> zone detectors on it
    zone_det: np.ndarray
    zone_start: np.ndarray  # (n_det,) zone start/end (m from link start); loops: pos/pos
    zone_end: np.ndarray
    lane_link: np.ndarray  # approach lanes (unique (link, lane) of lane_mov rows)
    lane_lane: np.ndarray
    lane_stop: np.ndarray  # stop-line detector of the approach lane, -1 if none
    lane_zone: np.ndarray  # zone detector of the approach lane, -1 if none
    row_lane: np.ndarray  # lane_mov row -> approach lane index
    row_mov: np.ndarray
    mov_from: np.ndarray
    mov_to: np.ndarray
    mov_int: np.ndarray
    n_int: int
    meas_link: np.ndarray  # (link, detector) pairs: every detector a link's estimate uses
    meas_det: np.ndarray


def _csr(groups: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    indptr = np.zeros(len(groups) + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(g) for g in groups])
    return indptr, np.array([x for g in groups for x in g], dtype=np.int64)


def _link_detectors(net: CompiledNetwork) -> tuple[list[list[int]], list[list[int]], list[list[int]]]:
    """Entry loops, stop-line loops and zones of each link."""
    groups: tuple[list[list[int]], ...] = tuple([[] for _ in range(net.n_links)] for _ in range(3))
    for d in range(net.n_detectors):
        groups[int(net.det_kind[d])][int(net.det_link[d])].append(d)
    return groups


def _is_uturn(net: CompiledNetwork, succs: list[list[int]], link: int, nxt: int) -> bool:
    """``nxt`` leads back to where ``link`` came from (directly or via one pass-through node)."""
    origin, end = int(net.link_from_node[link]), int(net.link_to_node[nxt])
    if end == origin:
        return True
    return len(succs[end]) == 1 and int(net.link_to_node[succs[end][0]]) == origin


def _onward(net: CompiledNetwork, succs: list[list[int]]) -> list[list[int]]:
    """Per link, the links its vehicles drive on to: those leaving its end node that it
    connects to (all of them where the network does not say), U-turns aside. A U-turn's entry
    loop mostly counts what starts there (SUMO adds one at every dead end), so sharing it
    would drain the link."""
    out = []
    for link in range(net.n_links):
        lo, hi = net.link_to_indptr[link], net.link_to_indptr[link + 1]
        to = ({int(s) for s in net.link_to[lo:hi]} if net.link_to_known[link]
              else set(succs[int(net.link_to_node[link])]))
        out.append([s for s in succs[int(net.link_to_node[link])]
                    if s in to and not _is_uturn(net, succs, link, s)])
    return out


def estimator_model(net: CompiledNetwork) -> EstimatorModel:
    """Compile the estimator's view of ``net``: cells, cross-sections, approach lanes."""
    n = net.n_links
    entry, stop, zone = _link_detectors(net)
    entry_pos = np.array([net.det_pos[g].mean() if g else 0.0 for g in entry])
    preds: list[list[int]] = [[] for _ in range(len(net.node_ids))]
    succs: list[list[int]] = [[] for _ in range(len(net.node_ids))]
    for link in range(n):
        preds[int(net.link_to_node[link])].append(link)
        succs[int(net.link_from_node[link])].append(link)
    onward = _onward(net, succs)
    out_kind = np.full(n, OUT_FREE, dtype=np.int64)
    exit_pos = np.asarray(net.link_length, dtype=np.float64).copy()
    out_g: list[list[int]] = [[] for _ in range(n)]
    out_w: list[list[float]] = [[] for _ in range(n)]
    succ_g: list[list[int]] = [[] for _ in range(n)]
    succ_w: list[list[float]] = [[] for _ in range(n)]
    for link in range(n):
        node = int(net.link_to_node[link])
        nxt = onward[link]
        if stop[link]:
            out_kind[link], out_g[link] = OUT_STOPLINE, stop[link]
            out_w[link] = [1.0] * len(stop[link])
            exit_pos[link] = float(net.det_pos[stop[link]].mean())
        elif nxt and all(entry[s] for s in nxt):
            # each next link's entry count is shared equally by the links that can feed it
            out_kind[link] = OUT_NEXT_ENTRY
            w = [1.0 / max(1, sum(s in onward[p] for p in preds[node])) for s in nxt]
            succ_g[link], succ_w[link] = nxt, w
            out_g[link] = [d for s in nxt for d in entry[s]]
            out_w[link] = [ws for s, ws in zip(nxt, w, strict=True) for _ in entry[s]]
            exit_pos[link] += float(np.mean(entry_pos[nxt]))
    exit_link = _merge_split_roads(net, preds, onward, entry, stop, out_kind, out_g, out_w,
                                   succ_g, succ_w, entry_pos, exit_pos)
    lanes = sorted({(int(a), int(b)) for a, b in zip(net.lane_mov_link, net.lane_mov_lane, strict=True)})
    lane_index = {k: i for i, k in enumerate(lanes)}
    by_lane = {(int(net.det_link[d]), int(net.det_lane[d]), int(net.det_kind[d])): d
               for d in range(net.n_detectors)}
    z_start = np.asarray(net.det_pos, dtype=np.float64).copy()
    z_end = z_start + np.asarray(net.det_length, dtype=np.float64)
    ii = _csr
    lane_stop = np.array([by_lane.get((a, b, KIND_STOPLINE), -1) for a, b in lanes], dtype=np.int64)
    row_lane = np.array([lane_index[(int(a), int(b))] for a, b in
                         zip(net.lane_mov_link, net.lane_mov_lane, strict=True)], dtype=np.int64)
    in_kind, into = _inflow_kinds(net, entry, lane_stop, row_lane)
    rel_det = [[int(lane_stop[row_lane[r]]) for r in into[k]] if in_kind[k] == IN_RELEASED else []
               for k in range(n)]
    meas = [(k, sorted({*entry[k], *out_g[k], *zone[k], *rel_det[k]})) for k in range(n)]
    is_approach = np.bincount(np.asarray(net.mov_from, dtype=np.int64), minlength=n) > 0
    return EstimatorModel(
        det=detector_model(net), link_len=np.asarray(net.link_length, dtype=np.float64),
        link_lanes=np.asarray(net.link_lanes, dtype=np.float64),
        link_storage=np.asarray(net.link_storage, dtype=np.float64),
        link_speed=np.asarray(net.link_speed, dtype=np.float64), entry_pos=entry_pos,
        exit_pos=exit_pos, out_kind=out_kind, in_kind=in_kind, into_indptr=ii(into)[0],
        into_row=ii(into)[1], exit_link=exit_link,
        obs=_observability(entry, zone, in_kind, out_kind, succ_g, succ_w, is_approach),
        is_approach=is_approach,
        signal_delay=_signal_delay(net)[exit_link],
        cross_s=np.asarray(net.link_cross_s, dtype=np.float64)[exit_link],
        in_indptr=ii(entry)[0], in_det=ii(entry)[1],
        in_link=np.repeat(np.arange(n), np.diff(ii(entry)[0])),
        out_indptr=ii(out_g)[0], out_det=ii(out_g)[1],
        out_link=np.repeat(np.arange(n), np.diff(ii(out_g)[0])),
        out_w=np.array([w for g in out_w for w in g], dtype=np.float64),
        out_wsum=np.array([sum(g) for g in out_w], dtype=np.float64),
        succ_indptr=ii(succ_g)[0], succ=ii(succ_g)[1],
        succ_w=np.array([w for g in succ_w for w in g], dtype=np.float64),
        out_succ=_out_succ(out_kind, out_g, succ_g, entry, ii(succ_g)[0]),
        zone_indptr=ii(zone)[0], zone_det=ii(zone)[1], zone_start=z_start, zone_end=z_end,
        lane_link=np.array([a for a, _ in lanes], dtype=np.int64),
        lane_lane=np.array([b for _, b in lanes], dtype=np.int64),
        lane_stop=lane_stop,
        lane_zone=np.array([by_lane.get((a, b, KIND_ZONE), -1) for a, b in lanes], dtype=np.int64),
        row_lane=row_lane,
        row_mov=np.asarray(net.lane_mov_mov, dtype=np.int64),
        mov_from=np.asarray(net.mov_from, dtype=np.int64), mov_to=np.asarray(net.mov_to, dtype=np.int64),
        mov_int=np.asarray(net.mov_int, dtype=np.int64), n_int=net.n_intersections,
        meas_link=np.array([k for g in meas for k in [g[0]] * len(g[1])], dtype=np.int64),
        meas_det=np.array([d for g in meas for d in g[1]], dtype=np.int64),
    )


def _merge_split_roads(net: CompiledNetwork, preds: list[list[int]], onward: list[list[int]],
                       entry: list[list[int]], stop: list[list[int]], out_kind: np.ndarray,
                       out_g: list[list[int]], out_w: list[list[float]],
                       succ_g: list[list[int]], succ_w: list[list[float]],
                       entry_pos: np.ndarray, exit_pos: np.ndarray) -> np.ndarray:
    """One cell for a road split in two links at a plain node with no loop at the joint (a
    link with no exit cross-section whose only successor has stop-line loops but no entry
    loops): the first link's cell runs on to the second's stop line and the second becomes
    ``OUT_MERGED``, all of it before its stop line a head that the first link's cell holds.
    Updates the arrays in place; returns each link's ``exit_link`` (whose movements leave
    its cell)."""
    exit_link = np.arange(net.n_links, dtype=np.int64)
    for link in range(net.n_links):
        node = int(net.link_to_node[link])
        nxt = onward[link]
        if out_kind[link] != OUT_FREE or len(nxt) != 1:
            continue
        s = nxt[0]
        feeders = [p for p in preds[node] if s in onward[p]]
        if not stop[s] or entry[s] or out_kind[s] != OUT_STOPLINE or feeders != [link]:
            continue
        stop_pos = float(net.det_pos[stop[s]].mean())
        out_kind[link], out_g[link], out_w[link] = OUT_STOPLINE, stop[s], [1.0] * len(stop[s])
        exit_pos[link] = float(net.link_length[link]) + stop_pos
        succ_g[link], succ_w[link], exit_link[link] = [s], [1.0], s
        out_kind[s], entry_pos[s] = OUT_MERGED, stop_pos
    return exit_link


def _out_succ(out_kind: np.ndarray, out_g: list[list[int]], succ_g: list[list[int]],
              entry: list[list[int]], succ_indptr: np.ndarray) -> np.ndarray:
    """For each exit detector of each link, the index of its successor in the succ arrays
    (a next link's entry loop), or -1 (the link's own or a merged road's stop line)."""
    out: list[int] = []
    for k, nxt in enumerate(succ_g):
        if out_kind[k] == OUT_NEXT_ENTRY:
            out += [int(succ_indptr[k]) + i for i, s in enumerate(nxt) for _ in entry[s]]
        else:
            out += [-1] * len(out_g[k])
    return np.array(out, dtype=np.int64)


def _inflow_kinds(net: CompiledNetwork, entry: list[list[int]], lane_stop: np.ndarray,
                  row_lane: np.ndarray) -> tuple[np.ndarray, list[list[int]]]:
    """Per link: how its inflow is known (``IN_*``) and the lane_mov rows releasing into it
    (``IN_RELEASED``: no entry loops, and every one of those rows has a stop-line loop)."""
    rows_into: list[list[int]] = [[] for _ in range(net.n_links)]
    for r, mv in enumerate(net.lane_mov_mov):
        rows_into[int(net.mov_to[mv])].append(r)
    in_kind = np.full(net.n_links, IN_UNKNOWN, dtype=np.int64)
    for k in range(net.n_links):
        if entry[k]:
            in_kind[k] = IN_LOOPS
        elif rows_into[k] and all(lane_stop[row_lane[r]] >= 0 for r in rows_into[k]):
            in_kind[k] = IN_RELEASED
    return in_kind, rows_into


def _observability(entry: list[list[int]], zone: list[list[int]], in_kind: np.ndarray,
                   out_kind: np.ndarray, succ_g: list[list[int]],
                   succ_w: list[list[float]], is_approach: np.ndarray) -> np.ndarray:
    """Per link, how well the detectors observe it (its class of model bias):

    - ``OBS_CAMERA``: a camera sees it and counts close its cell (inflow known, outflow
      counted for it alone);
    - ``OBS_CAMERA_UNCOUNTED``: a camera sees it, but some flow through it is not counted;
    - ``OBS_LOOPS``: no camera, closed by counts, entry loops give a density, and any queue
      ends at a stop-line loop;
    - ``OBS_STOPLINE``: no camera or entry loops; fed by the stop lines upstream and
      ending at its own (vehicles by Little's law from the stop-line count);
    - ``OBS_ENTRY``: no camera; a road between unsignalised nodes closed by entry loops, its
      outflow shared with other feeders of the next links or a queue possible between them
      (not one feeding an approach whose stop line nothing counts);
    - ``OBS_WEAK``: the rest (nothing measures it, or a junction's outflow is shared among
      its approaches).
    """
    n = len(entry)
    obs = np.full(n, OBS_WEAK, dtype=np.int64)
    for k in range(n):
        seen = bool(zone[k]) or any(out_kind[s] == OUT_MERGED and zone[s] for s in succ_g[k])
        shared = out_kind[k] == OUT_NEXT_ENTRY and min(succ_w[k], default=1.0) < 1.0
        closed = in_kind[k] != IN_UNKNOWN and not shared
        # loops see no queue between them: only one a stop-line loop bounds (or none forms)
        bounded = out_kind[k] in (OUT_STOPLINE, OUT_FREE) or (
            out_kind[k] == OUT_NEXT_ENTRY and all(out_kind[s] == OUT_STOPLINE for s in succ_g[k]))
        if seen:
            obs[k] = OBS_CAMERA if closed else OBS_CAMERA_UNCOUNTED
        elif entry[k] and closed and bounded:
            obs[k] = OBS_LOOPS
        elif not entry[k] and in_kind[k] == IN_RELEASED and out_kind[k] == OUT_STOPLINE:
            obs[k] = OBS_STOPLINE
        elif (entry[k] and out_kind[k] == OUT_NEXT_ENTRY and not is_approach[k]
              and not any(is_approach[s] and out_kind[s] != OUT_STOPLINE for s in succ_g[k])):
            obs[k] = OBS_ENTRY
    for k in range(n):  # a merged link lives in the cell of the link before it
        for s in succ_g[k]:
            if out_kind[s] == OUT_MERGED:
                obs[s] = obs[k]
    return obs


def _signal_delay(net: CompiledNetwork, degree: float = 0.5) -> np.ndarray:
    """Per link: the mean wait of its vehicles at the stop line under the network's base
    program (static data), Webster's uniform delay 0.5 C (1 - g/C)^2 / (1 - x g/C) at a
    moderate degree of saturation ``x``, averaged over the link's movements (0 if none)."""
    n = net.n_links
    green = np.zeros(net.n_movements)
    cycle = np.zeros(net.n_movements)
    for i in range(len(net.int_phase_indptr) - 1):
        lo, hi = int(net.int_phase_indptr[i]), int(net.int_phase_indptr[i + 1])
        c = float(np.sum(net.phase_duration[lo:hi]))
        for p in range(lo, hi):
            movs = net.phase_mov[net.phase_mov_indptr[p]:net.phase_mov_indptr[p + 1]]
            cycle[movs] = c
            if net.phase_is_green[p]:
                green[movs] += float(net.phase_duration[p])
    share = np.divide(green, cycle, out=np.ones_like(green), where=cycle > 0)
    share = np.clip(share, 0.0, 1.0)
    d = 0.5 * cycle * (1.0 - share) ** 2 / (1.0 - degree * share)
    tot = np.bincount(net.mov_from, weights=d, minlength=n)
    cnt = np.bincount(net.mov_from, minlength=n)
    return np.divide(tot, cnt, out=np.zeros(n), where=cnt > 0)
