"""Flink config.yaml contents for each testbed process (pure: dicts in, dicts out)."""
from __future__ import annotations

from common import flinksettings
from placement.flinkdist import CLIENT_JAVA_OPTS, PYTHON_PARENT_FIRST
from experiments.testbed.spec import Member, TestbedSpec, gateway

# edge TaskManagers run on a fraction of a core behind a thin link: more time than the 50 s default before
# declaring them dead, but not so long that a restarted TaskManager's stale registration lingers
HEARTBEAT_TIMEOUT_MS = 60000
# a TaskManager's own RPCs to the JobManager (an operator event at each checkpoint, task state updates) cross
# the same link, behind whatever it queues: at 0.15 Mbit/s with the link full of records, q5's source failed
# with its checkpoint event's ask timed out after Flink's default 10 s. They get as long as a heartbeat.
RPC_TIMEOUT = f"{HEARTBEAT_TIMEOUT_MS} ms"
# an idle slot's timeout falls back to the RPC timeout in Flink: kept at its default
SLOT_TIMEOUT = "10 s"
# the JobManager's REST handlers ask other components within this; so does its metric fetcher, which starts
# no new fetch until the last one ended: one asking a TaskManager that died hung for Flink's default 10 min,
# and every metric REST serves stood still that long (a TaskManager killed while a job was deployed)
WEB_TIMEOUT_MS = HEARTBEAT_TIMEOUT_MS
# a TaskManager that starts before the JobManager listens fails to reach it, and by default tries again only
# after 10 s: a testbed came up in 11 s or in 20 s, by which of them was first
REGISTRATION_ERROR_DELAY_MS = 1000


def common(spec: TestbedSpec, java_opts: str) -> dict:
    return {
        "env.java.opts.all": java_opts,
        "jobmanager.rpc.address": gateway(spec),
        "jobmanager.rpc.port": spec.rpc_port,
        "rest.port": spec.rest_port,
        "rest.address": "127.0.0.1",
    }


def jobmanager(spec: TestbedSpec, java_opts: str, tmp_dir: str) -> dict:
    return {
        **common(spec, java_opts),
        # RPC and blob server on the testbed's own bridge address only (the edge namespaces reach it there);
        # REST, which accepts jobs without authentication, on loopback only: edgeplace is its only client
        "jobmanager.bind-host": gateway(spec),
        "jobmanager.memory.process.size": "1024m",
        "jobmanager.execution.failover-strategy": "region",
        "rest.bind-address": "127.0.0.1",
        "web.submit.enable": False,  # no jar upload through the web UI: `flink run` submits through /jobs
        # flink-python is in its lib too: Flink 2 builds the job graph here, from PyFlink's operators
        "classloader.parent-first-patterns.additional": PYTHON_PARENT_FIRST,
        "web.tmpdir": tmp_dir,
        "io.tmp.dirs": tmp_dir,
        "parallelism.default": 1,
        "heartbeat.timeout": HEARTBEAT_TIMEOUT_MS,
        "web.timeout": WEB_TIMEOUT_MS,
    }


def taskmanager(spec: TestbedSpec, m: Member, java_opts: str, tmp_dir: str) -> dict:
    return {
        **common(spec, java_opts),
        "taskmanager.resource-id": m.id,
        "taskmanager.host": m.host,
        "taskmanager.bind-host": m.host,
        "taskmanager.numberOfTaskSlots": m.slots,
        "taskmanager.memory.process.size": f"{m.memory_mb}m",
        "taskmanager.jvm-exit-on-oom": True,
        "pekko.ask.timeout": RPC_TIMEOUT,
        "taskmanager.slot.timeout": SLOT_TIMEOUT,
        "cluster.registration.error-delay": REGISTRATION_ERROR_DELAY_MS,
        "taskmanager.network.memory.buffer-debloat.enabled": True,
        # 4 kB network buffers: ~8× less data in flight than the 32 kB default, so on a thin link backpressure
        # reaches the sources in seconds rather than tens of seconds
        "taskmanager.memory.segment-size": flinksettings.segment_size(),
        # flink-python is on the TaskManager's classpath (flinkdist.python_lib): its Beam runtime, like
        # Flink's own classes, then comes from there rather than from each job's copy
        "classloader.parent-first-patterns.additional": PYTHON_PARENT_FIRST,
        "external-resources": m.resource,
        f"external-resource.{m.resource}.amount": m.slots,
        "io.tmp.dirs": tmp_dir,
    }


def client(spec: TestbedSpec, java_opts: str, python: str, worker_python: str | None = None) -> dict:
    """Config for the `flink` CLI client that submits jobs to this testbed; `worker_python` (default `python`)
    starts the jobs' Python UDF workers on the TaskManagers."""
    return {
        **common(spec, java_opts),
        "env.java.opts.client": CLIENT_JAVA_OPTS,
        "python.client.executable": python,
        "python.executable": worker_python or python,
    }
