"""Taking the testbed down: end every process it recorded (and their descendants, process groups and
cgroup members), then remove the recorded cgroups, namespaces, links and folders in reverse order."""
from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import psutil

from common.errors import EdgeplaceError
from common.say import Say
from experiments.testbed import cgroups, network, sshhosts, state as st
from experiments.testbed.processes import ProcRef, same_group, started, terminate, with_descendants


NETNS = re.compile(r"^ep\d{1,3}-(edge|cloud)-\d{1,3}$")             # spec._netns
LINK = re.compile(r"^(epbr\d{1,3}|ep\d{1,3}[ec]\d{1,3}[hn])$")  # spec.bridge_name, site_links, cloud_links


def owned(r: dict) -> bool:
    """Whether a recorded resource is one the testbed can have made: its folders under edgeplace's home,
    its cgroups under edgeplace/, interfaces and namespaces by its naming, an SSH-host testbed's installs and
    the Flink user their provisioning made. A state file that lists anything
    else (damaged, or planted) does not make `down` remove it."""
    if r["kind"] == "dir":
        path = Path(r["path"]).resolve()
        return path.is_relative_to((st.home() / "testbed" / "run").resolve()) or (
            path.parent == sshhosts.HOSTS_BASE)  # an SSH-host testbed's installs (one folder per subnet)
    if r["kind"] == "cgroup":
        rel = Path(r["path"]).resolve()
        return any(rel.is_relative_to(base / "edgeplace") and rel != base / "edgeplace"
                   for base in (cgroups.ROOT, cgroups.ROOT / "cpu"))
    if r["kind"] == "netns":
        return bool(NETNS.match(r["name"]))
    if r["kind"] == "user":
        return r["name"] == sshhosts.FLINK_USER
    if r["kind"] == "link":
        return bool(LINK.match(r["name"]))
    return r["kind"] == "process"


def teardown(state: st.State, say: Say) -> None:
    t0 = time.monotonic()
    errors: list[str] = []
    foreign = [r for r in state.resources if not owned(r)]
    for r in foreign:
        say(f"WARNING: the state file lists {r['kind']} {r.get('path') or r.get('name')!r}, which is not the "
            "testbed's own; left alone")
    state.resources = [r for r in state.resources if owned(r)]
    procs = testbed_processes(state)
    if procs:
        terminate(procs)
    for r in reversed(state.resources):
        try:
            if r["kind"] == "cgroup":
                cgroups.remove(Path(r["path"]))
            elif r["kind"] == "netns":
                network.delete_netns(r["name"])
            elif r["kind"] == "link":
                network.delete_link(r["name"])
            elif r["kind"] == "dir":
                shutil.rmtree(r["path"], ignore_errors=True)
            elif r["kind"] == "user":
                sshhosts.remove_user(r["name"])
        except EdgeplaceError as exc:
            errors.append(str(exc))
    if errors:
        state.save()
        raise EdgeplaceError("testbed down could not remove everything: " + "; ".join(errors))
    if sshhosts.HOSTS_BASE.is_dir() and not any(sshhosts.HOSTS_BASE.iterdir()):
        sshhosts.HOSTS_BASE.rmdir()
    st.forget()
    say(f"testbed down: {len(procs)} processes ended, {len(state.resources)} recorded resources removed "
        f"in {time.monotonic() - t0:.1f} s")


def testbed_processes(state: st.State) -> list[psutil.Process]:
    """Recorded processes, their descendants, their process groups and everything in their cgroups."""
    found: dict[int, psutil.Process] = {}
    for p in state.of_kind("process"):
        ref = ProcRef.recorded(p)
        live = ref.alive()
        if live:
            for q in with_descendants(live):
                found[q.pid] = q
        for q in same_group(ref.pid):  # started after it: not an older process that reused the group id
            t = started(q.pid)
            if t is not None and t >= ref.started - 0.05:
                found[q.pid] = q
    for r in state.of_kind("netns"):  # whatever runs in our namespaces (e.g. started over SSH)
        for pid in network.netns_pids(r["name"]):
            try:
                found[pid] = psutil.Process(pid)
            except psutil.Error:
                pass
    for r in state.of_kind("cgroup"):
        for pid in cgroups.pids(Path(r["path"])):
            try:
                found[pid] = psutil.Process(pid)
            except psutil.Error:
                pass
    found.pop(os.getpid(), None)
    return list(found.values())


def record_workers(state: st.State) -> list[int]:
    """PIDs in the testbed's cgroups/process groups that it did not start itself (Python UDF workers)."""
    started = {p["pid"] for p in state.of_kind("process")}
    extra = sorted(p.pid for p in testbed_processes(state)
                   if p.pid not in started and _is_python(p))
    return extra


def _is_python(p: psutil.Process) -> bool:
    try:
        return "python" in p.name() or "beam" in p.name() or "pyflink" in " ".join(p.cmdline())
    except psutil.Error:
        return False
