"""`edgeplace deploy / where / redeploy`: sequencing of placement checks, submission, verification,
savepoint and rollback on the testbed (or any cluster whose client config dir is given)."""
from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from collectors.rest import FlinkRest
from experiments.errors import EdgeplaceError
from experiments.testbed import state as st
from placement import deploy as dp, schedulercfg
from placement.model import Placement
from queries import options, registry
from queries.topology import OpSpec, all_tasks

Say = Callable[[str], None]


@dataclass
class Target:
    """The cluster to deploy on: its REST API, the client config dir, and whether it is our testbed."""

    rest: FlinkRest
    conf_dir: Path
    testbed: st.State | None = None

    @classmethod
    def local_testbed(cls) -> "Target":
        from experiments.testbed.testbed import client_conf_dir, require, rest_of
        state = require()
        return cls(rest_of(state), client_conf_dir(state), state)


@dataclass
class Deployed:
    job_id: str
    where: dict[str, set[str]]
    phases: dict[str, float] = field(default_factory=dict)


def operators(query: str, job_args: list[str]) -> list[OpSpec]:
    return registry.load(query).topology(options.parse(job_args))


def load_placement(placement: str | None, scfg: str | None, ops: list[OpSpec], target: Target) -> Placement | None:
    if placement and scfg:
        raise EdgeplaceError("give --placement or --schedulercfg, not both")
    if scfg:
        try:
            text = Path(scfg).read_text()
        except OSError as exc:
            raise EdgeplaceError(f"cannot read schedulercfg {scfg}: {exc.strerror}") from exc
        hosts = {tm.id: tm.host for tm in dp.cluster_view(target.rest).values()}
        return schedulercfg.parse(text, all_tasks(ops), hosts, scfg)
    return Placement.read(placement) if placement else None


def deploy(target: Target, query: str, job_args: list[str], placement: Placement | None, say: Say,
           timeout: float = 90, savepoint: str | None = None,
           stop_old: Callable[[], str] | None = None) -> Deployed:
    """Check, submit, verify. Bad placements are rejected before anything is submitted (or stopped).
    With `stop_old` (stops the job being replaced, returns its savepoint), the new job is built while the
    old one stops, and starts from that savepoint."""
    if any(a == "--placement" or a.startswith("--placement=") for a in job_args):
        raise EdgeplaceError("pass the placement with edgeplace's --placement/--schedulercfg, not as a job argument")
    ops = operators(query, job_args)
    t0 = time.monotonic()
    _heal(target, say)
    if placement is not None:
        dp.check(placement, ops, dp.cluster_view(target.rest))
    home = st.home()
    args = list(job_args)
    if placement is not None:
        pdir = home / "placements"
        pdir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=pdir, suffix=".json", delete=False) as fh:
            placement.write(fh.name)
        args = ["--placement", fh.name, *args]
    phases = {"check": time.monotonic() - t0}
    t1 = time.monotonic()
    restore = home / "placements" / f"restore-{os.getpid()}-{time.monotonic_ns()}" if stop_old else None
    if restore is not None:
        restore.parent.mkdir(parents=True, exist_ok=True)
    sub = dp.Submission(registry.script(query), args, target.conf_dir, savepoint, restore)
    if stop_old is not None:
        try:
            sp = stop_old()
        except BaseException:
            sub.abandon()
            raise
        phases["savepoint"] = time.monotonic() - t1
        sub.release(sp)
    job_id = sub.job_id()
    phases["submit"] = time.monotonic() - t1
    say(f"submitted {query} as job {job_id}; verifying placement")
    t2 = time.monotonic()
    dp.save_record(home, job_id, query, job_args, placement)
    where = dp.wait_verified(target.rest, job_id, ops, placement, timeout, tend=lambda: _heal(target, say))
    phases["verify"] = time.monotonic() - t2
    return Deployed(job_id, where, phases)


def redeploy(target: Target, job_id: str, placement: Placement, say: Say, timeout: float = 90) -> Deployed:
    """Stop with savepoint and resubmit with the new placement (the new job is built while the old one
    stops), verify; on failure restore the old placement from the same savepoint."""
    rec = dp.load_record(st.home(), job_id)
    if rec is None:
        raise EdgeplaceError(f"job {job_id} was not deployed by edgeplace here (no record); cannot resubmit it")
    ops = operators(rec["query"], rec["args"])
    dp.check(placement, ops, dp.cluster_view(target.rest))  # before anything is stopped
    old = Placement.from_json(rec["placement"]) if rec["placement"] else None
    t0 = time.monotonic()
    stopped: list[str] = []

    def stop_old() -> str:
        sp = dp.stop_with_savepoint(target.rest, job_id, st.home() / "savepoints")
        stopped.append(sp)
        say(f"stopped {job_id} with savepoint {sp} in {time.monotonic() - t0:.1f} s")
        return sp

    try:
        new = deploy(target, rec["query"], rec["args"], placement, say, timeout, stop_old=stop_old)
    except EdgeplaceError as exc:
        if not stopped:
            raise
        sp = stopped[0]
        say(f"redeploy failed: {exc}")
        say("rolling back to the previous placement from the same savepoint")
        back = deploy(target, rec["query"], rec["args"], old, say, timeout, savepoint=sp)
        raise EdgeplaceError(f"redeploy failed and was rolled back: job {back.job_id} runs the previous "
                             f"placement from savepoint {sp}. Cause: {exc}") from exc
    new.phases = {**new.phases, "total": time.monotonic() - t0}
    return new


def _heal(target: Target, say: Say) -> None:
    if target.testbed is not None:
        from experiments.testbed.testbed import heal
        heal(target.testbed, say)
