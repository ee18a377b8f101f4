"""Write a scenario's detectors as a site's own SUMO additional file, with other camera views.

A stand-in for a real site's detector file (``--detector-file`` of ``signalopt`` and of
``benchmarks/estimation.py``): the harness's loops where it puts them, camera zones over the
last ``--zone-m`` metres before each stop line (the harness's default is 100 m; stop-bar video
sees 20-40 m), entry loops ``--entry-m`` into each link (mid-block, as SCOOT places them),
optionally without entry loops or cameras.

    python benchmarks/site_detectors.py --zone-m 30 --out results/sites/pilot128_stopbar30.add.xml
    python benchmarks/estimation.py --detector-file results/sites/pilot128_stopbar30.add.xml \\
        --out results/estimation_stopbar30
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="a scenario's detectors as a SUMO additional file")
    ap.add_argument("--out", type=Path, required=True, help="the .add.xml to write")
    ap.add_argument("--scenario", default="pilot128", help="built-in name or .sumocfg")
    ap.add_argument("--zone-m", type=float, default=100.0, help="camera view before the stop line, m")
    ap.add_argument("--entry-m", type=float, default=10.0,
                    help="entry loops this far into each link (at most its middle), m")
    ap.add_argument("--no-entry", action="store_true", help="leave out the entry loops")
    ap.add_argument("--no-zones", action="store_true", help="leave out the cameras")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).parent))
    from estimation import scenario_net

    from sim.detectors import DetectorLayout, instrumented_network, write_detector_file

    net = scenario_net(args.scenario)
    layout = DetectorLayout(zone_m=args.zone_m, entry_pos_m=args.entry_m, entry=not args.no_entry,
                            zone=not args.no_zones)
    dets = instrumented_network(net, layout).detectors
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_detector_file(dets, args.out, interval_s=layout.interval_s)
    kinds = Counter(d.kind for d in dets)
    print(f"wrote {args.out}: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
