"""Flink's own traffic per TaskManager socket, from two real `ss -tinH` readings in an edge namespace (a QA job,
cloud-only, on the testbed: the data socket to the cloud TaskManager, Python workers on loopback, and two
sockets to the JobManager at 10.213.0.1 — RPC on 6123 and the metric query service)."""
import json
from pathlib import Path

import pytest

from collectors.sockets import HEADER_BYTES, ControlMeter, SessionMeter, parse
from experiments.environments import _SS_MARK, link_counters

REC = Path(__file__).parent / "recorded"
A, B = ((REC / f"ss-edge-1-{x}.txt").read_text() for x in "ab")
JM = frozenset({"10.213.0.1"})
RPC = ("[::ffff:10.213.0.151]:52098", "[::ffff:10.213.0.1]:6123")
METRICS = ("[::ffff:10.213.0.151]:46253", "[::ffff:10.213.0.1]:54902")


def test_each_socket_is_counted_on_the_wire():
    socks = parse(B)
    assert len(socks) == 11  # every ESTAB line of the reading
    # 5,392,632 B sent in 5,892 segments, 2,194,756 received in 4,803 (data_segs_* are not segs_*)
    assert socks[RPC] == (5_392_632 + HEADER_BYTES * 5_892, 2_194_756 + HEADER_BYTES * 4_803)


def test_only_the_sockets_to_the_jobmanager_count_and_a_closed_one_keeps_its_bytes():
    meter = ControlMeter(JM)
    sent0, recv0 = meter.update(A)
    sent1, recv1 = meter.update(B)
    # in 5 s only the RPC socket moved: 12,077 B in 20 more segments out, 6,845 B in 17 more segments in
    assert (sent1 - sent0, recv1 - recv0) == (12_077 + 20 * HEADER_BYTES, 6_845 + 17 * HEADER_BYTES)
    data = parse(B)[("[::ffff:10.213.0.151]:44539", "[::ffff:10.213.0.101]:48554")]
    assert sent1 < data[0]  # the records to the cloud TaskManager (225 MB) are not in it
    lines = B.splitlines()
    at = next(i for i, l in enumerate(lines) if "46253" in l)
    closed = "\n".join(lines[:at] + lines[at + 2:])  # the metric socket gone from the next reading
    assert meter.update(closed) == (sent1, recv1)
    assert meter.update(B) == (sent1 + parse(B)[METRICS][0], recv1 + parse(B)[METRICS][1])  # reopened: counted anew


def test_records_to_a_taskmanager_on_the_jobmanagers_host_are_not_control_traffic():
    """On a real cluster the JobManager's host runs a TaskManager too: the same reading as if 10.213.0.101 (the
    cloud TaskManager) were also the JobManager's host. Its data socket (the edge TaskManager's data port
    44539) would count as control; with the TaskManagers' data ports known, it does not."""
    both = JM | {"10.213.0.101"}
    data = parse(B)[("[::ffff:10.213.0.151]:44539", "[::ffff:10.213.0.101]:48554")]
    assert ControlMeter(both).update(B)[0] >= ControlMeter(JM).update(B)[0] + data[0]  # the bug this guards
    assert ControlMeter(both).update(B, frozenset({44539})) == ControlMeter(JM).update(B)
    assert ControlMeter(both).update(B, frozenset({48554})) == ControlMeter(JM).update(B)  # the peer's port too


SESSION = json.loads((REC / "ssh-session-lo.json").read_text())


def _split(text):
    printed, _, sockets = text.partition(_SS_MARK)
    return printed, sockets


def test_edgeplaces_own_ssh_session_is_taken_off_the_link():
    """Two real readings through edgeplace's SSH client (tests/recorded/record_ssh_session.py); between them the
    session carried `pushed` bytes from the host and the first reading's own output. The link's counters less
    the session's bytes went up by less than the interface counted; the session's part holds what it carried."""
    dev, pushed = SESSION["dev"], SESSION["pushed"]
    (pa, sa), (pb, sb) = _split(SESSION["a"]), _split(SESSION["b"])
    meter = SessionMeter()
    up0, down0 = link_counters(pa, sa, dev, meter)
    up1, down1 = link_counters(pb, sb, dev, meter)
    tx0, tx1 = int(pa.split()[0]), int(pb.split()[0])
    own = (tx1 - tx0) - (up1 - up0)  # what was taken off in between: the session's bytes on the wire
    carried = pushed + len(SESSION["a"])
    assert carried <= own <= carried * 1.1 + 20 * HEADER_BYTES
    # on loopback the session was the only traffic, and lo counts both its directions: 205,504 B counted,
    # 206,064 B by the socket's payload and headers
    took_down = (int(pb.split()[1]) - int(pa.split()[1])) - (down1 - down0)
    assert own + took_down == pytest.approx(tx1 - tx0, rel=0.01)
    assert down1 - down0 >= 0 and up1 - up0 >= 0  # the counters never go back


def test_a_session_that_does_not_cross_the_link_is_not_taken_off():
    """The route back to edgeplace's host leaves by another interface (a management network): nothing is
    taken off the WAN interface's counters; and a session that is not in the reading takes off nothing."""
    printed, sockets = _split(SESSION["b"])
    tx, rx = (int(x) for x in printed.split()[:2])
    assert link_counters(printed, sockets, "wan9", SessionMeter()) == (tx, rx)
    conn = printed.split("\n")[2].split()
    other = printed.replace(" ".join(conn), " ".join([conn[0], str(int(conn[1]) + 1), *conn[2:]]))
    assert link_counters(other, sockets, SESSION["dev"], SessionMeter()) == (tx, rx)
    assert link_counters(printed, sockets, SESSION["dev"], SessionMeter())[0] < tx


def test_a_session_reopened_after_a_break_is_counted_anew():
    printed, sockets = _split(SESSION["b"])
    conn = printed.split("\n")[2]
    meter = SessionMeter()
    first = meter.update(sockets, conn)
    assert first[0] > SESSION["pushed"]
    assert meter.update("", conn) == first  # the socket gone: what it counted is kept
    assert meter.update(sockets, conn) == (2 * first[0], 2 * first[1])  # a new one, counted on top
