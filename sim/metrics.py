"""Honest metrics: every vehicle scheduled to depart in the window counts. Definitions live here.

SUMO writes one tripinfo per vehicle (``--tripinfo-output.write-unfinished`` and
``--tripinfo-output.write-undeparted``), and ``trip_table`` classifies each:

* **arrived**: finished its trip inside the window;
* **unfinished**: inserted but still driving at the end of the window (SUMO's time loss so far);
* **not_inserted**: its scheduled departure passed but SUMO could not insert it (no space);
  its delay is the whole wait from the scheduled departure to the end of the window;
* **teleported**: SUMO removed it from a jam and re-inserted it further on. Teleported
  vehicles stay in the averages with the time loss SUMO recorded and are counted apart.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd

DEFINITIONS: dict[str, str] = {
    "mean_delay_s": (
        "mean over ALL vehicles scheduled to depart in [begin, end): timeLoss + departDelay; "
        "unfinished vehicles count their loss up to the end, never-inserted ones their whole "
        "wait to be inserted (end - scheduled departure)"
    ),
    "mean_travel_time_s": (
        "mean over ALL scheduled vehicles of (arrival, or end of window if not arrived) - "
        "scheduled departure; a lower bound for vehicles that did not arrive"
    ),
    "throughput_veh_h": "vehicles that arrived inside the window, per hour",
    "mean_stops": "mean number of stops (speed < 0.1 m/s episodes) per scheduled vehicle",
    "teleports": "vehicles SUMO teleported out of a jam (counted, and kept in all averages)",
    "delay_index": (
        "sum of travel times / sum of free-flow travel times (travel time - timeLoss) "
        "over arrived vehicles; 1.0 = free flow"
    ),
}

STATUSES = ("arrived", "unfinished", "not_inserted")


def trip_table(tripinfo_xml: Path, *, begin: float, end: float) -> pd.DataFrame:
    """One row per vehicle scheduled in [begin, end) with status, delay and travel time."""
    rows = []
    for _event, el in ET.iterparse(tripinfo_xml, events=("end",)):
        if el.tag != "tripinfo":
            continue
        depart = float(el.get("depart", "-1"))
        delay_depart = float(el.get("departDelay", "0"))
        arrival = float(el.get("arrival", "-1"))
        inserted = depart >= 0
        scheduled = (depart if inserted else end) - delay_depart
        status = "arrived" if arrival >= 0 else ("unfinished" if inserted else "not_inserted")
        rows.append((
            el.get("id"), scheduled, depart if inserted else np.nan, delay_depart,
            float(el.get("timeLoss", "0")), arrival if arrival >= 0 else np.nan,
            float(el.get("duration", "0")), float(el.get("routeLength", "0")),
            int(el.get("waitingCount", "0")), status,
        ))
        el.clear()
    df = pd.DataFrame(rows, columns=[
        "vehicle", "scheduled_depart", "depart", "depart_delay", "time_loss", "arrival",
        "duration", "route_length", "stops", "status",
    ])
    df = df[(df["scheduled_depart"] >= begin - 1e-6) & (df["scheduled_depart"] < end)]
    df = df.reset_index(drop=True)
    df["delay"] = df["time_loss"] + df["depart_delay"]
    df["travel_time"] = df["arrival"].fillna(end) - df["scheduled_depart"]
    return df


def summarize(trips: pd.DataFrame, *, begin: float, end: float, teleports: int) -> dict[str, float]:
    """Aggregate a trip table into the headline metrics (see ``DEFINITIONS``)."""
    n = len(trips)
    counts = trips["status"].value_counts()
    arrived = trips[trips["status"] == "arrived"]
    free_flow = (arrived["duration"] - arrived["time_loss"]).sum()
    hours = (end - begin) / 3600.0
    return {
        "mean_delay_s": float(trips["delay"].mean()) if n else float("nan"),
        "mean_travel_time_s": float(trips["travel_time"].mean()) if n else float("nan"),
        "scheduled": n,
        "arrived": int(counts.get("arrived", 0)),
        "unfinished": int(counts.get("unfinished", 0)),
        "not_inserted": int(counts.get("not_inserted", 0)),
        "teleports": int(teleports),
        "throughput_veh_h": float(len(arrived) / hours) if hours > 0 else float("nan"),
        "mean_stops": float(trips["stops"].mean()) if n else float("nan"),
        "delay_index": float(arrived["duration"].sum() / free_flow) if free_flow > 0 else float("nan"),
    }
