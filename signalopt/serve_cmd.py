"""``signalopt serve``: the adapter API plus the live scan loop, on posted counts or a SUMO replay.

Registered by ``signalopt/cli.py`` as ``app.command("serve")(serve)``; also runnable as
``python -m signalopt.serve_cmd``. Heavy imports (fastapi, uvicorn) happen inside the command
so the rest of the CLI works without the ``service`` extra.
"""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from signalopt.errors import InputError, SignaloptError

SERVICE_HINT = "the service needs its extra: pip install 'signalopt[service]'"


def _service_modules() -> Any:
    """Import the service stack, or exit with the install hint."""
    try:
        import uvicorn  # noqa: PLC0415

        from signalopt import service, service_auth  # noqa: PLC0415
    except ImportError as exc:
        typer.echo(f"error: {exc.name} is missing; {SERVICE_HINT}", err=True)
        raise typer.Exit(code=2) from exc
    return uvicorn, service, service_auth


def load_network(path: Path, detector_file: Path | None = None, stopline_m: float | None = None) -> Any:
    """A compiled network from a NetworkSpec ``.json`` (with detectors) or a SUMO ``.net.xml``;
    ``detector_file`` (a SUMO additional file) gives the site's detectors instead, a loop within
    ``stopline_m`` of a signal approach lane's end being its stop-line loop."""
    from signalopt.io.sumo_detectors import STOPLINE_M, read_sumo_detectors  # noqa: PLC0415
    from signalopt.network import NetworkSpec, compile_network  # noqa: PLC0415

    if path.suffix == ".json":
        try:
            spec = NetworkSpec.model_validate_json(path.read_text())
        except (OSError, ValueError) as exc:
            msg = f"network file {path}: {exc}"
            raise InputError(msg) from exc
    else:
        from signalopt.io.sumo_net import read_sumo_net  # noqa: PLC0415

        spec = read_sumo_net(path)
    if detector_file is not None:
        reach = STOPLINE_M if stopline_m is None else stopline_m
        spec = spec.with_detectors(read_sumo_detectors(detector_file, spec, stopline_m=reach))
    return compile_network(spec)


def dev_keys(service_auth: Any) -> list[Any]:
    """One key per role, printed once to stderr: for trying the service, not for the field."""
    keys = []
    for role in ("adapter", "ingest", "engineer"):
        raw, key = service_auth.new_key(f"dev-{role}", role)
        typer.echo(f"dev {role} key (shown once): {raw}", err=True)
        keys.append(key)
    return keys


def serve(  # one typer option per parameter, keyword-only
    *,
    db: Annotated[str, typer.Option(help="SQLite file or SQLAlchemy URL of the plan store")]
    = "plans.sqlite",
    network: Annotated[Path | None, typer.Option(help="network .json (NetworkSpec) or .net.xml")]
    = None,
    detector_file: Annotated[Path | None, typer.Option(
        help="SUMO additional file with the site's E1 loops / E2 zones (replaces the"
             " network's detectors)")] = None,
    stopline_m: Annotated[float, typer.Option(
        help="with --detector-file: a loop within this many metres of a signal approach lane's"
             " end is that lane's stop-line loop")] = 10.0,
    replay: Annotated[str | None, typer.Option(help="drive the loop from a live SUMO run of "
                                                     "this scenario (e.g. pilot128)")] = None,
    keys: Annotated[Path | None, typer.Option(help="JSON file of hashed API keys; without it "
                                                   "dev keys are generated and printed")] = None,
    host: Annotated[str, typer.Option(help="bind address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    scan_s: Annotated[float, typer.Option(help="scan period, seconds")] = 120.0,
    interval: Annotated[float, typer.Option(help="the detectors' reporting interval, seconds"
                                                  " (must divide the scan)")] = 30.0,
    scan: Annotated[bool, typer.Option(help="run the live scan loop (off: serve only)")] = True,
    require_approval: Annotated[bool, typer.Option(help="scan plans wait for an engineer")]
    = False,
    duration: Annotated[float | None, typer.Option(help="replay: simulated seconds")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn/signalopt log level")] = "warning",
) -> None:
    """Serve timing plans to controller adapters and run the scan every ``--scan-s`` seconds."""
    uvicorn, service, service_auth = _service_modules()
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    try:
        key_list = service_auth.load_keys(keys) if keys else dev_keys(service_auth)
        if replay is not None:
            if detector_file is not None:
                msg = "--detector-file goes with --network; --replay uses the scenario's detectors"
                raise InputError(msg)
            from sim.serve_replay import run_replay  # noqa: PLC0415  # sim/ only for --replay

            run_replay(replay, db=db, keys=key_list, host=host, port=port,
                       duration=duration, scan_s=scan_s)
            return
        if network is None:
            msg = "give --network FILE (or --replay SCENARIO)"
            raise InputError(msg)
        from signalopt.config import divides_scan  # noqa: PLC0415

        if not divides_scan(interval, scan_s):
            msg = f"--interval {interval:g} must divide --scan-s {scan_s:g}"
            raise InputError(msg)
        _serve_live(uvicorn, service, db=db, net=load_network(network, detector_file, stopline_m),
                    keys=key_list,
                    host=host, port=port, scan_s=scan_s, interval_s=interval, scan=scan,
                    require_approval=require_approval, log_level=log_level)
    except SignaloptError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc


def _serve_live(uvicorn: Any, service: Any, *, db: str, net: Any, keys: list[Any], host: str,
                port: int, scan_s: float, interval_s: float, scan: bool,
                require_approval: bool, log_level: str) -> None:
    """uvicorn in the main thread, the wall-clock scan loop in a background thread."""
    from signalopt.live import LiveDriver, engine_scan  # noqa: PLC0415
    from signalopt.plan import PlanLimits  # noqa: PLC0415
    from signalopt.store import SqlPlanStore  # noqa: PLC0415

    store = SqlPlanStore(db)
    limits, scan_cfg = PlanLimits(scan_s=scan_s), None
    if scan:
        from signalopt.scan import ScanConfig  # noqa: PLC0415

        scan_cfg = ScanConfig(scan_s=scan_s).at_interval(interval_s)
        limits = scan_cfg.limits  # the optimizer's own bounds are the invariants' limits
    config = service.ServiceConfig(scan_s=scan_s, limits=limits)
    app = service.create_app(store, net, keys=keys, config=config)
    stop = threading.Event()
    loop = None
    if scan_cfg is not None:
        from signalopt.detectors import FLAG_NAMES  # noqa: PLC0415

        metrics = app.state.ctx.metrics
        driver = LiveDriver(store, net, scan=engine_scan(scan_cfg), limits=limits,
                            require_approval=require_approval,
                            on_report=lambda rep: metrics.record_flags(
                                rep.flagged, tuple(FLAG_NAMES.values())))
        loop = threading.Thread(target=driver.run, args=(stop,), name="signalopt-scan",
                                daemon=True)
        loop.start()
    try:
        uvicorn.run(app, host=host, port=port, log_level=log_level.lower(), access_log=False)
    finally:
        stop.set()
        if loop is not None:
            loop.join(timeout=5)
        store.close()


def main() -> None:
    """Entry point for ``python -m signalopt.serve_cmd``."""
    typer.run(serve)


if __name__ == "__main__":
    sys.exit(main())
