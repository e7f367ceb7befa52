"""The CPU of a TaskManager's process tree as read on its host over SSH (`collectors.proctree`), checked here on
real processes of this machine: the command is run as the SSH session would run it."""
import os
import subprocess
import sys
import time

import psutil
import pytest

from collectors.proctree import UNREADABLE, parse_tree_cpu, tree_cpu_command
from experiments.measure import tree_cpu

# a "TaskManager" that idles while its child (a "Python worker") burns CPU until told to stop
PARENT = ("import subprocess, sys, time; "
          "c = subprocess.Popen([sys.executable, '-c', 'import time\\nt = time.process_time()\\n"
          "while time.process_time() - t < 0.6: pass\\ntime.sleep(60)']); "
          "time.sleep(60)")


def _read(pid_dir) -> float | None:
    out = subprocess.run(["sh", "-c", tree_cpu_command(str(pid_dir), sys.executable)], capture_output=True,
                         text=True, timeout=30, check=True).stdout
    return parse_tree_cpu(out)


@pytest.fixture
def taskmanager():
    proc = subprocess.Popen([sys.executable, "-c", PARENT])
    try:
        p = psutil.Process(proc.pid)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # until the child has burnt its 0.6 s
            kids = p.children()
            if kids and sum(kids[0].cpu_times()[:2]) >= 0.6:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the child process did not burn its CPU within 20 s")
        yield p
    finally:
        for q in psutil.Process(proc.pid).children(recursive=True):
            q.kill()
        proc.kill()
        proc.wait()


def test_the_whole_tree_is_counted_from_the_last_live_pid_in_the_file(tmp_path, taskmanager):
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that was recorded once and is gone now: it is passed over
    # Flink appends a line per start: an older start's pid, the live one, then the dead one
    (tmp_path / "flink-edgeplace-taskexecutor.pid").write_text(f"{dead.pid}\n{taskmanager.pid}\n{dead.pid}\n")
    # the JobManager's pid file (newer) is not read: here it names this test's own process, busy for seconds
    (tmp_path / "flink-edgeplace-standalonesession.pid").write_text(f"{os.getpid()}\n")
    seconds = _read(tmp_path)
    assert seconds is not None and seconds >= 0.6  # the child's burn is in it, not only the idle parent's
    assert seconds == pytest.approx(tree_cpu(taskmanager), abs=0.05)  # as the local testbed counts it


# a "TaskManager" whose "Python worker" burnt its CPU and ended (the job that started it failed), reaped
REAPED = ("import subprocess, sys, time; "
          "subprocess.run([sys.executable, '-c', 'import time\\nt = time.process_time()\\n"
          "while time.process_time() - t < 0.6: pass']); "
          "print('reaped', flush=True); time.sleep(60)")


def test_an_ended_and_reaped_child_keeps_its_cpu_in_the_tree(tmp_path):
    """A window's CPU is the difference of two readings: a tree that forgot its ended workers read less at the
    end than at the start (-4.6 cores on a 0.5-core edge, in an acceptance run)."""
    proc = subprocess.Popen([sys.executable, "-c", REAPED], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "reaped"
        p = psutil.Process(proc.pid)
        assert not p.children()  # nothing of the child is left but its seconds
        (tmp_path / "flink-edgeplace-taskexecutor.pid").write_text(f"{proc.pid}\n")
        assert tree_cpu(p) >= 0.6 and _read(tmp_path) >= 0.6
    finally:
        proc.kill()
        proc.wait()


def test_no_live_taskmanager_reads_none_and_garbage_is_an_error(tmp_path):
    assert _read(tmp_path) is None  # no pid file at all
    dead = subprocess.Popen(["true"])
    dead.wait()
    (tmp_path / "flink-edgeplace-taskexecutor.pid").write_text(f"{dead.pid}\n")
    assert _read(tmp_path) is None
    with pytest.raises(ValueError, match="CPU seconds"):
        parse_tree_cpu("python3: not found")


def test_pid_files_the_ssh_user_may_not_read_are_said_to_be_unreadable(tmp_path):
    """As a user who may not list Flink's pid dir (0700, another owner): the command says so, rather than
    reading as if no TaskManager ran."""
    pid_dir = tmp_path / "tmp"
    pid_dir.mkdir()
    (pid_dir / "flink-edgeplace-taskexecutor.pid").write_text(f"{os.getpid()}\n")
    pid_dir.chmod(0o000)
    tmp_path.chmod(0o755)
    command = tree_cpu_command(str(pid_dir), "/usr/bin/python3")
    # as root, run it as nobody (root may read any directory)
    argv = (["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c", command]
            if os.geteuid() == 0 else ["sh", "-c", command])
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True).stdout
    finally:
        pid_dir.chmod(0o700)
    assert out.strip() == UNREADABLE


def test_a_cluster_meter_reads_each_host_and_says_once_which_it_leaves_out():
    """AnsibleCluster.cpu_meter over a stand-in for its SSH sessions: a host that reads; one whose SSH user may
    not read the pid dir but may use sudo without a password; one whose sudo asks for a password; one whose
    facts predate the pid dir."""
    from experiments.environments import AnsibleCluster
    from experiments.ssh import RemoteCommandFailed
    asked, said = [], []

    class Ssh:
        def run(self, host, command, timeout=10.0):
            sudo = command.startswith("sudo -n ")
            asked.append((host, sudo))
            if host == "edge-2" and sudo:
                raise RemoteCommandFailed(f"10.0.0.3: `{command}` failed: sudo: a password is required",
                                          "sudo: a password is required")
            return {"cloud-1": "12.5\n", "edge-1": "unreadable\n" if not sudo else "3.25\n",
                    "edge-2": "unreadable\n"}[host]

    env = object.__new__(AnsibleCluster)  # its facts and sessions, without a cluster behind them
    env.inventory, env.say, env.ssh, env._cpu_unseen, env._sudo = "inv.yml", said.append, Ssh(), set(), set()
    env.hostvars = {"cloud-1": {}, "edge-1": {"ansible_user": "pi"}, "edge-2": {"ansible_user": "pi"}, "edge-3": {}}
    env.facts = {"nodes": [{"id": "cloud-1", "taskmanager_pid_dir": "/opt/t", "python": "/opt/venv/bin/python"},
                           {"id": "edge-1", "taskmanager_pid_dir": "/opt/t"},
                           {"id": "edge-2", "taskmanager_pid_dir": "/opt/t"}, {"id": "edge-3"}]}
    meter = env.cpu_meter()
    assert meter() == {"cloud-1": 12.5, "edge-1": 3.25} and meter() == {"cloud-1": 12.5, "edge-1": 3.25}
    # edge-1 is read through sudo from then on; edge-2, whose sudo wants a password, is not asked again
    assert asked == [("cloud-1", False), ("edge-1", False), ("edge-1", True), ("edge-2", False), ("edge-2", True),
                     ("cloud-1", False), ("edge-1", True)]
    assert env.cpu_meter()() == {"cloud-1": 12.5, "edge-1": 3.25}
    assert len(said) == 2 and said[0].startswith("CPU is not measured on edge-3: its facts")
    assert said[1].startswith("CPU is not measured on edge-2: its SSH user (pi) may not read /opt/t") and \
        "`sudo -n` refused (sudo: a password is required)" in said[1]
