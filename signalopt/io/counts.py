"""Detector interval counts: the one table the engine ingests from the field (or from sim/).

Schema (one row per detector per interval):

| column         | type    | meaning                                                   |
|----------------|---------|-----------------------------------------------------------|
| detector_id    | str     | id of a detector in the network description               |
| interval_start | float   | seconds since the scenario/day reference; interval start  |
| count          | int     | vehicles that passed (loop) or entered (zone) in interval |
| occupancy      | float   | percent of the interval the detector was occupied, 0-100  |
| speed          | float   | mean speed of those vehicles, m/s; NaN when count == 0    |
"""

from __future__ import annotations

COUNT_COLUMNS = ("detector_id", "interval_start", "count", "occupancy", "speed")
