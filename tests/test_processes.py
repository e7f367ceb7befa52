"""A recorded testbed process is known by its PID and its start since boot, whatever the wall clock does."""
import subprocess
import sys

import psutil
import pytest

from experiments.testbed import processes
from experiments.testbed.processes import ProcRef


@pytest.fixture
def child():
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield p
    p.kill()
    p.wait()


def test_a_stepped_wall_clock_does_not_make_a_live_process_look_gone(child, monkeypatch):
    ref = ProcRef.of(child.pid)
    before = psutil.Process(child.pid).create_time()
    real = psutil._pslinux.boot_time
    monkeypatch.setattr(psutil._pslinux, "boot_time", lambda: real() + 1.0)  # the clock was stepped by 1 s
    assert abs(psutil.Process(child.pid).create_time() - before - 1.0) < 1e-6  # the epoch start time moved
    assert ProcRef.recorded(ref.record()).alive().pid == child.pid


def test_a_reused_pid_or_an_ended_process_is_not_ours(child):
    ref = ProcRef.of(child.pid)
    assert ProcRef(child.pid, ref.started - 5.0).alive() is None  # another process under the same PID
    child.kill()
    child.wait()
    assert ref.alive() is None
    assert processes.started(child.pid) is None


def test_a_record_from_before_started_is_still_found(child):
    legacy = {"pid": child.pid, "create_time": psutil.Process(child.pid).create_time()}
    assert ProcRef.recorded(legacy).alive().pid == child.pid
    assert abs(ProcRef.recorded(legacy).started - ProcRef.of(child.pid).started) < 0.05
