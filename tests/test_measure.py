"""What `experiments.measure` reads of a running job: CPU of a process tree (with and without JIT
compilation), and how many events the sources have emitted."""
from __future__ import annotations

import subprocess
import sys

import psutil

from experiments.measure import jit_cpu, tree_cpu

# A child whose two threads each burn about the same CPU, one of them named as HotSpot names a JIT compiler
# thread; both stay alive (procfs lists live threads only) until the parent closes stdin.
CHILD = r"""
import ctypes, os, sys, threading, time
done = threading.Event()
def burn(name):
    if name:
        ctypes.CDLL(None).prctl(15, name.encode(), 0, 0, 0)  # PR_SET_NAME: this thread's comm
    t = time.thread_time()
    while time.thread_time() - t < 0.4:
        sum(i * i for i in range(2000))
    done.wait()
threads = [threading.Thread(target=burn, args=(n,)) for n in ("C2 CompilerThre", "")]
for th in threads:
    th.start()
def cpu_of(tid):
    f = open(f"/proc/self/task/{tid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
while sum(cpu_of(th.native_id) for th in threads) < 0.75:
    time.sleep(0.05)
print("ready", flush=True)
sys.stdin.read()
done.set()
"""


def test_steady_cpu_leaves_out_the_jit_compiler_threads_and_nothing_else():
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        p = psutil.Process(child.pid)
        jit = jit_cpu(p)
        total, steady = tree_cpu(p), tree_cpu(p, steady=True)
        assert 0.3 <= jit <= 0.6  # the named thread's 0.4 s, within the clock's ticks
        assert abs((total - steady) - jit) < 0.02
        assert steady >= 0.35  # the other thread's work stays
    finally:
        child.stdin.close()
        child.wait(timeout=10)


def test_a_process_without_compiler_threads_has_no_jit_cpu():
    assert jit_cpu(psutil.Process()) == 0.0


def test_the_slowest_source_subtask_decides_how_many_events_every_source_has_emitted(tmp_path):
    """`measure` goes on until *every* source has carried event time over two window periods."""
    import json
    from experiments.measure import events_per_source, source_progress
    def snap(counts):
        for name, n in counts.items():
            (tmp_path / f"progress-{name}.json").write_text(json.dumps({"count": n, "time": 1.0}))
        return source_progress(tmp_path)
    before = snap({"src-edge-1-0": 1_000, "src-edge-2-0": 50})
    after = snap({"src-edge-1-0": 41_000, "src-edge-2-0": 30_050})
    assert events_per_source(before, after) == 30_000
    assert events_per_source({}, after) == 0.0
