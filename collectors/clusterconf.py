"""What the running cluster's JobManager is configured with, read through its REST API (`/jobmanager/config`)."""
from __future__ import annotations

import re

from collectors.rest import FlinkRest, FlinkRestError

HEARTBEAT_DEFAULT_S = 50.0  # Flink's heartbeat.timeout when the cluster does not set it
_UNITS_S = {"": 0.001, "ms": 0.001, "milli": 0.001, "millis": 0.001, "millisecond": 0.001, "milliseconds": 0.001,
            "s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0,
            "min": 60.0, "m": 60.0, "minute": 60.0, "minutes": 60.0,
            "h": 3600.0, "hour": 3600.0, "hours": 3600.0}


def duration_s(text: str) -> float | None:
    """Seconds in one of Flink's duration values ("60000" is milliseconds, "60 s", "1 min"); None when it
    is not one."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*", str(text).lower())
    if m is None or m.group(2) not in _UNITS_S:
        return None
    return float(m.group(1)) * _UNITS_S[m.group(2)]


def heartbeat_timeout_s(rest: FlinkRest) -> float:
    """The cluster's heartbeat.timeout in seconds: Flink's default where it is not set or cannot be read."""
    try:
        entries = rest.get("/jobmanager/config")
    except FlinkRestError:
        return HEARTBEAT_DEFAULT_S
    value = next((e.get("value") for e in entries if isinstance(e, dict) and e.get("key") == "heartbeat.timeout"),
                 None) if isinstance(entries, list) else None
    seconds = duration_s(value) if value is not None else None
    return seconds if seconds is not None and seconds > 0 else HEARTBEAT_DEFAULT_S
