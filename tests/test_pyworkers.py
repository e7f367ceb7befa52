"""The pre-warmed Python worker server and its launcher, with real processes (no Flink needed)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from experiments.testbed import pyworkers

PROBE = """
import json, os, sys, time
print(json.dumps({"pid": os.getpid(), "ppid": os.getppid(), "cwd": os.getcwd(), "argv": sys.argv[1:],
                  "x": os.environ.get("PROBE_X")}), flush=True)
if sys.argv[1:2] == ["sleep"]:
    time.sleep(600)
sys.exit(int(sys.argv[1]) if sys.argv[1:2] and sys.argv[1].isdigit() else 0)
"""


@pytest.fixture
def probe(tmp_path) -> Path:
    (tmp_path / "probe_mod.py").write_text(PROBE)
    return tmp_path


def start_server(name: str, *modules: str) -> subprocess.Popen:
    """A server as the testbed starts it (its parent is this test process), forking `modules`."""
    proc = subprocess.Popen([sys.executable, "-m", "experiments.testbed.pyworkers", "serve", name, str(os.getpid()),
                             *modules], stdout=subprocess.PIPE, text=True)
    assert "serving" in proc.stdout.readline()  # printed once its libraries are loaded
    return proc


@pytest.fixture
def server(tmp_path):
    name = f"edgeplace-pyworkers-test:{tmp_path}"
    proc = start_server(name, "probe_mod")
    yield name, proc
    proc.kill()
    proc.wait()


def launcher(name: str | None, probe: Path, *args: str) -> subprocess.Popen:
    """The launcher as PyFlink runs it (`$python -m module args`), routing the probe module."""
    code = (f"import sys; sys.path.insert(0, {str(Path(pyworkers.__file__).parent)!r}); import pyworkers; "
            f"sys.exit(pyworkers.launch(sys.executable, sys.argv[1:], routed=('probe_mod',)))")
    env = {**os.environ, "PYTHONPATH": str(probe), "PROBE_X": "from the launcher"}
    env.pop(pyworkers.ENV_SOCKET, None)
    if name:
        env[pyworkers.ENV_SOCKET] = name
    return subprocess.Popen([sys.executable, "-I", "-S", "-c", code, "-m", "probe_mod", *args], cwd=probe,
                            env=env, stdout=subprocess.PIPE, text=True)


def test_the_worker_is_forked_by_the_server_with_the_launchers_args_env_cwd_output_and_status(server, probe):
    name, srv = server
    run = launcher(name, probe, "3", "more")
    out, _ = run.communicate(timeout=30)
    seen = json.loads(out)
    assert seen["ppid"] == srv.pid  # forked by the server, not started by the launcher
    assert seen["cwd"] == str(probe) and seen["argv"] == ["3", "more"] and seen["x"] == "from the launcher"
    assert run.returncode == 3


def test_without_a_server_the_launcher_becomes_the_real_interpreter(probe):
    for name in (None, "edgeplace-pyworkers-test:nobody-listens"):
        run = launcher(name, probe, "4")
        out, _ = run.communicate(timeout=30)
        assert json.loads(out)["pid"] == run.pid and run.returncode == 4


def test_a_signalled_launcher_passes_the_signal_on_and_a_killed_one_takes_its_worker_along(server, probe):
    name, _ = server
    run = launcher(name, probe, "sleep")
    worker = psutil.Process(json.loads(run.stdout.readline())["pid"])
    run.send_signal(signal.SIGTERM)
    assert run.wait(timeout=10) == 128 + signal.SIGTERM
    assert not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE

    run = launcher(name, probe, "sleep")
    worker = psutil.Process(json.loads(run.stdout.readline())["pid"])
    run.kill()
    run.wait()
    gone, _ = psutil.wait_procs([worker], timeout=10)
    assert gone, "the worker outlived its SIGKILLed launcher"


def test_the_server_ends_when_its_taskmanager_does(tmp_path):
    name = f"edgeplace-pyworkers-test:{tmp_path}"
    parent = subprocess.Popen(["sh", "-c", f"{sys.executable} -m experiments.testbed.pyworkers serve '{name}' $$ & "
                               "echo $!; exec sleep 600"], stdout=subprocess.PIPE, text=True)
    srv = psutil.Process(int(parent.stdout.readline()))
    parent.kill()
    parent.wait()
    gone, alive = psutil.wait_procs([srv], timeout=30)  # it notices within 1 s of having loaded its libraries
    for p in alive:
        p.kill()
    assert gone, "the server outlived its parent"


def test_the_launcher_script_runs_as_python_executable(server, probe, tmp_path):
    """The script Flink runs as `python.executable`: a routed module goes to the server, anything else to
    the real interpreter, with its arguments and exit status."""
    script = tmp_path / "python-worker"
    script.write_text(pyworkers.launcher_script(sys.executable))
    script.chmod(0o755)
    name, srv = server
    env = {**os.environ, pyworkers.ENV_SOCKET: name}
    plain = subprocess.run([str(script), "-c", "import sys; print(sys.argv[1:]); sys.exit(5)", "a b"], env=env,
                           capture_output=True, text=True, timeout=30)
    assert plain.returncode == 5 and plain.stdout.strip() == "['a b']"
    boot = subprocess.run([str(script), "-m", pyworkers.BOOT_MODULE, "--help"], env=env, capture_output=True,
                          text=True, timeout=60)
    srv.kill()
    assert "not one this server starts" in srv.communicate()[0]  # the boot module was asked of the server
    assert boot.returncode != 0  # this test's server forks only the probe module, so it refused



def raw_request(name: str, module: str, pythonpath: Path, uid: int | None = None) -> str:
    """The launcher's protocol by hand, as an attacker would speak it, from a forked child (as `uid`):
    "pid" when the server started a worker, "refused" when it closed the connection."""
    import socket
    import struct
    r, w = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        try:
            os.close(r)
            if uid is not None:
                os.setuid(uid)
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            conn.connect("\0" + name)
            req = json.dumps({"module": module, "args": [], "env": {"PYTHONPATH": str(pythonpath)},
                              "cwd": "/"}).encode()
            null = os.open(os.devnull, os.O_RDWR)
            socket.send_fds(conn, [struct.pack("!i", len(req)) + req], [null, null, null])
            conn.settimeout(20)
            os.write(w, b"pid" if conn.recv(4) else b"refused")
        except OSError as exc:  # the server closed the connection before, or while, reading the request
            os.write(w, b"refused" if isinstance(exc, (BrokenPipeError, ConnectionResetError)) else repr(exc).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as fh:
        answer = fh.read()
    os.waitpid(child, 0)
    return answer


def test_another_uid_cannot_start_a_worker(server, probe):
    name, srv = server
    assert raw_request(name, "probe_mod", probe) == "pid"  # the same request from the server's uid is served
    assert raw_request(name, "probe_mod", probe, uid=65534) == "refused"
    srv.kill()
    assert "refused process" in srv.communicate()[0]


def test_only_the_modules_the_server_was_started_for_are_forked(tmp_path, probe):
    name = f"edgeplace-pyworkers-test:{tmp_path}:boot-only"
    srv = start_server(name)  # the default: the Beam worker entry point only
    try:
        assert raw_request(name, "probe_mod", probe) == "refused"
    finally:
        srv.kill()
        out, _ = srv.communicate()
    assert "not one this server starts" in out


def test_a_client_that_sends_nothing_delays_no_one(server, probe):
    import socket
    name, _ = server
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    silent.connect("\0" + name)  # connects, then says nothing
    try:
        run = launcher(name, probe, "3")
        out, _ = run.communicate(timeout=30)
        assert run.returncode == 3 and json.loads(out)["argv"] == ["3"]
    finally:
        silent.close()
