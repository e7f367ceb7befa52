"""The REST client's retries and typed errors, against a local HTTP server that answers what a test tells
it to (the answers are about HTTP status codes, not about Flink's payloads), and the sample store's round
trip and its refusals."""
from __future__ import annotations

import json
import socket
import threading
from pathlib import Path
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest

from collectors.rest import FlinkRest, FlinkRestError, JobManagerUnreachable, JobNotFound
from collectors.sampler import COLUMNS, SampleRun
from collectors.store import load_samples, save_samples
from common.errors import EdgeplaceError


@pytest.fixture
def server():
    """A server on loopback whose answers are popped from `server.script` (status, body); it records paths."""
    script: list[tuple[int, dict]] = []
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            seen.append(self.path)
            status, body = script.pop(0) if script else (200, {})
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    httpd.script, httpd.seen = script, seen
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def client(httpd, **kw) -> FlinkRest:
    return FlinkRest(f"http://127.0.0.1:{httpd.server_address[1]}", backoff=0.01, **kw)


def test_server_errors_are_retried_until_an_answer_comes(server):
    server.script[:] = [(503, {"errors": ["busy"]}), (500, {}), (200, {"taskmanagers": [{"id": "tm"}]})]
    assert client(server).taskmanagers() == [{"id": "tm"}]
    assert len(server.seen) == 3


def test_a_server_error_that_persists_names_the_status_after_the_retries(server):
    server.script[:] = [(503, {"errors": ["busy"]})] * 4
    with pytest.raises(FlinkRestError, match="GET /overview: HTTP 503"):
        client(server, retries=3).get("/overview")
    assert len(server.seen) == 4  # the first try and three retries


def test_an_unknown_job_is_its_own_error_and_not_retried(server):
    server.script[:] = [(404, {"errors": ["not found"]})]
    with pytest.raises(JobNotFound, match="job abc is unknown"):
        client(server).job("abc")
    assert len(server.seen) == 1


def test_a_client_error_is_reported_with_its_text_and_not_retried(server):
    server.script[:] = [(400, {"errors": ["bad parameter get"]})]
    with pytest.raises(FlinkRestError, match="HTTP 400.*bad parameter get"):
        client(server).get("/jobs/overview", get="x")
    assert len(server.seen) == 1


RECORDED_ERRORS = json.loads((Path(__file__).parent / "recorded" / "rest-errors.json").read_text())["answers"]


@pytest.mark.parametrize("request_line", sorted(RECORDED_ERRORS))
def test_flinks_java_stack_is_cut_to_its_message(server, request_line):
    """What a real Flink 2.3 answered (tests/recorded/rest-errors.json): a Java exception with its whole stack
    in one JSON string. The user reads Flink's sentence, on one line."""
    answer = RECORDED_ERRORS[request_line]
    flink = json.loads(answer["body"])["errors"][0]
    assert "\tat org.apache" in flink or answer["status"] == 404  # the recording holds a stack
    server.script[:] = [(answer["status"], json.loads(answer["body"]))]
    path = request_line.split(" ", 1)[1]
    with pytest.raises(FlinkRestError) as err:
        client(server, retries=0).get(path)
    text = str(err.value)
    assert len(text.splitlines()) == 1 and "org.apache" not in text and "\tat " not in text, text
    said = flink.split("\n")[0].split("Exception: ")[-1]
    assert said in text and len(said) > 10


def test_nothing_listening_is_unreachable_after_the_retries():
    with socket.socket() as s:  # a port that was free a moment ago and has nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rest = FlinkRest(f"http://127.0.0.1:{port}", retries=2, backoff=0.01)
    with pytest.raises(JobManagerUnreachable, match=f"127.0.0.1:{port} is unreachable"):
        rest.get("/overview")
    assert not rest.reachable()


def test_samples_round_trip_and_a_foreign_or_damaged_file_is_refused(tmp_path):
    rows = [{"time": 1.0 + i, "job": "j", "vertex": "v", "vertex_name": "Filter", "subtask": 0,
             "taskmanager": "edge-1", "metric": "numRecordsIn", "value": 10.0 * i} for i in range(3)]
    run = SampleRun(rows, [{"from": 1.0, "to": 2.0}], None)
    assert save_samples(run, tmp_path / "s.parquet", {"job": "j"}) == 3
    df, meta = load_samples(tmp_path / "s.parquet")
    assert list(df.columns) == COLUMNS and df["value"].tolist() == [0.0, 10.0, 20.0]
    assert meta["job"] == "j" and meta["rows"] == 3 and meta["gaps"] == [{"from": 1.0, "to": 2.0}]
    pd.DataFrame({"x": [1]}).to_parquet(tmp_path / "foreign.parquet")
    with pytest.raises(EdgeplaceError, match="lacks column"):
        load_samples(tmp_path / "foreign.parquet")
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(EdgeplaceError, match="cannot read samples"):
        load_samples(tmp_path / "broken.parquet")
