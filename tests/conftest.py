"""Shared fixtures. Live tests share ONE testbed per session (the machine has 2 cores); tests that need
the machine free of any testbed (lifecycle tests) run first and release it."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# every session its own private home (mode 0700), never a fixed shared path: two runs never see each other's
# testbed records, and the unit tests touch nothing outside it. Made once per session and kept in the
# environment: this module is imported twice (as pytest's conftest and as tests.conftest) and by subprocesses.
if not os.environ.get("EDGEPLACE_TEST_HOME"):
    os.environ["EDGEPLACE_TEST_HOME"] = tempfile.mkdtemp(prefix="edgeplace-test-home-")
    os.environ["EDGEPLACE_TEST_HOME_MADE"] = os.environ["EDGEPLACE_TEST_HOME"]
TEST_HOME = Path(os.environ["EDGEPLACE_TEST_HOME"])
# ports and subnet distinct from a user's default testbed, so tests never touch it
TEST_ENV = {"EDGEPLACE_HOME": str(TEST_HOME)}
TEST_ARGS = ["--rest-port", "18081", "--rpc-port", "16123", "--subnet", "10.213.7.0/24"]
SHARED_ARGS = ["--edge", "2", "--cloud", "1", "--wan-mbit", "8", "--edge-cpu", "0.5"]
# records/s per source for live jobs that only need to run (placement, lifecycle), not be measured: a
# stop-with-savepoint waits while the generator works through its queued 200-record Python bundle and the
# records before the barrier (counts, per stop: 10.2 s at 50/s, 3.5 s at 200/s, 1.2 s at 500/s)
STOPS_FAST = "300"
# the tail of a test experiment config: a one-edge testbed on the test ports and subnet, running nexmark q2
TEST_CLUSTER_TOML = """[cluster]
edge = 1
cloud = 1
edge_cpu = 0.5
edge_slots = 4
cloud_slots = 8
rest_port = 18081
rpc_port = 16123
subnet = "10.213.7.0/24"
[[queries]]
name = "nexmark"
label = "q2"
args = ["--opt", "query=q2"]
"""


def edgeplace(*args: str, check: bool = False, timeout: float = 300,
              home: Path | None = None) -> subprocess.CompletedProcess:
    """Run the real CLI as a user would, against the test home (or `home`)."""
    env = {**TEST_ENV, **os.environ, **({"EDGEPLACE_HOME": str(home)} if home else {})}  # a test may set its own
    return subprocess.run([sys.executable, "-m", "experiments.cli", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, check=check)


def pytest_collection_modifyitems(items):
    """Lifecycle tests (own up/down cycles) first, then everything sharing the session testbed (those that
    need its TaskManagers fresh first), and tests that break the shared testbed (e.g. kill its JobManager)
    last."""
    def order(it):
        marks = {m.name for m in it.iter_markers()}
        return 0 if "lifecycle" in marks else 3 if "destructive" in marks else \
            1 if "first_on_shared_testbed" in marks else 2
    items.sort(key=order)


def pytest_unconfigure(config):
    """Remove the session's own home when it made one and no testbed is recorded in it any more."""
    import shutil
    if os.environ.get("EDGEPLACE_TEST_HOME_MADE") == str(TEST_HOME) and not (TEST_HOME / "testbed" / "state.json").exists():
        shutil.rmtree(TEST_HOME, ignore_errors=True)


_SESSION_LOCK = ".session.lock"  # held (flock) by the pytest session that made the home, for as long as it runs
_held: list = []


