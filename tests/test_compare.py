"""Paired comparison of two sets of closed-loop runs (sim.compare.paired_change)."""

import pandas as pd
import pytest

from sim.compare import paired_change, paired_markdown


def _runs(delays: dict[int, float], errors: dict[int, str] | None = None) -> pd.DataFrame:
    errors = errors or {}
    return pd.DataFrame({"case": "c", "controller": "signalopt", "seed": list(delays),
                         "mean_delay_s": list(delays.values()),
                         "error": [errors.get(s, "") for s in delays]})


def test_paired_change_by_seed() -> None:
    """Seeds 1-3 go 10 -> 11, 20 -> 22, 30 -> 33: differences 1, 2, 3 (mean 2, se 1/sqrt 3,
    95 % t interval 2 +- 4.303 / sqrt 3); seed 4 failed after the change, so it is left out."""
    before = _runs({1: 10.0, 2: 20.0, 3: 30.0, 4: 40.0})
    after = _runs({1: 11.0, 2: 22.0, 3: 33.0, 4: 0.0}, errors={4: "crashed"})
    row = paired_change(before, after).iloc[0]
    assert row.seeds == 3
    assert row.before_s == pytest.approx(20.0)
    assert row.change_s == pytest.approx(2.0)
    assert row.se_s == pytest.approx(1 / 3**0.5)
    assert row.ci95_hi_s - row.change_s == pytest.approx(4.3027 / 3**0.5, rel=1e-4)
    assert row.change_pct == pytest.approx(10.0)
    assert (row.worse, row.better) == (3, 0)
    assert "+2.00 [" in paired_markdown(paired_change(before, after))


def test_paired_change_needs_common_runs() -> None:
    with pytest.raises(ValueError, match="in both sets"):
        paired_change(_runs({1: 10.0}), _runs({2: 10.0}))
