"""signalopt: real-time traffic signal optimization from detector counts.

Every scan (120 s) it turns detector interval counts into an estimate of the vehicles in
transit on every link and recomputes validated timing plans for every signal.
Public names are imported lazily so ``import signalopt`` (and the CLI) stay fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # errors
    "SignaloptError": "signalopt.errors",
    "InputError": "signalopt.errors",
    "CountsError": "signalopt.errors",
    "NetworkError": "signalopt.errors",
    "ScenarioError": "signalopt.errors",
    "PlanInvariantError": "signalopt.errors",
    "StoreError": "signalopt.errors",
    # configuration
    "QAParams": "signalopt.config",
    "EstimatorParams": "signalopt.config",
    "OptimizerParams": "signalopt.config",
    "ScanConfig": "signalopt.scan",
    # network
    "NetworkSpec": "signalopt.network",
    "CompiledNetwork": "signalopt.network",
    "compile_network": "signalopt.network",
    "read_sumo_net": "signalopt.io.sumo_net",
    # plans and the scan
    "TimingPlan": "signalopt.plan",
    "PlanLimits": "signalopt.plan",
    "check_plans": "signalopt.plan",
    "optimize": "signalopt.optimize",
    "run_scan": "signalopt.scan",
    "initial_scan_state": "signalopt.scan",
    "ScanResult": "signalopt.scan",
}

__all__ = [
    "CompiledNetwork",
    "CountsError",
    "EstimatorParams",
    "InputError",
    "NetworkError",
    "NetworkSpec",
    "OptimizerParams",
    "PlanInvariantError",
    "PlanLimits",
    "QAParams",
    "ScanConfig",
    "ScanResult",
    "ScenarioError",
    "SignaloptError",
    "StoreError",
    "TimingPlan",
    "__version__",
    "check_plans",
    "compile_network",
    "initial_scan_state",
    "optimize",
    "read_sumo_net",
    "run_scan",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    msg = f"module 'signalopt' has no attribute {name!r}"
    raise AttributeError(msg)


def __dir__() -> list[str]:
    return __all__
