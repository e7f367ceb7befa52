"""Thin I/O against a Flink cluster: submit a job (`flink run`), wait until every subtask runs where it was
planned, cancel, stop with a savepoint, end gently."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Callable

from collectors.attribution import actual
from collectors.rest import FlinkRest
from common.errors import EdgeplaceError
from placement import flinkdist
from placement.model import Placement
from queries.topology import OpSpec


class Submission:
    """`flink run -d -py script args`, started at once. With `restore_file`, the client builds the job and
    then waits until `release(savepoint)` names the savepoint to start from, so a redeploy builds the new
    job while the old one stops (the job option --restore-from-file)."""

    def __init__(self, script: Path, args: list[str], conf_dir: Path, savepoint: str | None = None,
                 restore_file: Path | None = None):
        cmd = [str(flinkdist.flink_home() / "bin" / "flink"), "run", "-d"]
        if savepoint:
            cmd += ["-s", savepoint]
        cmd += ["-py", str(script), *args]
        self.restore_file = restore_file
        if restore_file is not None:
            restore_file.unlink(missing_ok=True)
            cmd += ["--restore-from-file", str(restore_file)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env=flinkdist.client_env(conf_dir),
                                     start_new_session=True)

    def release(self, savepoint: str) -> None:
        """Let the waiting client submit, restoring from `savepoint` ("" = do not submit)."""
        if self.restore_file is not None:
            tmp = self.restore_file.with_name(self.restore_file.name + ".tmp")
            tmp.write_text(savepoint)
            tmp.rename(self.restore_file)  # atomic: the client never reads half a path

    def abandon(self) -> None:
        """Nothing is to be submitted: tell a waiting client so, and end it (by its PID) if it lingers."""
        self.release("")
        try:
            self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            self.proc.communicate()
        finally:
            if self.restore_file is not None:
                self.restore_file.unlink(missing_ok=True)

    def kill(self) -> None:
        """End the client now (its whole process group, by its PID), so it submits nothing more."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, 9)
            except ProcessLookupError:
                pass
        self.proc.wait()
        if self.restore_file is not None:
            self.restore_file.unlink(missing_ok=True)

    def job_id(self, timeout: float = 300) -> str:
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            self.proc.communicate()
            raise EdgeplaceError(f"flink run did not finish within {timeout:.0f} s")
        finally:
            if self.restore_file is not None:
                self.restore_file.unlink(missing_ok=True)
        m = re.search(r"JobID ([0-9a-f]{32})", out)
        if self.proc.returncode != 0 or not m:
            raise EdgeplaceError(run_failure(out, self.proc.returncode))
        return m.group(1)


def run_failure(out: str, code: int) -> str:
    """What a failed `flink run` says: the job script's own Python error when it raised one (the client
    prints the script's traceback before Flink's Java stack, which only says that Python exited), with the
    frame that raised it; else the last lines of the client's output."""
    lines = out.strip().splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last)")]
    if starts:
        tb = lines[starts[-1]:]
        end = next((i for i, line in enumerate(tb[1:], 1) if line and not line[0].isspace()), None)
        if end is not None:
            frame = next((l.strip() for l in reversed(tb[:end]) if l.strip().startswith("File ")), "")
            return (f"flink run failed (exit {code}): the job script raised {tb[end].strip()}"
                    + (f" ({frame})" if frame else ""))
    tail = "\n".join(lines[-12:])
    return f"flink run failed (exit {code}):\n{tail}"


def submit(script: Path, args: list[str], conf_dir: Path, savepoint: str | None = None) -> str:
    """`flink run -d -py script args` (from a savepoint if given); returns the job id."""
    return Submission(script, args, conf_dir, savepoint).job_id()


def wait_verified(rest: FlinkRest, job_id: str, ops: list[OpSpec], placement: Placement | None,
                  timeout: float, tend: Callable[[], object] | None = None,
                  tend_every: float = 3.0) -> dict[str, set[str]]:
    """Wait until every subtask runs (on its planned TaskManager); on timeout cancel and say what is missing.
    `tend` (e.g. restart TaskManagers that died) runs every `tend_every` seconds while waiting: a TaskManager
    that was still shutting down when the job was submitted would otherwise leave its tasks unscheduled."""
    deadline = time.monotonic() + timeout
    next_tend = time.monotonic() + tend_every
    where: dict[str, set[str]] = {}
    while time.monotonic() < deadline:
        if tend is not None and time.monotonic() >= next_tend:
            tend()
            next_tend = time.monotonic() + tend_every
        state = rest.job(job_id)["state"]
        if state == "FINISHED":  # a short bounded job: subtasks still report where they ran
            where = actual(rest, job_id, ops, ran=True)
            return _check_where(rest, job_id, where, placement)
        if state in ("FAILED", "CANCELED"):
            cancel(rest, job_id)
            raise EdgeplaceError(f"job {job_id} ended as {state} before it was verified"
                                 + _exceptions(rest, job_id))
        where = actual(rest, job_id, ops)
        if all("" not in tms for tms in where.values()) and _all_running(rest, job_id):
            return _check_where(rest, job_id, where, placement)
        time.sleep(0.5)
    cancel(rest, job_id)
    unplaced = [u for u, tms in where.items() if "" in tms]
    detail = "; ".join(f"{u} (wanted on {placement.assignments.get(u) if placement else 'any'}"
                       f"{', resource ' + placement.resource_of(placement.assignments[u]) if placement and u in placement.assignments else ''})"
                       for u in unplaced) or "tasks did not reach RUNNING"
    free = ", ".join(f"{t['id']} {t['freeSlots']}/{t['slotsNumber']}" for t in rest.taskmanagers())
    raise EdgeplaceError(f"the cluster could not realise the placement within {timeout:.0f} s; job {job_id} "
                         f"cancelled. Not scheduled: {detail}. Free slots then: {free}")


