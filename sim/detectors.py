"""Virtual detectors: placed automatically on any network, read as the field's counts table.

Per incoming lane of every signalised intersection a stop-line loop and a camera zone over
the last ``zone_m`` metres; per lane of every link an entry loop near its upstream end. They
are aggregated per interval into rows of exactly the schema the engine ingests
(``signalopt.io.counts.COUNT_COLUMNS``).
"""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from signalopt.io.counts import OCC_TOLERANCE
from signalopt.network import DetectorSpec, NetworkSpec


class DetectorLayout(BaseModel):
    """Where virtual detectors go; defaults follow common loop/camera practice."""

    model_config = ConfigDict(frozen=True)

    entry_pos_m: float = Field(default=10.0, ge=0, description="entry loop, from upstream end")
    stopline_setback_m: float = Field(default=2.0, ge=0, description="stop-line loop, from end")
    zone_m: float = Field(default=100.0, gt=0, description="camera zone length before stop line")
    interval_s: float = Field(default=30.0, gt=0, description="aggregation interval")
    entry: bool = True
    stopline: bool = True
    zone: bool = True
    site_file: Path | None = Field(
        default=None, description="SUMO additional file with the site's own E1 loops / E2 zones"
                                  " (``signalopt.io.sumo_detectors``): used instead of placing"
                                  " virtual ones; the kind switches above still apply")
    site_stopline_m: float = Field(
        default=10.0, ge=0,
        description="in ``site_file``: a loop within this many metres of a signal approach lane's"
                    " end is that lane's stop-line loop (``read_sumo_detectors``' ``stopline_m``)")
    failed: float = Field(default=0.0, ge=0, le=1,
                          description="share of the detectors that break partway through a run,"
                                      " stuck or silent (``sim.faults``)")
    fail_seed: int = Field(default=0, description="which detectors break, when and how (with"
                                                  " the run's own seed)")


# named detector layouts: which kinds a site has ("all" is the harness default)
DETECTOR_LAYOUTS: dict[str, dict[str, bool]] = {
    "all": {},
    "loops": {"zone": False},  # entry + stop-line loops, no cameras
    "stopline+camera": {"entry": False},
    "stopline": {"entry": False, "zone": False},
    "camera": {"entry": False, "stopline": False},
    "entry": {"stopline": False, "zone": False},
}


def named_layout(name: str, **overrides: object) -> DetectorLayout:
    """The ``DetectorLayout`` of a ``DETECTOR_LAYOUTS`` name; an unknown name is an error
    that lists the known ones."""
    if name not in DETECTOR_LAYOUTS:
        msg = f"unknown detector layout {name!r}; choose from {', '.join(DETECTOR_LAYOUTS)}"
        raise ValueError(msg)
    return DetectorLayout(**{**DETECTOR_LAYOUTS[name], **overrides})


def place_detectors(spec: NetworkSpec, layout: DetectorLayout | None = None) -> list[DetectorSpec]:
    """Return detectors for every link (entry) and signal approach lane (stop line, zone)."""
    layout = layout or DetectorLayout()
    approach: dict[str, set[int]] = {}
    for m in spec.movements:
        approach.setdefault(m.from_link, set()).update(m.lanes)
    out: list[DetectorSpec] = []
    for link in spec.links:
        end = max(link.length - 0.1, 0.0)
        for lane in range(link.lanes):
            if layout.entry:
                pos = min(layout.entry_pos_m, link.length / 2)
                out.append(DetectorSpec(id=f"{link.id}_{lane}_in", link=link.id, lane=lane,
                                        pos=pos, kind="entry"))
            if lane not in approach.get(link.id, ()):
                continue
            if layout.stopline:
                pos = max(end - layout.stopline_setback_m, 0.0)
                out.append(DetectorSpec(id=f"{link.id}_{lane}_stop", link=link.id, lane=lane,
                                        pos=pos, kind="stopline"))
            if layout.zone:
                start = max(end - layout.zone_m, 0.0)
                out.append(DetectorSpec(id=f"{link.id}_{lane}_zone", link=link.id, lane=lane,
                                        pos=start, length=end - start, kind="zone"))
    if layout.zone:
        out += _upstream_zones(spec, approach, layout.zone_m)
    return out


def _upstream_zones(spec: NetworkSpec, approach: dict[str, set[int]], zone_m: float) -> list[DetectorSpec]:
    """Where an approach link is shorter than the camera's view (e.g. a turn bay that SUMO
    models as its own edge), the camera also sees the end of the link feeding it."""
    out, done = [], set()
    for link in spec.links:
        if link.id not in approach or link.length >= zone_m:
            continue
        rest = zone_m - link.length
        for prev in spec.links:
            if (prev.to_node != link.from_node or prev.from_node == link.to_node
                    or prev.id in approach or prev.id in done):
                continue
            done.add(prev.id)
            end = max(prev.length - 0.1, 0.0)
            start = max(end - rest, 0.0)
            out += [DetectorSpec(id=f"{prev.id}_{lane}_zone", link=prev.id, lane=lane, pos=start,
                                 length=end - start, kind="zone") for lane in range(prev.lanes)]
    return out


def instrumented_network(net_file: Path, layout: DetectorLayout | None = None) -> NetworkSpec:
    """Read a SUMO network and put its detectors on it, the virtual ones or the site's own
    (``layout.site_file``): the one way every run, replay and benchmark builds the engine's
    network description."""
    from signalopt.io.sumo_detectors import read_sumo_detectors  # noqa: PLC0415
    from signalopt.io.sumo_net import read_sumo_net  # noqa: PLC0415

    layout = layout or DetectorLayout()
    spec = read_sumo_net(net_file)
    if layout.site_file is None:
        return spec.with_detectors(fit_to_lanes(place_detectors(spec, layout), net_file))
    wanted = {"entry": layout.entry, "stopline": layout.stopline, "zone": layout.zone}
    own = [d for d in read_sumo_detectors(layout.site_file, spec, stopline_m=layout.site_stopline_m)
           if wanted[d.kind]]
    return spec.with_detectors(fit_to_lanes(own, net_file))


