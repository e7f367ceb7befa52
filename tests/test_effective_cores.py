"""`ansible/files/effective_cores.py` (what `cluster facts` runs on each host), run on this machine. Where
the cgroup files are hidden it measures: the cores a host's cgroup gives are what a burst of busy processes
got plus what the cgroup's other processes used meanwhile (on a cloud host the JobManager and a TaskManager
run beside it: counted alone, the burst read 0.38 of a 0.5-core quota)."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "ansible" / "files" / "effective_cores.py"


def _script():
    spec = importlib.util.spec_from_file_location("effective_cores", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # importing measures nothing: only running it as a script does
    return module


def test_a_burst_counts_the_cpu_that_its_cgroup_peers_used_meanwhile():
    cores = _script()
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])  # a peer: same cgroup as this test
    try:
        assert hog.pid in cores._cgroup_peers()
        own, others, wall = cores.burst(1, 1.0)
    finally:
        hog.kill()
        hog.wait()
    assert own > 0.3 * wall and others > 0.3 * wall, (own, others, wall)  # 2 CPUs: about a core each
    assert own + others <= len(os.sched_getaffinity(0)) * wall * 1.05


def test_run_as_a_script_it_prints_the_cores_of_this_host():
    out = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=30, check=True)
    assert 0 < float(out.stdout) <= len(os.sched_getaffinity(0))
