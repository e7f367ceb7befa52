"""Record what a real Flink 2.3 answers about a running job's checkpoints, for the replay test of
`collectors.checkpoints` (tests/test_checkpoints.py). Against a job deployed on a live testbed:

    .venv/bin/python -m tests.recorded.record_checkpoints --rest http://127.0.0.1:8081 --job JOBID \\
        --out tests/recorded/checkpoints-qa-edge-max.json

Stores the job, its plan, its checkpointing config, the checkpoint overview and the details of every checkpoint in
the overview's history, and the JobManager's configuration, each under the path it was read from."""
from __future__ import annotations

import argparse
import json

from collectors.rest import FlinkRest


def main() -> None:
    a = argparse.ArgumentParser()
    a.add_argument("--rest", required=True)
    a.add_argument("--job", required=True)
    a.add_argument("--out", required=True)
    args = a.parse_args()
    rest = FlinkRest(args.rest)
    base = f"/jobs/{args.job}"
    answers = {base: rest.get(base), f"{base}/plan": rest.get(f"{base}/plan"),
               f"{base}/checkpoints/config": rest.get(f"{base}/checkpoints/config"),
               "/jobmanager/config": rest.get("/jobmanager/config")}
    overview = answers[f"{base}/checkpoints"] = rest.get(f"{base}/checkpoints")
    for c in overview.get("history", []):
        path = f"{base}/checkpoints/details/{c['id']}"
        answers[path] = rest.get(path)
    with open(args.out, "w") as fh:
        json.dump({"job": args.job, "answers": answers}, fh, indent=1)


if __name__ == "__main__":
    main()
