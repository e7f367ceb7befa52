"""Record what a real Flink 2.3 answers on GET /taskmanagers while TaskManagers register, for the tests of
when a cluster counts as whole (tests/test_registration.py). Start it, then start the testbed:

    .venv/bin/python -m tests.recorded.record_registration --rest http://127.0.0.1:8081 \\
        --out tests/recorded/taskmanagers-registering.json &
    .venv/bin/edgeplace testbed up

It polls every 20 ms until `--expect` TaskManagers are listed, each with an external resource, and keeps
each distinct answer in order."""
from __future__ import annotations

import argparse
import json
import time

from collectors.rest import FlinkRest
from placement.checks import ready


def main() -> None:
    a = argparse.ArgumentParser()
    a.add_argument("--rest", required=True)
    a.add_argument("--out", required=True)
    a.add_argument("--expect", type=int, default=2, help="TaskManagers the cluster will have")
    a.add_argument("--timeout", type=float, default=180)
    args = a.parse_args()
    rest = FlinkRest(args.rest, timeout=1.0, retries=0)
    answers: list[list[dict]] = []
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        try:
            tms = rest.taskmanagers()
        except Exception:
            tms = None
        if tms is not None and (not answers or tms != answers[-1]):
            answers.append(tms)
        if tms is not None and len(tms) >= args.expect and all(map(ready, tms)):
            break
        time.sleep(0.02)
    with open(args.out, "w") as fh:
        json.dump({"recorded": "GET /taskmanagers while TaskManagers registered", "answers": answers}, fh, indent=1)
    print(f"{len(answers)} distinct answers written to {args.out}")


if __name__ == "__main__":
    main()
