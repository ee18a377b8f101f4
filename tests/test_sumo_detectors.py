"""A site's own detectors read from a SUMO additional file (``signalopt.io.sumo_detectors``)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from signalopt.errors import NetworkError
from signalopt.io.sumo_detectors import read_sumo_detectors
from signalopt.network import compile_network
from tests.conftest import build_t_junction

SITE = """<additional>
  <inductionLoop id="w0_stop" lane="WJ_0" pos="-2" period="30" file="o.xml"/>
  <e1Detector id="w1_mid" lane="WJ_1" pos="60" freq="30" file="o.xml"/>
  <inductionLoop id="s0_in" lane="SJ_0" pos="12.5" period="30" file="o.xml"/>
  <inductionLoop id="je_end" lane="JE_0" pos="99" period="30" file="o.xml"/>
  <laneAreaDetector id="w0_cam" lane="WJ_0" pos="40" endPos="-1" period="30" file="o.xml"/>
  <e2Detector id="s0_cam" lane="SJ_0" pos="70" length="25" freq="30" file="o.xml"/>
  <entryExitDetector id="e3" period="30" file="o.xml">
    <detEntry lane="WJ_0" pos="1"/><detExit lane="WJ_0" pos="90"/>
  </entryExitDetector>
</additional>
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.add.xml"
    path.write_text(text)
    return path


def test_kinds_and_positions_follow_where_each_detector_stands(tmp_path: Path, caplog) -> None:
    """On the T junction (100 m links; WJ lane 0 and SJ lane 0 feed movements; JE does not):
    a loop 2 m from an approach lane's end is its stop line (SUMO's negative pos counts from
    the end); a loop mid-link, or near the end of a link that feeds no signal, is an entry
    loop; zones run from pos to endPos (negative: from the end) or pos + length. The E3
    detector is skipped and named."""
    spec = build_t_junction()
    with caplog.at_level(logging.WARNING):
        dets = {d.id: d for d in read_sumo_detectors(write(tmp_path, SITE), spec)}
    assert set(dets) == {"w0_stop", "w1_mid", "s0_in", "je_end", "w0_cam", "s0_cam"}
    got = {k: (d.link, d.lane, d.kind, d.pos, d.length) for k, d in dets.items()}
    assert got == {
        "w0_stop": ("WJ", 0, "stopline", 98.0, 0.0),
        "w1_mid": ("WJ", 1, "entry", 60.0, 0.0),
        "s0_in": ("SJ", 0, "entry", 12.5, 0.0),
        "je_end": ("JE", 0, "entry", 99.0, 0.0),
        "w0_cam": ("WJ", 0, "zone", 40.0, 59.0),
        "s0_cam": ("SJ", 0, "zone", 70.0, 25.0),
    }
    assert "entryExitDetector 'e3'" in caplog.text
    # and the network compiles with them in place of the virtual ones
    net = compile_network(spec.with_detectors(list(dets.values())))
    assert net.n_detectors == 6


def test_one_stop_line_loop_per_lane(tmp_path: Path) -> None:
    """Two loops near the end of a short approach lane: the one nearer the end is its stop
    line, the other an entry loop (it bounds the cell before it)."""
    text = ('<additional><inductionLoop id="a" lane="SJ_0" pos="93"/>'
            '<inductionLoop id="b" lane="SJ_0" pos="98"/></additional>')
    dets = read_sumo_detectors(write(tmp_path, text), build_t_junction())
    assert [(d.id, d.kind) for d in dets] == [("a", "entry"), ("b", "stopline")]
    assert read_sumo_detectors(write(tmp_path, text), build_t_junction(), stopline_m=1.0)[1].kind == "entry"


