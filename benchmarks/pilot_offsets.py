"""pilot128 with staggered signal offsets: a scenario for the estimation benchmarks (issue #4).

pilot128's 128 fixed-time programs all start at offset 0 (the generator's default), so under
fixed time every platoon in the grid is at the same point of its 90 s cycle at every 30 s
instant the estimate is scored at. This writes a copy of the network whose programs start at
seeded random offsets (0 to cycle - 1 s), the routes of one pilot128 demand and seed, and a
``.sumocfg`` that any benchmark takes as a scenario:

    python benchmarks/pilot_offsets.py --out results/pilot128_offsets
    python benchmarks/estimation.py --scenarios results/pilot128_offsets/pilot128_offsets.sumocfg \\
        --out results/estimation_offsets
    python benchmarks/estimation.py --scenarios results/pilot128_zero/pilot128_zero.sumocfg ...

``--zero`` keeps every offset at 0 (the same routes, for a side-by-side run).
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def stagger_offsets(net_xml: Path, out: Path, seed: int, zero: bool = False) -> list[int]:
    """Write ``net_xml`` to ``out`` with each static program's offset drawn in [0, cycle)."""
    tree = ET.parse(net_xml)
    rng = random.Random(seed)
    offsets = []
    for tl in tree.getroot().iter("tlLogic"):
        cycle = round(sum(float(p.get("duration")) for p in tl.iter("phase")))
        off = 0 if zero else rng.randrange(max(cycle, 1))
        tl.set("offset", str(off))
        offsets.append(off)
    tree.write(out, encoding="UTF-8", xml_declaration=True)
    return offsets


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="pilot128 with staggered signal offsets")
    ap.add_argument("--out", type=Path, required=True, help="folder for net, routes, .sumocfg")
    ap.add_argument("--demand", default="peak_ramp", help="pilot128 demand whose routes to use")
    ap.add_argument("--route-seed", type=int, default=42, help="seed of those routes")
    ap.add_argument("--offset-seed", type=int, default=7, help="seed of the offsets")
    ap.add_argument("--zero", action="store_true", help="keep every offset at 0")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from scenarios.registry import resolve_scenario

    sc = resolve_scenario("pilot128", demand=args.demand, seed=args.route_seed, duration=None)
    args.out.mkdir(parents=True, exist_ok=True)
    name = args.out.name
    offsets = stagger_offsets(Path(sc.net), args.out / "net.net.xml", args.offset_seed, args.zero)
    routes = []
    for k, r in enumerate(sc.routes):
        dst = args.out / f"routes{k}.rou.xml"
        shutil.copyfile(r, dst)
        routes.append(dst.name)
    extra = [Path(a).name for a in sc.additionals]
    for a in sc.additionals:
        shutil.copyfile(a, args.out / Path(a).name)
    (args.out / f"{name}.sumocfg").write_text(
        "<configuration>\n    <input>\n        <net-file value=\"net.net.xml\"/>\n"
        f"        <route-files value=\"{','.join(routes)}\"/>\n"
        + (f"        <additional-files value=\"{','.join(extra)}\"/>\n" if extra else "")
        + f"    </input>\n    <time>\n        <begin value=\"{sc.begin:g}\"/>\n"
        f"        <end value=\"{sc.end:g}\"/>\n    </time>\n</configuration>\n")
    print(f"wrote {args.out / f'{name}.sumocfg'}: {len(offsets)} programs, offsets "
          f"{min(offsets)}-{max(offsets)} s ({args.demand} routes, seed {args.route_seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