def _check_where(rest: FlinkRest, job_id: str, where: dict[str, set[str]], placement: Placement | None):
    if placement is None:
        return where
    wrong = {u: tms for u, tms in where.items() if u in placement.assignments and tms != {placement.assignments[u]}}
    if not wrong:
        return where
    cancel(rest, job_id)
    raise EdgeplaceError(f"job {job_id} ran but not as planned, so it was cancelled: " + "; ".join(
        f"{u} on {', '.join(sorted(t))} (planned {placement.assignments.get(u)})" for u, t in wrong.items()))


def _all_running(rest: FlinkRest, job_id: str) -> bool:
    return all(v["status"] == "RUNNING" for v in rest.job(job_id)["vertices"])


def _exceptions(rest: FlinkRest, job_id: str) -> str:
    try:
        exc = rest.get(f"/jobs/{job_id}/exceptions")
        root = (exc.get("exceptionHistory", {}).get("entries") or [{}])[0].get("exceptionName", "")
        return f": {root}" if root else ""
    except Exception:
        return ""


def cancel(rest: FlinkRest, job_id: str) -> None:
    """Cancel a job and wait (30 s at most) until it has ended; a JobManager that does not answer ends the wait."""
    try:
        rest.patch(f"/jobs/{job_id}", mode="cancel")
    except Exception:
        pass
    final_state(rest, job_id)


def final_state(rest: FlinkRest, job_id: str, timeout: float = 30) -> str | None:
    """The state a job ends in (CANCELED, FAILED, FINISHED), waiting `timeout` s at most; None when it has not
    ended by then or the JobManager does not answer. A stop-with-savepoint completes a moment before its job
    has FINISHED."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = rest.job(job_id)["state"]
        except Exception:
            return None
        if state in ("CANCELED", "FAILED", "FINISHED"):
            return state
        time.sleep(0.3)
    return None


def jobs_started_since(rest: FlinkRest, since: float) -> list[str]:
    """Ids of jobs not yet ended that started at or after `since` (epoch seconds)."""
    return [j["jid"] for j in rest.get("/jobs/overview")["jobs"]
            if j.get("start-time", 0) >= since * 1000 and j.get("state") not in ("CANCELED", "FAILED", "FINISHED")]


class StoppedThenInterrupted(KeyboardInterrupt):
    """Ctrl-C came while a stop-with-savepoint was under way: the stop was seen through (the job has ended),
    and `savepoint` is where its state is."""

    def __init__(self, savepoint: str):
        super().__init__(f"interrupted after the job stopped with savepoint {savepoint}")
        self.savepoint = savepoint


def stop_with_savepoint(rest: FlinkRest, job_id: str, target_dir: Path, timeout: float = 120,
                        make: bool = True) -> str:
    """Stop the job with a savepoint; returns the savepoint path. Once the stop is requested, Ctrl-C does
    not abandon it (the job would end with nobody knowing its savepoint): it raises StoppedThenInterrupted
    when the savepoint is complete. `make`: create `target_dir` here first (not where Flink runs as its
    own user on other hosts: the JobManager makes it there, as that user)."""
    rest.running_job(job_id)
    target_dir = target_dir.resolve()  # Flink reads file://results/… as host "results"
    if make:
        target_dir.mkdir(parents=True, exist_ok=True)
    trigger = rest.post(f"/jobs/{job_id}/stop", {"targetDirectory": f"file://{target_dir}", "drain": False})
    deadline = time.monotonic() + timeout
    interrupted = False
    while time.monotonic() < deadline:
        try:
            status = rest.get(f"/jobs/{job_id}/savepoints/{trigger['request-id']}")
            if status["status"]["id"] == "COMPLETED":
                op = status.get("operation", {})
                if "location" not in op:
                    raise EdgeplaceError(f"stop-with-savepoint of {job_id} failed: "
                                         f"{op.get('failure-cause', {}).get('stack-trace', '')[:300]}")
                if interrupted:
                    raise StoppedThenInterrupted(op["location"])
                return op["location"]
            time.sleep(0.2)
        except StoppedThenInterrupted:
            raise
        except KeyboardInterrupt:
            interrupted = True
    raise EdgeplaceError(f"stop-with-savepoint of {job_id} did not complete within {timeout:.0f} s")


def end(rest: FlinkRest, job_id: str, scratch: Path, timeout: float = 60, make: bool = True) -> None:
    """End a job gently: stop with a savepoint (then discard it, where this machine sees it), falling back
    to cancel. Cancelling a Python job can take its TaskManager down (Beam's "Reference count must not be
    negative")."""
    try:
        path = stop_with_savepoint(rest, job_id, scratch, timeout, make)
    except Exception:
        cancel(rest, job_id)
        return
    shutil.rmtree(path.removeprefix("file:"), ignore_errors=True)
    if scratch.is_dir() and not any(scratch.iterdir()):
        scratch.rmdir()
