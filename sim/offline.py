"""``signalopt optimize``: offline time-of-day plans from a network and recorded counts.

Reads the SUMO network (with the harness's detector layout, the ids the counts carry) and a
counts file, calls ``signalopt.timeofday.time_of_day_plans`` and writes, per period,
``<period>/plans.json``, ``plans.add.xml`` (SUMO tlLogic), ``patterns.csv``/``splits.csv``
(NTCIP-style), plus ``periods.csv``, ``profile.csv`` and ``schedule.add.xml``: a SUMO WAUT
per intersection that switches the period programs by the clock, so the whole day plan runs
in SUMO with ``-a <period>/plans.add.xml,...,schedule.add.xml``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

import pandas as pd

from signalopt.io.plan_export import plans_to_tllogic, write_plans
from signalopt.scan import ScanConfig
from signalopt.timeofday import Period, TimeOfDayPlans, time_of_day_plans
from sim.detectors import DetectorLayout
from sim.replay import load_recorded


@dataclass(frozen=True)
class OfflineResult:
    """What ``optimize_offline`` computed and wrote, and how long the optimization took."""

    tod: TimeOfDayPlans
    files: dict[str, Path]
    compute_s: float  # periods + estimation + optimization (not file I/O)

    @property
    def periods(self) -> pd.DataFrame:
        return pd.DataFrame([p.__dict__ for p in self.tod.periods])


def program_id(period: Period) -> str:
    return f"signalopt_{period.name}"


def schedule_xml(tod: TimeOfDayPlans) -> str:
    """A SUMO additional with one WAUT per intersection switching programs at period starts."""
    periods = sorted(tod.periods, key=lambda p: p.start)
    first = periods[0]
    ids = [p.intersection for p in tod.plans[first.name]]
    lines = ["<additional>"]
    for tls in ids:
        wid = quoteattr(f"tod_{tls}")
        lines.append(f'    <WAUT id={wid} refTime="0" startProg="{program_id(first)}">')
        lines += [f'        <wautSwitch time="{p.start:.0f}" to="{program_id(p)}"/>'
                  for p in periods[1:]]
        lines.append("    </WAUT>")
        lines.append(f"    <wautJunction wautID={wid} junctionID={quoteattr(tls)}/>")
    lines.append("</additional>")
    return "\n".join(lines) + "\n"


def optimize_offline(
    network: Path,
    counts: Path,
    out: Path,
    *,
    n_levels: int = 3,
    slot_s: float = 900.0,
    min_period_s: float = 1800.0,
    config: ScanConfig | None = None,
    kind: str = "static",
    layout: DetectorLayout | None = None,
) -> OfflineResult:
    """Compute time-of-day plans from ``counts`` on ``network`` and export them into ``out``.

    ``kind`` is the SUMO tlLogic type written: ``static`` (fixed time, the field practice for
    time-of-day plans) or ``actuated`` (gap actuation within the plans' min/max bounds).
    ``layout``: the detectors the counts come from (the virtual ones if None).
    """
    net, frame = load_recorded(network, counts, layout)
    t0 = time.perf_counter()
    tod = time_of_day_plans(net, frame, config=config, n_levels=n_levels, slot_s=slot_s,
                            min_period_s=min_period_s)
    compute_s = time.perf_counter() - t0
    files: dict[str, Path] = {}
    out.mkdir(parents=True, exist_ok=True)
    for p in tod.periods:
        written = write_plans(tod.plans[p.name], out / p.name, program_id=program_id(p))
        written["tllogic"].write_text(plans_to_tllogic(tod.plans[p.name], kind=kind,
                                                       program_id=program_id(p)))
        files[f"{p.name}_tllogic"] = written["tllogic"]
        files[f"{p.name}_json"] = written["json"]
    files["schedule"] = out / "schedule.add.xml"
    files["schedule"].write_text(schedule_xml(tod))
    files["periods"] = out / "periods.csv"
    result = OfflineResult(tod, files, compute_s)
    result.periods.to_csv(files["periods"], index=False)
    files["profile"] = out / "profile.csv"
    tod.profile.to_csv(files["profile"], index=False)
    return result


def sumo_additionals(result: OfflineResult) -> tuple[Path, ...]:
    """The additional files that run the day plan in SUMO, programs first, schedule last."""
    progs = tuple(result.files[f"{p.name}_tllogic"] for p in result.tod.periods)
    return (*progs, result.files["schedule"])
