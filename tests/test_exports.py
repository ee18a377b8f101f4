"""The public surface: every name in ``signalopt.__all__`` resolves, nothing else is promised."""

from __future__ import annotations

import pytest

import signalopt


def test_all_names_resolve() -> None:
    for name in signalopt.__all__:
        assert getattr(signalopt, name) is not None, name


def test_unknown_name_raises() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = signalopt.nope  # type: ignore[attr-defined]


def test_engine_never_imports_sim() -> None:
    """Hard rule 1: nothing under signalopt/ imports sim/ or SUMO bindings."""
    import pathlib
    import re

    root = pathlib.Path(signalopt.__file__).parent
    pattern = re.compile(r"^\s*(from|import)\s+(sim|libsumo|traci)\b", re.MULTILINE)
    offenders = [str(p) for p in root.rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []
