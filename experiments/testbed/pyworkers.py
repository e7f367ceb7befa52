"""Pre-warmed PyFlink UDF workers: a fork server next to each testbed TaskManager.

Every Python operator of a job starts its own worker process (`python -m pyflink.fn_execution.beam.beam_boot`),
which imports grpc, Apache Beam and PyFlink first: about 2 s of CPU, so 4 s per operator on a 0.5-core edge.
`serve` imports them once, in the TaskManager's network namespace and CPU group, and forks one child per
worker. The job's `python.executable` is a small launcher (`launcher_script`) that hands its command line,
environment, working directory and stdio to the server and waits for the child's exit status, so Flink sees
an ordinary worker process. Without a server (none configured, or it is gone) the launcher runs the real
interpreter: the job behaves exactly as without this module.

The server runs as root beside a root TaskManager, so it trusts no one else: it serves only connections from
its own uid (SO_PEERCRED), forks only the modules it was started for (the Beam worker entry point), and
reads every request without blocking, so a client that connects and sends nothing delays no one.

This file must stay importable with the standard library only: the launcher runs it with `python -I -S`."""
from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys

BOOT_MODULE = "pyflink.fn_execution.beam.beam_boot"
ENV_SOCKET = "EDGEPLACE_PYWORKERS"  # abstract socket name of the TaskManager's server, in its environment
PRELOAD = ("grpc", "google.protobuf.json_format", "google.protobuf.text_format",
           "apache_beam.portability.api.org.apache.beam.model.fn_execution.v1.beam_fn_api_pb2_grpc",
           "apache_beam.portability.api.org.apache.beam.model.fn_execution.v1.beam_provision_api_pb2_grpc",
           "apache_beam.runners.worker.sdk_worker_main", "pyflink.fn_execution.beam.beam_sdk_worker_main",
           "pyflink.fn_execution.datastream.operations", "pyflink.fn_execution.table.operations",
           "pyflink.fn_execution.coders", "cloudpickle")
_STATUS = struct.Struct("!i")
MAX_REQUEST = 4 << 20   # bytes of one request (argv, environment, cwd as JSON)
REQUEST_TIMEOUT = 5.0   # seconds a connected client has to send its whole request


def socket_name(workdir: str, tm_id: str) -> str:
    """Abstract (no file) socket name of one TaskManager's server; abstract names are per network namespace."""
    return f"edgeplace-pyworkers:{workdir}:{tm_id}"


def launcher_script(python: str) -> str:
    """Shell script to use as the job's `python.executable`."""
    return (f"#!/bin/sh\n# edgeplace: start PyFlink UDF workers from a pre-warmed server when there is one\n"
            f"exec {python} -I -S {os.path.abspath(__file__)} launch {python} \"$@\"\n")


# ---------------------------------------------------------------- launcher (stdlib only, no site-packages)

def launch(python: str, args: list[str], routed: tuple[str, ...] = (BOOT_MODULE,)) -> int:
    """Run `python args` through the server named in $EDGEPLACE_PYWORKERS when args are `-m M ...` with M in
    `routed`; else, or without a reachable server, exec it directly. Returns the worker's exit status."""
    name = os.environ.get(ENV_SOCKET)
    if not name or len(args) < 2 or args[0] != "-m" or args[1] not in routed:
        os.execv(python, [python, *args])
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect("\0" + name)
    except OSError:
        conn.close()
        os.execv(python, [python, *args])
    request = json.dumps({"module": args[1], "args": args[2:], "env": dict(os.environ),
                          "cwd": os.getcwd()}).encode()
    socket.send_fds(conn, [_STATUS.pack(len(request)) + request], [0, 1, 2])
    child = _read_status(conn)  # the forked worker's PID
    if child is None:
        return 1
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda s, _f: os.kill(child, s))
    status = _read_status(conn)
    return 1 if status is None else status


def _read_status(conn: socket.socket) -> int | None:
    data = b""
    while len(data) < _STATUS.size:
        try:
            chunk = conn.recv(_STATUS.size - len(data))
        except InterruptedError:
            continue
        if not chunk:
            return None
        data += chunk
    return _STATUS.unpack(data)[0]


# ---------------------------------------------------------------- server

def serve(name: str, parent: int, allowed: tuple[str, ...] = (BOOT_MODULE,)) -> None:
    """Import the worker's libraries, then fork one worker (a module in `allowed`) per launcher connection for
    as long as process `parent` (the TaskManager this server was started beside) is its parent."""
    import importlib
    import time

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    for attempt in range(20):  # a replaced TaskManager's old server lets go of the name within ~1 s
        try:
            listener.bind("\0" + name)
            break
        except OSError:
            if attempt == 19:
                raise
            time.sleep(0.25)
    listener.listen(64)  # bound before the imports: workers asked for meanwhile wait instead of starting cold
    for module in PRELOAD:
        importlib.import_module(module)
    print(f"pyworkers: serving {name!r} with {len(sys.modules)} modules loaded", flush=True)
    _Server(listener, allowed).run(lambda: os.getppid() == parent)


class _Server:
    """One thread, one selector: new launchers, launchers that went away (their worker is ended) and
    workers that ended (their launcher gets the exit status)."""

    def __init__(self, listener: socket.socket, allowed: tuple[str, ...]):
        import selectors

        self.listener = listener
        self.allowed = allowed
        self.sel = selectors.DefaultSelector()
        self.sel.register(listener, selectors.EVENT_READ, ("accept", 0))
        self.launchers: dict[int, socket.socket] = {}  # worker pid → its launcher's connection
        self.pending: dict[socket.socket, _Pending] = {}  # connections whose request is still arriving

    def run(self, keep_going) -> None:
        import time

        while keep_going():
            for key, _ in self.sel.select(timeout=1.0):
                what, pid = key.data
                try:
                    if what == "accept":
                        self._accept()
                    elif what == "request":
                        self._read_request(key.fileobj)
                    elif what == "launcher" and pid in self.launchers:
                        os.kill(pid, signal.SIGTERM)  # its exit is reaped when its pidfd says so
                        self._drop_launcher(pid)
                    elif what == "worker":
                        self._reap(pid, key.fileobj)
                except OSError as exc:
                    print(f"pyworkers: {what} {pid}: {exc}", flush=True)
            now = time.monotonic()
            for conn in [c for c, p in self.pending.items() if now - p.since > REQUEST_TIMEOUT]:
                self._refuse(conn, f"no whole request within {REQUEST_TIMEOUT:g} s")

    def _accept(self) -> None:
        """A new connection: only from this server's own uid; its request is read as it arrives."""
        import selectors
        import time

        conn, _ = self.listener.accept()
        pid, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                             struct.calcsize("3i")))
        if uid != os.getuid():
            print(f"pyworkers: refused process {pid} of uid {uid} (serving uid {os.getuid()} only)", flush=True)
            conn.close()
            return
        conn.setblocking(False)
        self.pending[conn] = _Pending(time.monotonic())
        self.sel.register(conn, selectors.EVENT_READ, ("request", 0))

    def _read_request(self, conn: socket.socket) -> None:
        """Read what has arrived of a request; start its worker once it is whole."""
        p = self.pending[conn]
        try:
            data, fds, _, _ = socket.recv_fds(conn, MAX_REQUEST, 3)
        except BlockingIOError:
            return
        except OSError as exc:
            return self._refuse(conn, str(exc))
        p.fds += fds
        p.data += data
        if not data or len(p.fds) > 3 or len(p.data) > _STATUS.size + MAX_REQUEST:
            return self._refuse(conn, "launcher went away" if not data else "request too large")
        if len(p.data) < _STATUS.size or len(p.data) < _STATUS.size + _STATUS.unpack(p.data[:_STATUS.size])[0]:
            return
        self.sel.unregister(conn)
        del self.pending[conn]
        try:
            if len(p.fds) != 3:
                raise ValueError(f"{len(p.fds)} file descriptors instead of stdin, stdout, stderr")
            request = json.loads(p.data[_STATUS.size:])
            if not isinstance(request, dict) or request.get("module") not in self.allowed:
                raise ValueError(f"module {request.get('module') if isinstance(request, dict) else '?'!r} is "
                                 f"not one this server starts ({', '.join(self.allowed)})")
        except ValueError as exc:
            print(f"pyworkers: bad request: {exc}", flush=True)
            for fd in p.fds:
                os.close(fd)
            conn.close()
            return
        conn.setblocking(True)
        self._start_worker(conn, request, p.fds)

    def _refuse(self, conn: socket.socket, why: str) -> None:
        print(f"pyworkers: dropped a connection: {why}", flush=True)
        p = self.pending.pop(conn)
        for fd in p.fds:
            os.close(fd)
        self.sel.unregister(conn)
        conn.close()

    def _start_worker(self, conn: socket.socket, request: dict, fds: list[int]) -> None:
        import selectors

        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            self.listener.close()
            conn.close()
            os._exit(_run_worker(request, fds))
        for fd in fds:
            os.close(fd)
        self.launchers[pid] = conn
        self.sel.register(conn, selectors.EVENT_READ, ("launcher", pid))
        self.sel.register(os.pidfd_open(pid), selectors.EVENT_READ, ("worker", pid))
        conn.sendall(_STATUS.pack(pid))

    def _reap(self, pid: int, pidfd: int) -> None:
        _, status = os.waitpid(pid, 0)
        self.sel.unregister(pidfd)
        os.close(pidfd)
        conn = self.launchers.get(pid)
        if conn is not None:
            code = os.waitstatus_to_exitcode(status)
            try:
                conn.sendall(_STATUS.pack(code if code >= 0 else 128 - code))
            except OSError:
                pass
            self._drop_launcher(pid)

    def _drop_launcher(self, pid: int) -> None:
        conn = self.launchers.pop(pid)
        self.sel.unregister(conn)
        conn.close()


class _Pending:
    """A request still arriving: its bytes and file descriptors so far, and since when."""

    def __init__(self, since: float):
        self.since, self.data, self.fds = since, b"", []


def _run_worker(request: dict, fds: list[int]) -> int:
    """In the forked child: become the worker the launcher asked for."""
    import runpy
    import traceback

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    extra = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p not in sys.path]
    sys.path[:0] = extra
    sys.argv = [request["module"], *request["args"]]
    code = 0
    try:
        runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
        code = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:
        pass
    return code


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "launch":
        sys.exit(launch(sys.argv[2], sys.argv[3:]))
    if len(sys.argv) >= 4 and sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]), tuple(sys.argv[4:]) or (BOOT_MODULE,))
        sys.exit(0)
    sys.exit("usage: pyworkers.py launch PYTHON ARGS... | serve SOCKET_NAME PARENT_PID [MODULE...]")
