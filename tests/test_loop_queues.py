"""Loop-counted vehicles per link between scans (the pressure rule without cameras)."""

from __future__ import annotations

import numpy as np

from signalopt.estimate import estimator_model
from signalopt.network import CompiledNetwork
from sim.loop_queues import LoopQueues


class _Loops:
    """A stand-in for TraCI's inductionloop: vehicles that left each loop in the last step."""

    def __init__(self, passed: dict[str, int]) -> None:
        self.passed = passed

    def getVehicleData(self, loop: str) -> list[tuple]:  # noqa: N802  (TraCI's name)
        return [("v", 5.0, 0.0, 1.0, "car")] * self.passed.get(loop, 0) + [("w", 5.0, 0.0, -1.0, "car")]


class _Api:
    def __init__(self, passed: dict[str, int]) -> None:
        self.inductionloop = _Loops(passed)


def test_counts_in_and_out_of_each_cell_since_the_scan(t_junction_net: CompiledNetwork) -> None:
    """WJ holds 4 at the scan; then its two entry loops pass 3 + 2 and its stop lines 1 + 0
    (a vehicle still standing on a loop does not count): 4 + 5 - 1 = 8. JE's cell ends freely:
    it keeps the scan's 2 plus what enters it (1)."""
    net = t_junction_net
    q = LoopQueues(net, estimator_model(net))
    base = np.zeros(net.n_links)
    base[net.link_index["WJ"]], base[net.link_index["JE"]] = 4.0, 2.0
    q.reset(base, np.ones(3))
    q.step(_Api({"WJ_0_in": 3, "WJ_1_in": 2, "WJ_0_stop": 1, "JE_0_in": 1}))
    veh = q.link_vehicles()
    assert veh[net.link_index["WJ"]] == 8.0
    assert veh[net.link_index["JE"]] == 3.0
    q.step(_Api({"WJ_0_stop": 20}))
    assert q.link_vehicles()[net.link_index["WJ"]] == 0.0  # never below zero


def test_share_of_each_link_a_camera_would_see() -> None:
    """From the stop line: a 24 m bay lies wholly within 100 m, then 76 of the next 144 m,
    then nothing."""
    from sim.controllers import within_reach

    np.testing.assert_allclose(within_reach(np.array([24.0, 144.0, 50.0]), 100.0),
                               [1.0, 76.0 / 144.0, 0.0])
