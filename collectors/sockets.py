"""Traffic counted per TCP socket (`ss -tin`), on the wire: payload plus one Ethernet/IP/TCP header (with
timestamps) per segment, as a link's interface counters count them. Flink's own traffic of a TaskManager: the
bytes it exchanges with the JobManager (heartbeats, the metric dumps the JobManager fetches, checkpoint
acknowledgements carrying state), apart from the records it exchanges with other TaskManagers. And edgeplace's
own SSH session with a real host, whose bytes cross the link that the host's counters measure."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

HEADER_BYTES = 14 + 20 + 32  # Ethernet + IPv4 + TCP with the timestamp option, per segment
_COUNTER = re.compile(r"\b(bytes_sent|bytes_received|segs_out|segs_in):(\d+)")


def _host(endpoint: str) -> str:
    """'[::ffff:10.0.0.1]:6123' or '10.0.0.1:6123' → '10.0.0.1'."""
    return _bare(endpoint.rsplit(":", 1)[0].strip("[]"))


def _port(endpoint: str) -> int:
    try:
        return int(endpoint.rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return -1


def parse(text: str) -> dict[tuple[str, str], tuple[int, int]]:
    """`ss -tinH` output → (local, peer) → (bytes sent, bytes received) on the wire, per TCP socket."""
    out: dict[tuple[str, str], tuple[int, int]] = {}
    head: list[str] | None = None
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line[0].isspace():
            fields = line.split()
            head = fields if len(fields) >= 5 else None
            continue
        if head is None:
            continue
        c = {k: int(v) for k, v in _COUNTER.findall(line)}
        out[(head[3], head[4])] = (c.get("bytes_sent", 0) + HEADER_BYTES * c.get("segs_out", 0),
                                   c.get("bytes_received", 0) + HEADER_BYTES * c.get("segs_in", 0))
        head = None
    return out


@dataclass
class _Cumulative:
    """Wire bytes summed over the sockets of each reading so that they never go back: a socket that closed (or
    whose ports were reused) keeps what it had counted."""
    _last: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    _closed: list[int] = field(default_factory=lambda: [0, 0])

    def fold(self, now: dict[tuple[str, str], tuple[int, int]]) -> tuple[int, int]:
        for k, old in self._last.items():
            new = now.get(k)
            if new is None or new[0] < old[0] or new[1] < old[1]:  # closed, or the same ports reused
                self._closed[0] += old[0]
                self._closed[1] += old[1]
        self._last = now
        return (self._closed[0] + sum(v[0] for v in now.values()),
                self._closed[1] + sum(v[1] for v in now.values()))


@dataclass
class ControlMeter:
    """Cumulative bytes a TaskManager sent to and received from the JobManager's hosts, over every socket seen
    (one that closed keeps what it had counted), so that polling it gives counters that never go back. Where a
    TaskManager shares the JobManager's host (a real cluster's first cloud host), the records exchanged with
    it are not Flink's own traffic: a socket on a TaskManager's data port is left out (`update`)."""
    jobmanager_hosts: frozenset[str]
    _sum: _Cumulative = field(default_factory=_Cumulative)

    def update(self, ss_text: str, data_ports: frozenset[int] = frozenset()) -> tuple[int, int]:
        """Fold in one `ss -tinH` reading; the cumulative (sent, received) bytes since the first. `data_ports`:
        the TaskManagers' data ports (Flink's `dataPort`), whose sockets carry records."""
        return self._sum.fold({(local, peer): v for (local, peer), v in parse(ss_text).items()
                               if _host(peer) in self.jobmanager_hosts and _port(local) not in data_ports
                               and _port(peer) not in data_ports})


@dataclass
class SessionMeter:
    """Cumulative bytes of edgeplace's own SSH session with a host (its WAN counters, CPU and progress read
    every few seconds), as the host sent and received them on the wire: the socket that `$SSH_CONNECTION`
    ('client port server port') names in the host's `ss -tinH`, one reopened after a break counted anew."""
    _sum: _Cumulative = field(default_factory=_Cumulative)

    def update(self, ss_text: str, ssh_connection: str) -> tuple[int, int]:
        try:
            client, cport, server, sport = ssh_connection.split()
            want = (_bare(server), int(sport), _bare(client), int(cport))
        except ValueError:
            return self._sum.fold({})
        return self._sum.fold({(local, peer): v for (local, peer), v in parse(ss_text).items()
                               if (_host(local), _port(local), _host(peer), _port(peer)) == want})


def _bare(host: str) -> str:
    return host.removeprefix("::ffff:")