def fit_to_lanes(detectors: list[DetectorSpec], net_file: Path) -> list[DetectorSpec]:
    """Clamp detectors to each lane's own length (lanes of one SUMO edge can differ in length,
    e.g. in OSM imports); drop zones on lanes too short to hold one."""
    import sumolib  # noqa: PLC0415  the sim side reads SUMO files directly

    net = sumolib.net.readNet(str(net_file))
    out = []
    for d in detectors:
        lane_len = net.getLane(f"{d.link}_{d.lane}").getLength()
        end_max = max(lane_len - 0.1, 0.0)
        if d.kind == "zone":
            end = min(d.pos + d.length, end_max)
            start = min(d.pos, end - 1.0)
            if start < 0:
                continue
            out.append(d.model_copy(update={"pos": start, "length": end - start}))
        elif d.pos > end_max:
            out.append(d.model_copy(update={"pos": end_max}))
        else:
            out.append(d)
    return out


def write_detector_file(detectors: list[DetectorSpec] | tuple[DetectorSpec, ...], path: Path,
                        *, interval_s: float) -> Path:
    """Write the detectors as a SUMO additional file (E1 loops, E2 zones; no file output)."""
    lines = ["<additional>"]
    for d in detectors:
        lane = quoteattr(f"{d.link}_{d.lane}")
        if d.kind == "zone":
            lines.append(
                f'  <laneAreaDetector id={quoteattr(d.id)} lane={lane} pos="{d.pos:.2f}" '
                f'endPos="{d.pos + d.length:.2f}" period="{interval_s:g}" file="/dev/null"/>'
            )
        else:
            lines.append(
                f'  <inductionLoop id={quoteattr(d.id)} lane={lane} pos="{d.pos:.2f}" '
                f'period="{interval_s:g}" file="/dev/null"/>'
            )
    lines.append("</additional>")
    path.write_text("\n".join(lines) + "\n")
    return path


def _loop_occupancy(sumo_occ: float) -> float:
    """SUMO's interval occupancy of a loop, with its accounting glitch at short intervals
    (down to -14 % at 5 s; never below -5 % at 30 s on any run here) read as 0. The counts
    schema would reject such a row and lose a good count; what it calls rounding (-5 to 0 %)
    is left to it, so 30 s readings stay exactly as they were."""
    return 0.0 if sumo_occ < -OCC_TOLERANCE else sumo_occ


class DetectorReader:
    """Reads the last completed interval of every detector into counts-table columns."""

    def __init__(self, api: object, detectors: list[DetectorSpec] | tuple[DetectorSpec, ...], *,
                 interval_s: float, step_s: float = 1.0) -> None:
        self._api = api
        self._interval_s, self._step_s = interval_s, step_s
        self._loops = [d.id for d in detectors if d.kind != "zone"]
        self._zones = [d.id for d in detectors if d.kind == "zone"]

    def _standing(self, loop: str, interval_start: float) -> float:
        """Occupancy (%) of vehicles still on ``loop`` at the interval end.

        SUMO's last-interval occupancy of an E1 loop only counts a vehicle once it has left
        (or if it entered in the very last step), so a queue standing on a loop reads 0 %
        where a real loop reads 100 %. Add each standing vehicle's time on the loop within
        the interval; SUMO credits the rest when it leaves.
        """
        data = self._api.inductionloop.getVehicleData(loop)  # type: ignore[attr-defined]
        if not data:
            return 0.0
        t_end = interval_start + self._interval_s
        on = sum(t_end - max(entry, interval_start) for _, _, entry, leave, _ in data
                 if leave < 0 and t_end - entry >= self._step_s)
        return 100.0 * min(on, self._interval_s) / self._interval_s

    def read(self, interval_start: float) -> dict[str, np.ndarray | list[str]]:
        """Columns detector_id, interval_start, count, occupancy (%), speed (m/s, NaN if none)."""
        e1, e2 = self._api.inductionloop, self._api.lanearea  # type: ignore[attr-defined]
        ids = self._loops + self._zones
        count = [e1.getLastIntervalVehicleNumber(i) for i in self._loops]
        count += [e2.getLastIntervalVehicleNumber(i) for i in self._zones]
        count_arr = np.asarray(count, dtype=np.float64)  # NaN: a broken detector sent nothing
        occ = [_loop_occupancy(e1.getLastIntervalOccupancy(i)) + self._standing(i, interval_start)
               for i in self._loops]
        occ += [e2.getLastIntervalOccupancy(i) for i in self._zones]
        speed = [e1.getLastIntervalMeanSpeed(i) for i in self._loops]
        speed += [e2.getLastIntervalMeanSpeed(i) for i in self._zones]
        speed_arr = np.asarray(speed, dtype=np.float64)
        speed_arr[speed_arr < 0] = np.nan  # SUMO reports -1 when no vehicle passed
        return {
            "detector_id": ids,
            "interval_start": np.full(len(ids), interval_start, dtype=np.float64),
            "count": count_arr if np.isnan(count_arr).any() else count_arr.astype(np.int64),
            "occupancy": np.asarray(occ, dtype=np.float64),
            "speed": speed_arr,
        }
