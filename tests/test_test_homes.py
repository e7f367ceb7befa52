"""The test session's own home: a killed session's testbed is found and reaped by the next one, never a home that
another session still holds or that someone other than root made."""
from __future__ import annotations

import subprocess
import sys

from tests.conftest import _SESSION_LOCK, orphaned_test_homes


def _home(tmp, name, mode=0o700, testbed=True):
    home = tmp / f"edgeplace-test-home-{name}"
    (home / "testbed").mkdir(parents=True)
    if testbed:
        (home / "testbed" / "state.json").write_text("{}")
    home.chmod(mode)
    return home


def test_only_unheld_private_homes_that_record_a_testbed_are_orphans(tmp_path):
    killed = _home(tmp_path, "killed")
    running = _home(tmp_path, "running")
    _home(tmp_path, "shared", mode=0o755)  # not private: what it records is not trusted
    _home(tmp_path, "clean", testbed=False)  # its session tore its testbed down
    holder = subprocess.Popen(  # a live session: holds its home's lock until its stdin closes
        [sys.executable, "-c", "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
         "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); sys.stdin.read()", str(running / _SESSION_LOCK)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert orphaned_test_homes(tmp_path) == [killed]
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)
    assert orphaned_test_homes(tmp_path) == [killed, running]  # its session ended without tearing down
