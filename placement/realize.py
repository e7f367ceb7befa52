"""Realise a placement on a Flink cluster: check it, submit, verify; redeploy from a savepoint with rollback.

`Realizer` is the one interface the rest of edgeplace uses (the CLI, the runner, calibration, the closed
loop); `placement.flink` holds the REST and `flink run` calls behind it."""
from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from collectors.rest import FlinkRest, FlinkRestError
from common import paths
from common.errors import EdgeplaceError
from common.say import Say, quiet
from placement import flink, records, schedulercfg
from placement.checks import check, cluster_view
from placement.model import Placement
from queries import options, registry
from queries.topology import OpSpec, all_tasks

JOB_PLACEMENT_ARGS = ("--pins", "--placement")
KEEP_SAVEPOINTS = 10  # redeploy savepoints kept under edgeplace's home (the newest; older ones are removed)


@dataclass
class Target:
    """A Flink cluster: its REST API, the config dir of the `flink run` client, and `tend`, which repairs
    the cluster (e.g. restarts TaskManagers that died) before a submission and while one is verified."""

    rest: FlinkRest
    conf_dir: Path
    tend: Callable[[Say], object] | None = None
    flink_dir: Path | None = None  # where Flink, as its own user on its own hosts, may write; None: anywhere

    def flink_side(self, path: Path) -> Path:
        """Where Flink writes (savepoints, job output) what edgeplace would keep at `path`: that path when
        Flink may write anywhere, else a folder of the same name in the cluster's data dir."""
        return path if self.flink_dir is None else self.flink_dir / path.name

    @property
    def local(self) -> bool:
        """Whether what Flink writes is on this machine's file system, where edgeplace made its folder."""
        return self.flink_dir is None


@dataclass
class Deployed:
    job_id: str
    where: dict[str, set[str]]
    phases: dict[str, float] = field(default_factory=dict)


def operators(query: str, job_args: list[str]) -> list[OpSpec]:
    """The logical operators of `query` run with `job_args`."""
    try:
        return registry.load(query).topology(options.parse(job_args))
    except ValueError as exc:  # options.OptionsError, or a query option that is not a number
        raise EdgeplaceError(f"{query}: bad job argument: {exc}") from None


def load_placement(placement: str | None, scfg: str | None, ops: list[OpSpec], rest: FlinkRest) -> Placement | None:
    """A placement from placement JSON or from a schedulercfg file (hosts resolved through the cluster)."""
    if placement and scfg:
        raise EdgeplaceError("give --placement or --schedulercfg, not both")
    if scfg:
        try:
            text = Path(scfg).read_text()
        except OSError as exc:
            raise EdgeplaceError(f"cannot read schedulercfg {scfg}: {exc.strerror}") from exc
        hosts = {tm.id: tm.host for tm in cluster_view(rest).values()}
        return schedulercfg.parse(text, all_tasks(ops), hosts, scfg)
    return Placement.read(placement) if placement else None