def test_sumos_other_ways_to_place_a_detector(tmp_path: Path) -> None:
    """A one-lane ``lanes`` list is a lane; ``endPos`` + ``length`` reaches back from the end;
    ``friendlyPos`` moves a position off the 100 m lane onto it instead of refusing it."""
    text = ('<additional><laneAreaDetector id="a" lanes="SJ_0" pos="10" endPos="30"/>'
            '<laneAreaDetector id="b" lane="SJ_0" endPos="-2" length="40"/>'
            '<inductionLoop id="c" lane="JE_0" pos="130" friendlyPos="true"/>'
            '<laneAreaDetector id="d" lane="JE_0" pos="-150" endPos="20" friendlyPos="1"/>'
            '</additional>')
    got = {d.id: (d.link, d.pos, d.length) for d in
           read_sumo_detectors(write(tmp_path, text), build_t_junction())}
    assert got == {"a": ("SJ", 10.0, 20.0), "b": ("SJ", 58.0, 40.0), "c": ("JE", 100.0, 0.0),
                   "d": ("JE", 0.0, 20.0)}


@pytest.mark.parametrize(("line", "problem"), [
    ('<inductionLoop id="x" lane="XX_0" pos="5"/>', "lane 'XX_0' is not a lane of a link"),
    ('<inductionLoop id="x" lane=":J_0_0" pos="5"/>', "lane ':J_0_0' is not a lane of a link"),
    ('<inductionLoop id="x" lane="SJ_1" pos="5"/>', "link 'SJ' has 1 lane(s)"),
    ('<inductionLoop id="x" lane="SJ_0" pos="150"/>', "pos=150 is off the lane (100 m)"),
    ('<inductionLoop id="x" lane="SJ_0" pos="abc"/>', "pos='abc' is not a number"),
    ('<laneAreaDetector id="x" lane="SJ_0" pos="5"/>', "needs endPos or length"),
    ('<laneAreaDetector id="x" lane="SJ_0" pos="50" endPos="20"/>', "has no length"),
    ('<laneAreaDetector id="x" lanes="WJ_0 WJ_1" pos="5" endPos="50"/>', "spans several lanes"),
    ('<inductionLoop id="x" pos="5"/>', "has no lane"),
])
def test_a_bad_detector_is_named_with_its_problem(tmp_path: Path, line: str, problem: str) -> None:
    """Each broken element makes one clear error naming the detector and what is wrong."""
    good = '<inductionLoop id="ok" lane="SJ_0" pos="5"/>'
    path = write(tmp_path, f"<additional>{good}{line}</additional>")
    with pytest.raises(NetworkError, match="'x'") as err:
        read_sumo_detectors(path, build_t_junction())
    assert problem in str(err.value)


def test_every_problem_is_named_at_once_and_duplicates_too(tmp_path: Path) -> None:
    text = ('<additional><inductionLoop id="a" lane="SJ_0" pos="5"/>'
            '<inductionLoop id="a" lane="SJ_0" pos="9"/>'
            '<inductionLoop id="b" lane="QQ_0" pos="5"/></additional>')
    with pytest.raises(NetworkError) as err:
        read_sumo_detectors(write(tmp_path, text), build_t_junction())
    assert "inductionLoop 'a': duplicate id" in str(err.value)
    assert "inductionLoop 'b': lane 'QQ_0'" in str(err.value)


@pytest.mark.parametrize(("text", "problem"), [
    ("<additional><busStop id='s' lane='SJ_0' startPos='1' endPos='9'/></additional>",
     "no E1 or E2 detector"),
    ("<additional><inductionLoop id='a'", "cannot read detector file"),
])
def test_an_empty_or_broken_file_is_an_error(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(NetworkError, match=problem):
        read_sumo_detectors(write(tmp_path, text), build_t_junction())
    with pytest.raises(NetworkError, match="not found"):
        read_sumo_detectors(tmp_path / "missing.add.xml", build_t_junction())


def test_a_file_full_of_bad_detectors_names_twenty_and_counts_the_rest(tmp_path: Path) -> None:
    rows = "".join(f'<inductionLoop id="b{k}" lane="QQ_0" pos="5"/>' for k in range(25))
    with pytest.raises(NetworkError) as err:
        read_sumo_detectors(write(tmp_path, f"<additional>{rows}</additional>"), build_t_junction())
    assert str(err.value).count("is not a lane") == 20
    assert str(err.value).endswith("; ... and 5 more")
