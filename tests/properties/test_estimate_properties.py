"""Hypothesis invariants of the estimator: bounds, honest uncertainty, kernel = naive oracle."""

from __future__ import annotations

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from signalopt.config import EstimatorParams
from signalopt.detectors import DetectorFrame
from signalopt.estimate import _kalman, run_estimator
from signalopt.network import compile_network
from tests.conftest import build_grid2x2, build_t_junction
from tests.naive import naive_kalman

GRID = compile_network(build_grid2x2())
TJ = compile_network(build_t_junction())
T = 30.0


def _frame(net, count, occ) -> DetectorFrame:
    speed = np.where(count > 0, 8.0, np.nan)
    return DetectorFrame(np.arange(count.shape[0]) * T, count, occ, speed)


counts_grid = arrays(np.float64, (8, GRID.n_detectors), elements=st.integers(0, 20).map(float))
occ_grid = arrays(np.float64, (8, GRID.n_detectors), elements=st.floats(0, 100))


@settings(max_examples=25, deadline=None)
@given(count=counts_grid, occ=occ_grid)
def test_estimates_non_negative_and_within_storage(count, occ) -> None:
    ests, _ = run_estimator(_frame(GRID, count, occ), GRID, EstimatorParams())
    for e in ests:
        assert (e.link_vehicles >= 0).all()
        assert (e.link_vehicles <= GRID.link_storage + 1e-9).all()
        assert (e.lane_queue >= 0).all() and (e.mov_queue >= 0).all()
        assert np.isfinite(e.link_std).all() and (e.link_std > 0).all()
        assert 0 <= e.network_vehicles < np.inf


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n_fail=st.integers(1, 6))
@example(seed=111, n_fail=1)  # WJ_1_in silent drags WJ from 7.3 to 3.9 vehicles
@example(seed=1008, n_fail=1)
def test_uncertainty_grows_when_detectors_fail(seed, n_fail) -> None:
    """Failed loops must widen the reported std, even where their imputed counts drag a
    link's estimate down (the failure terms scale with the link's level while healthy)."""
    rng = np.random.default_rng(seed)
    n_t = 8
    count = rng.integers(4, 9, size=(n_t, TJ.n_detectors)).astype(float)  # never flagged
    occ = count * 1.7 + rng.random(count.shape)
    # all else equal: a failed loop also gives no vehicle-length samples, which moves the
    # learned length (and every density) a little either way
    params = EstimatorParams(learn_vehicle_length=False)
    healthy, _ = run_estimator(_frame(TJ, count, occ), TJ, params)
    assert not healthy[-1].detector_flags.any()
    failed = count.copy()
    loops = np.flatnonzero(TJ.det_kind != 2)
    failed[2:, rng.choice(loops, size=min(n_fail, loops.size), replace=False)] = np.nan
    broken, _ = run_estimator(_frame(TJ, failed, occ), TJ, params)
    assert broken[-1].network_std > healthy[-1].network_std
    assert (broken[-1].link_std >= healthy[-1].link_std - 1e-9).all()


@settings(max_examples=60, deadline=None)
@given(
    cell=st.floats(0, 30), beta=st.floats(-0.4, 0.8), u=st.floats(0, 20), w=st.floats(0, 20),
    p00=st.floats(0.01, 50), p11=st.floats(1e-6, 0.05), rho=st.floats(-0.9, 0.9),
    z=st.one_of(st.just(np.nan), st.floats(0, 40)), zr=st.floats(0.1, 100),
    free=st.booleans(), speed=st.floats(0.5, 20.0), jammed=st.floats(0.0, 1.2),
)
def test_kalman_kernel_matches_naive(cell, beta, u, w, p00, p11, rho, z, zr, free, speed,
                                     jammed) -> None:
    p01 = rho * np.sqrt(p00 * p11)
    one = lambda x: np.array([x], dtype=np.float64)  # noqa: E731
    kind = one(2 if free else 0).astype(np.int64)
    c2, b2, q00, q01, q11, _ = _kalman(
        one(cell), one(beta), one(p00), one(p01), one(p11), one(u), one(1.0), one(w), one(0.5),
        one(z), one(zr), one(u if free else (1 - min(jammed, 1.0)) * u + min(jammed, 1.0) * w),
        kind, np.array([True]), one(0.0), one(90.0), one(speed), one(1.0), 7.5, T, 0.3, 1e-4)
    frac = min(1.0, T * speed / 90.0) if free else None
    nc, nb, P = naive_kalman(cell, beta, np.array([[p00, p01], [p01, p11]]), u, 1.0, w, 0.5, z,
                             zr, free_frac=frac, free_stay=min(1.0, 90.0 / speed / T),
                             cap=90.0 / 7.5 + 1.0, process_var=0.3, sink_var=1e-4,
                             exit_jam=min(jammed, 1.0))
    assert c2[0] == np.float64(c2[0])
    np.testing.assert_allclose([c2[0], b2[0]], [nc, nb], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose([q00[0], q01[0], q11[0]], [max(P[0, 0], 1e-9), P[0, 1],
                                                          max(P[1, 1], 1e-12)], rtol=1e-7, atol=1e-9)


KINDS = ("entry", "stopline", "zone")


@settings(max_examples=20, deadline=None)
@given(kinds=st.sets(st.sampled_from(KINDS), min_size=1), data=st.data())
def test_any_detector_layout_gives_bounded_estimates(kinds, data) -> None:
    """A network with only some detector kinds (any non-empty subset) still estimates every
    link: finite, non-negative, within storage, with a positive std."""
    spec = build_grid2x2()
    net = compile_network(spec.model_copy(update={
        "detectors": tuple(d for d in spec.detectors if d.kind in kinds)}))
    n_t = 8
    count = data.draw(arrays(np.float64, (n_t, net.n_detectors),
                             elements=st.integers(0, 20).map(float)))
    occ = data.draw(arrays(np.float64, (n_t, net.n_detectors), elements=st.floats(0, 100)))
    ests, _ = run_estimator(_frame(net, count, occ), net, EstimatorParams())
    for e in ests:
        assert np.isfinite(e.link_vehicles).all() and (e.link_vehicles >= 0).all()
        assert (e.link_vehicles <= net.link_storage + 1e-9).all()
        assert np.isfinite(e.link_std).all() and (e.link_std > 0).all()
        assert np.isfinite(e.network_vehicles) and e.network_vehicles >= 0