class Realizer:
    """deploy / redeploy / end on one target."""

    def __init__(self, target: Target, say: Say = quiet):
        self.target, self.rest, self.say = target, target.rest, say

    def deploy(self, query: str, job_args: list[str], placement: Placement | None, timeout: float = 90,
               savepoint: str | None = None, stop_old: Callable[[], str] | None = None) -> Deployed:
        """Check, submit, verify. Bad placements are rejected before anything is submitted (or stopped).
        With `stop_old` (stops the job being replaced, returns its savepoint), the new job is built while the
        old one stops, and starts from that savepoint."""
        if any(a == k or a.startswith(k + "=") for a in job_args for k in JOB_PLACEMENT_ARGS):
            raise EdgeplaceError("pass the placement with edgeplace's --placement/--schedulercfg, not as a job argument")
        ops = operators(query, job_args)
        t0 = time.monotonic()
        self._tend()
        if placement is not None:
            check(placement, ops, cluster_view(self.rest))
        home = paths.home()
        args, pins = list(job_args), None
        if placement is not None:
            pdir = home / "placements"
            pdir.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("w", dir=pdir, suffix=".json", delete=False) as fh:
                json.dump(placement.pins(), fh)
            pins = Path(fh.name)
            args = ["--pins", fh.name, *args]
        phases = {"check": time.monotonic() - t0}
        t1 = time.monotonic()
        restore = home / "placements" / f"restore-{os.getpid()}-{time.monotonic_ns()}" if stop_old else None
        if restore is not None:
            restore.parent.mkdir(parents=True, exist_ok=True)
        sub = flink.Submission(registry.script(query), args, self.target.conf_dir, savepoint, restore)
        try:
            if stop_old is not None:
                try:
                    sp = stop_old()
                except BaseException:
                    sub.abandon()
                    raise
                phases["savepoint"] = time.monotonic() - t1
                sub.release(sp)
            job_id = sub.job_id()
        except BaseException:
            sub.kill()  # Ctrl-C or a failure: the client must not live on, nor submit a job nobody waits for
            raise
        finally:  # the client has read it: the job graph holds the pins now
            if pins is not None:
                pins.unlink(missing_ok=True)
        phases["submit"] = time.monotonic() - t1
        self.say(f"submitted {query} as job {job_id}; verifying placement")
        t2 = time.monotonic()
        records.save_record(home, job_id, query, job_args, placement)
        try:
            where = flink.wait_verified(self.rest, job_id, ops, placement, timeout, tend=self._tend)
        except BaseException:  # not verified (a REST error, Ctrl-C): no half-realised job is left running
            flink.cancel(self.rest, job_id)
            raise
        phases["verify"] = time.monotonic() - t2
        return Deployed(job_id, where, phases)

    def redeploy(self, job_id: str, placement: Placement, timeout: float = 90) -> Deployed:
        """Stop with savepoint and resubmit with the new placement (the new job is built while the old one
        stops), verify; on failure restore the old placement from the same savepoint."""
        rec = records.load_record(paths.home(), job_id)
        if rec is None:
            raise EdgeplaceError(f"job {job_id} was not deployed by edgeplace here (no record); cannot resubmit it")
        ops = operators(rec["query"], rec["args"])
        check(placement, ops, cluster_view(self.rest))  # before anything is stopped
        old = Placement.from_json(rec["placement"]) if rec["placement"] else None
        t0, since = time.monotonic(), time.time()
        stopped: list[str] = []

        def stop_old() -> str:
            try:
                sp = flink.stop_with_savepoint(self.rest, job_id, self._savepoints, make=self.target.local)
            except flink.StoppedThenInterrupted as exc:
                stopped.append(exc.savepoint)
                raise
            stopped.append(sp)
            self.say(f"stopped {job_id} with savepoint {sp} in {time.monotonic() - t0:.1f} s")
            return sp

        try:
            new = self.deploy(rec["query"], rec["args"], placement, timeout, stop_old=stop_old)
        except (EdgeplaceError, FlinkRestError, KeyboardInterrupt) as exc:
            if not stopped:
                raise
            back = self._roll_back(rec, old, stopped[0], since, timeout, exc)
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise EdgeplaceError(f"redeploy failed and was rolled back: job {back.job_id} runs the previous "
                                 f"placement from savepoint {stopped[0]}. Cause: {exc}") from exc
        new.phases = {**new.phases, "total": time.monotonic() - t0}
        records.prune(self._savepoints, KEEP_SAVEPOINTS)
        return new

    def _roll_back(self, rec: dict, old: Placement | None, savepoint: str, since: float, timeout: float,
                   cause: BaseException) -> Deployed:
        """The old job stopped but the new one is not verified: cancel whatever the failed attempt started,
        then resubmit the previous placement from the same savepoint."""
        why = "interrupted" if isinstance(cause, KeyboardInterrupt) else f"failed: {cause}"
        self.say(f"redeploy {why}; rolling back to the previous placement from savepoint {savepoint}")
        try:
            for job in flink.jobs_started_since(self.rest, since):
                flink.cancel(self.rest, job)
            return self.deploy(rec["query"], rec["args"], old, timeout, savepoint=savepoint)
        except (EdgeplaceError, FlinkRestError) as exc:
            raise EdgeplaceError(f"redeploy {why}, and the rollback failed too ({exc}); no job runs. Start the "
                                 f"previous placement by hand from savepoint {savepoint}") from exc

    def end(self, job_id: str, scratch: Path, interrupted: bool = False) -> None:
        """Stop the job with a savepoint in `scratch` (then discard it), then repair the cluster. `interrupted`
        (Ctrl-C): cancel it at once, and leave the repair to the next deployment. Its state is not wanted, and
        a savepoint's barrier waits behind every record queued for a thin link (Ctrl-C took about 110 s there)."""
        if interrupted:
            self.say(f"interrupted: cancelling job {job_id}")
            flink.cancel(self.rest, job_id)
            return
        flink.end(self.rest, job_id, self.target.flink_side(scratch), make=self.target.local)
        self._tend()

    @property
    def _savepoints(self) -> Path:
        return self.target.flink_side(paths.home() / "savepoints")

    def _tend(self) -> None:
        if self.target.tend is not None:
            self.target.tend(self.say)
