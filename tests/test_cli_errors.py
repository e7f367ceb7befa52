"""Bad input to the CLI: one clear line on stderr, exit != 0, nothing left behind."""
import socket

import pytest

from experiments.testbed import state as st
from tests.conftest import TEST_ARGS, edgeplace


@pytest.fixture(autouse=True)
def machine_without_a_testbed(tmp_path, monkeypatch):
    """These tests are about a machine with no testbed: a home of their own, whatever else the session runs."""
    monkeypatch.setenv("EDGEPLACE_HOME", str(tmp_path / "home"))


@pytest.mark.parametrize("args, fragment", [
    (["--edge", "-1"], "--edge must be"),
    (["--wan-mbit", "0"], "--wan-mbit must be"),
    (["--edge-cpu", "-2"], "--edge-cpu must be"),
    (["--subnet", "192.0.2.0/24"], "--subnet"),
    (["--subnet", "8.8.8.0/24"], "--subnet"),
    (["--edge", "2", "--site-cpu", "edge-9=0.2"], "--site-cpu names 'edge-9'"),
    (["--site-cpu", "edge-1"], "--site-cpu: takes SITE=CORES"),
])
def test_bad_up_arguments(args, fragment):
    res = edgeplace("testbed", "up", *TEST_ARGS, *args)
    assert res.returncode in (1, 2)  # 2: click's usage errors
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0] and lines[0].startswith("edgeplace: error:")
    assert st.load() is None


def test_port_in_use_is_reported_and_nothing_is_started():
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        port = s.getsockname()[1]
        res = edgeplace("testbed", "up", *TEST_ARGS, "--rest-port", str(port), "--no-isolation")
    assert res.returncode == 1
    assert f"port {port} (--rest-port) is in use" in res.stderr.strip().splitlines()[-1]
    assert st.load() is None


def test_status_and_wan_without_a_testbed_fail_clearly():
    for args in (["testbed", "status"], ["testbed", "wan", "--mbit", "4"]):
        res = edgeplace(*args)
        assert res.returncode == 1 and "no testbed is up" in res.stderr


def test_down_without_a_testbed_is_a_no_op():
    res = edgeplace("testbed", "down")
    assert res.returncode == 0 and "nothing to remove" in res.stderr


@pytest.mark.live
def test_subnet_overlapping_a_machine_address_is_refused(root_required):
    """127.0.0.0/8 is not RFC 1918, so use a private /24 we add to lo for the duration of the test."""
    import subprocess
    subprocess.run(["ip", "addr", "add", "10.213.99.1/24", "dev", "lo"], check=True)
    try:
        res = edgeplace("testbed", "up", *TEST_ARGS, "--subnet", "10.213.99.0/24")
    finally:
        subprocess.run(["ip", "addr", "del", "10.213.99.1/24", "dev", "lo"], check=True)
    assert res.returncode == 1 and "overlaps 10.213.99.0/24 already on lo" in res.stderr
    assert st.load() is None
