"""Flink settings that every edgeplace job and cluster runs with, and that the cost model prices.

Every operator of an edgeplace job runs its function in a PyFlink worker. The operator's Java task hands
inputs to the worker in bundles, then waits for the bundle's results before it reads more input. While it
waits, only the receiver's network credits can cross a link towards it: `RECEIVE_WINDOW_BYTES`. These are
the exclusive buffers of a channel plus the floating buffers of its gate, one memory segment each."""
from __future__ import annotations

SEGMENT_BYTES = 4096  # taskmanager.memory.segment-size of the testbed and Ansible clusters ("4kb")
BUFFERS_PER_CHANNEL = 2  # Flink's default taskmanager.network.memory.buffers-per-channel
FLOATING_BUFFERS_PER_GATE = 8  # Flink's default taskmanager.network.memory.floating-buffers-per-gate
RECEIVE_WINDOW_BYTES = (BUFFERS_PER_CHANNEL + FLOATING_BUFFERS_PER_GATE) * SEGMENT_BYTES

BUNDLE_RECORDS = 200  # python.fn-execution.bundle.size of every job
BUNDLE_S = 0.1  # python.fn-execution.bundle.time of every job (100 ms)

# gauges every job's Python functions register (queries.runtime.WorkerGauges): the pid of the Python worker
# process they run in and the CPU milliseconds it has used; the collector reads them (collectors.sampler)
WORKER_CPU_MS, WORKER_PID = "workerCpuMs", "workerPid"


def segment_size() -> str:
    """SEGMENT_BYTES as Flink's config value."""
    return f"{SEGMENT_BYTES // 1024}kb"
