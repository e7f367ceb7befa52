"""Thin Flink REST client: timeouts, retries with back-off, and typed errors."""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass

import requests


class FlinkRestError(Exception):
    """Base of the REST client's errors; the message is fit for a user."""


class JobManagerUnreachable(FlinkRestError):
    pass


class JobNotFound(FlinkRestError):
    pass


class JobNotRunning(FlinkRestError):
    pass


def flink_says(body: str, limit: int = 300) -> str:
    """What a Flink error answer says, fit for one line: the first line of its first error, without the Java
    exception's class name and stack (`{"errors": ["org…RestHandlerException: Bad request, …\\n\\tat …"]}`)."""
    try:
        errors = json.loads(body).get("errors") or []
        text = str(errors[0]) if errors else body
    except (ValueError, AttributeError):
        text = body
    first = text.strip().splitlines()[0] if text.strip() else "(no message)"
    return re.sub(r"^(?:[\w$]+\.)+[\w$]*(?:Exception|Error): ", "", first)[:limit]


@dataclass
class FlinkRest:
    """`FlinkRest("http://127.0.0.1:8081").get("/overview")`."""

    base_url: str = "http://127.0.0.1:8081"
    timeout: float = 5.0
    retries: int = 3
    backoff: float = 0.5

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self._session = requests.Session()

    def request(self, method: str, path: str, **kwargs) -> dict | list:
        url = self.base_url + path
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            try:
                resp = self._session.request(method, url, timeout=self.timeout, **kwargs)
            except requests.RequestException as exc:
                last = exc
                if attempt < self.retries:
                    time.sleep(self.backoff * 2 ** attempt)
                continue
            if resp.status_code == 404 and path.startswith("/jobs/"):
                raise JobNotFound(f"job {path.split('/')[2]} is unknown to the JobManager at {self.base_url}")
            if resp.status_code >= 500 and attempt < self.retries:
                last = FlinkRestError(f"{method} {path}: HTTP {resp.status_code}: {flink_says(resp.text)}")
                time.sleep(self.backoff * 2 ** attempt)
                continue
            if resp.status_code >= 400:
                raise FlinkRestError(f"{method} {path}: HTTP {resp.status_code}: {flink_says(resp.text)}")
            return resp.json() if resp.content else {}
        raise JobManagerUnreachable(f"JobManager REST API at {self.base_url} is unreachable ({last})")

    def get(self, path: str, **params) -> dict | list:
        return self.request("GET", path, params=params or None)

    def post(self, path: str, body: dict | None = None) -> dict | list:
        return self.request("POST", path, json=body or {})

    def patch(self, path: str, **params) -> dict | list:
        return self.request("PATCH", path, params=params or None)

    def quick(self) -> "FlinkRest":
        """The same API with a short timeout and no retries (for polls that must not stall)."""
        return FlinkRest(self.base_url, timeout=2.0, retries=0)

    def reachable(self) -> bool:
        try:
            self.request("GET", "/config")
            return True
        except FlinkRestError:
            return False

    def taskmanagers(self) -> list[dict]:
        return self.get("/taskmanagers")["taskmanagers"]

    def job(self, job_id: str) -> dict:
        return self.get(f"/jobs/{job_id}")

    def running_job(self, job_id: str) -> dict:
        info = self.job(job_id)
        if info.get("state") != "RUNNING":
            raise JobNotRunning(f"job {job_id} is {info.get('state')}, not RUNNING")
        return info
