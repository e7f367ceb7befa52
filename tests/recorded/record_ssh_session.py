"""Record what a host prints for edgeplace's WAN counters through a real SSH session, for the test of
`experiments.environments.link_counters` (tests/test_sockets.py). As root, on this machine:

    .venv/bin/python -m tests.recorded.record_ssh_session --out tests/recorded/ssh-session-lo.json

Starts a private sshd on 127.0.0.1:22022 (the testbed's own sshd config and keys, in a temporary folder), connects
through edgeplace's `SshSessions`, and reads `link_command('lo')` plus `ss -tinH` twice; between the readings the
session carries `--push` bytes from the host (`head -c N /dev/zero`). The sshd is stopped by its PID."""
from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

from experiments.environments import _SS_MARK, link_command
from experiments.ssh import SshSessions
from experiments.testbed import sshhosts
from experiments.testbed.launch import port_open

ADDR, PORT = "127.0.0.1", 22022


def main() -> None:
    a = argparse.ArgumentParser()
    a.add_argument("--out", required=True)
    a.add_argument("--push", type=int, default=200_000)
    args = a.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        key = sshhosts.make_keys(d)
        known = sshhosts.known_hosts(d, [f"[{ADDR}]:{PORT}"])
        sshd = subprocess.Popen(sshhosts.sshd_argv(sshhosts.sshd_config(d, f"{ADDR}:{PORT}")),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ssh = SshSessions({"h": {"ansible_host": ADDR, "ansible_port": PORT, "ansible_user": "root",
                                 "ansible_ssh_private_key_file": str(key), "known_hosts_file": str(known)}})
        try:
            deadline = time.monotonic() + 10
            while not port_open(ADDR, PORT):
                if time.monotonic() > deadline:
                    raise SystemExit(f"sshd did not start on {ADDR}:{PORT}")
                time.sleep(0.1)
            read = link_command("lo") + f"echo {_SS_MARK}; ss -tinH 2>/dev/null || true"
            first = ssh.run("h", read)
            pushed = len(ssh.run("h", f"head -c {args.push} /dev/zero"))
            second = ssh.run("h", read)
        finally:
            ssh.close()
            sshd.terminate()
            sshd.wait(10)
    Path(args.out).write_text(json.dumps({"dev": "lo", "pushed": pushed, "a": first, "b": second}, indent=1))


if __name__ == "__main__":
    main()