def _lock(home: Path) -> int | None:
    """The home's session lock, taken (its fd), or None when another session (or process) holds it."""
    import fcntl
    fd = os.open(home / _SESSION_LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _hold_session_lock() -> None:
    """Mark this session's home as alive: a later session may reap the home's testbed only once this is gone.
    A pytest run inside this session's tests finds it held by the outer session and leaves it so."""
    fd = _lock(TEST_HOME)
    if fd is not None:
        _held.append(fd)


def orphaned_test_homes(tmp: Path | None = None) -> list[Path]:
    """Other sessions' homes that still record a testbed while no session holds them (a run killed before its
    teardown). Only root's own private homes count (owned by this user, mode 0700): a directory someone else
    made under the same name must never make root act on what it records."""
    import stat
    found = []
    for home in sorted((tmp or Path(tempfile.gettempdir())).glob("edgeplace-test-home-*")):
        if home == TEST_HOME:
            continue
        try:
            st = home.lstat()
            recorded = (home / "testbed" / "state.json").lstat()
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077 \
                or recorded.st_uid != os.geteuid():
            continue
        fd = _lock(home)
        if fd is None:
            continue  # its session still runs
        os.close(fd)  # the probe's own lock goes with it
        found.append(home)
    return found


def _reap_orphaned_testbeds() -> None:
    """Take down the testbeds of killed earlier sessions: their namespaces, addresses and cgroups outlive them
    and would block this session's subnet."""
    import shutil
    for home in orphaned_test_homes():
        res = edgeplace("testbed", "down", home=home)
        assert res.returncode == 0, f"could not take down the testbed a killed session left in {home}: {res.stderr}"
        print(f"\ntook down the testbed a killed session left in {home}: {res.stderr.strip()}")
        shutil.rmtree(home, ignore_errors=True)


def pytest_configure(config):
    if not _held and TEST_HOME.is_dir():
        _hold_session_lock()
    config.addinivalue_line("markers", "lifecycle: brings its own testbed up and down (runs first)")
    config.addinivalue_line("markers", "destructive: breaks the shared testbed (runs last)")
    config.addinivalue_line("markers", "first_on_shared_testbed: needs TaskManagers that ran no other test's jobs")
    os.environ.update(TEST_ENV)


@pytest.fixture(scope="session")
def root_required():
    if os.geteuid() != 0:
        pytest.fail("live tests need root (namespaces, tc, cgroups); run the quick subset: pytest -m 'not live'")
    _reap_orphaned_testbeds()


@pytest.fixture(scope="session")
def _session_testbed(root_required):
    """One edge–cloud testbed (2 edge sites at 8 Mbit/s, 0.5-core edges, 1 cloud) for the whole session."""
    edgeplace("testbed", "down")  # leftovers of an aborted earlier run
    res = edgeplace("testbed", "up", *SHARED_ARGS, *TEST_ARGS)
    assert res.returncode == 0, res.stderr
    print(f"\nshared testbed: {res.stderr.strip().splitlines()[-1]}")
    from experiments.testbed import state as st
    yield st.load()
    res = edgeplace("testbed", "down")
    assert res.returncode == 0, res.stderr


@pytest.fixture
def shared_testbed(_session_testbed, tmp_path):
    """The session's testbed, handed to each test with no job running and every slot free: a test that
    failed half-way (or a loop that redeployed under it) cannot leave its jobs holding the slots the next
    tests need. Leftovers are ended by id and named, so the leak shows in the output."""
    yield _session_testbed
    left = _end_leftover_jobs(tmp_path / "leftover-savepoints")
    if left:
        print(f"\nended {len(left)} job(s) the test left running: {', '.join(left)}")


def _end_leftover_jobs(scratch: Path, timeout: float = 90) -> list[str]:
    """End every job that has not ended (stop with savepoint, else cancel) and wait until all slots are free."""
    import time

    from collectors.rest import FlinkRest
    from placement.flink import end
    rest = FlinkRest("http://127.0.0.1:18081")
    if not rest.reachable():  # a destructive test took the JobManager down: nothing to free
        return []
    left = [j["jid"] for j in rest.get("/jobs/overview")["jobs"]
            if j.get("state") not in ("CANCELED", "FAILED", "FINISHED")]
    for job in left:
        end(rest, job, scratch)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tms = rest.taskmanagers()
        if all(tm["freeSlots"] == tm["slotsNumber"] for tm in tms):
            return left
        time.sleep(0.5)
    busy = {tm["id"]: f"{tm['freeSlots']}/{tm['slotsNumber']}" for tm in rest.taskmanagers()}
    pytest.fail(f"slots still held {timeout:.0f} s after ending the leftover jobs {left}: {busy}")
