"""Bulk TCP transfer to measure a link: a receiver here, a sender wherever `sender_prefix` runs it.

Run as `python -m experiments.testbed.linkprobe HOST PORT SECONDS` to send for SECONDS."""
from __future__ import annotations

import socket
import subprocess
import sys
import time
from typing import Callable

CHUNK = 64 * 1024


def measure_mbit(wrap: Callable[[list[str]], list[str]], listen_ip: str, seconds: float = 4.0, warmup: float = 0.5) -> float:
    """Mbit/s received from a sender started as `wrap([python, -m, linkprobe, ...])`.

    Bytes arriving in the first `warmup` seconds are ignored (htb lets a burst through at first)."""
    with socket.socket() as srv:
        srv.bind((listen_ip, 0))
        srv.listen(1)
        srv.settimeout(15)
        port = srv.getsockname()[1]
        argv = wrap([sys.executable, "-m", "experiments.testbed.linkprobe", listen_ip, str(port),
                                str(seconds + warmup)])
        sender = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            conn, _ = srv.accept()
        except socket.timeout:
            sender.kill()
            raise RuntimeError(f"link probe sender never connected: {sender.communicate()[1].decode()[-300:]}")
        with conn:
            conn.settimeout(15)
            start = time.monotonic()
            counted, t_first = 0, None
            while True:
                data = conn.recv(CHUNK)
                if not data:
                    break
                now = time.monotonic()
                if now - start >= warmup:
                    if t_first is None:
                        t_first = now
                    else:
                        counted += len(data)
                t_last = now
        sender.wait(timeout=30)
    if t_first is None or t_last <= t_first:
        raise RuntimeError("link probe received too little data to measure")
    return counted * 8 / (t_last - t_first) / 1e6


def _send(host: str, port: int, seconds: float) -> None:
    payload = b"\0" * CHUNK
    with socket.create_connection((host, port), timeout=15) as s:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            s.sendall(payload)


if __name__ == "__main__":
    _send(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))
