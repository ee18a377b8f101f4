"""The public surface: every name in ``signalopt.__all__`` resolves, nothing else is promised."""

from __future__ import annotations

import pathlib
import re

import pytest

import signalopt


def test_all_names_resolve() -> None:
    for name in signalopt.__all__:
        assert getattr(signalopt, name) is not None, name


def test_unknown_name_raises() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = signalopt.nope  # type: ignore[attr-defined]


def test_engine_never_imports_sim() -> None:
    """Hard rule 1: the engine under signalopt/ never imports sim/ or SUMO bindings.

    The command-line edges (cli.py, serve_cmd.py) start simulations, so they may import sim/
    lazily inside a command, never at module level.
    """
    root = pathlib.Path(signalopt.__file__).parent
    anywhere = re.compile(r"^\s*(from|import)\s+(sim|libsumo|traci)\b", re.MULTILINE)
    top_level = re.compile(r"^(from|import)\s+(sim|libsumo|traci)\b", re.MULTILINE)
    edges = {"cli.py", "serve_cmd.py"}
    offenders = [
        str(p) for p in root.rglob("*.py")
        if (top_level if p.name in edges else anywhere).search(p.read_text())
    ]
    assert offenders == []


def test_all_matches_lazy_table() -> None:
    """``__all__`` lists exactly the lazily exported names (plus the version)."""
    assert sorted(signalopt.__all__) == sorted(["__version__", *signalopt._EXPORTS])
