"""Record what a real Flink 2.3 answers while `collectors.sampler.sample` polls a running job, for the
replay tests (tests/test_collector_replay.py). Run it against a job deployed on a live testbed:

    .venv/bin/python -m tests.recorded.record --rest http://127.0.0.1:8081 --job JOBID --seconds 30 \\
        --out tests/recorded/q2-cloud-only.json

Every GET the sampler makes is stored in order (path, query parameters, JSON answer)."""
from __future__ import annotations

import argparse
import json

from collectors.rest import FlinkRest
from collectors.sampler import sample


class Recording(FlinkRest):
    def __post_init__(self) -> None:
        super().__post_init__()
        self.calls: list[dict] = []

    def quick(self) -> "Recording":
        return self

    def request(self, method, path, **kwargs):
        answer = super().request(method, path, **kwargs)
        self.calls.append({"method": method, "path": path, "params": kwargs.get("params"), "answer": answer})
        return answer


def main() -> None:
    a = argparse.ArgumentParser()
    a.add_argument("--rest", required=True)
    a.add_argument("--job", required=True)
    a.add_argument("--seconds", type=float, default=30)
    a.add_argument("--out", required=True)
    args = a.parse_args()
    rest = Recording(args.rest)
    sample(rest, args.job, args.seconds, interval=2.5)
    with open(args.out, "w") as fh:
        json.dump({"job": args.job, "flink": rest.get("/config")["flink-version"], "calls": rest.calls}, fh)
    print(f"{len(rest.calls)} calls recorded to {args.out}")


if __name__ == "__main__":
    main()
