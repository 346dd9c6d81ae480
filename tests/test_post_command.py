"""`safety-stream post` as a site uses it: against a real `safety-stream serve`, and against
servers that answer what the ingest API never does (a wrong URL's 404, a proxy's 405 or 500,
an HTML page). A site must never believe a batch was submitted when it was not."""

from __future__ import annotations

import csv
import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import httpx
import pytest
from conftest import EXAMPLES
from serve_process import ServeProcess, start_safety_stream

from safety_stream.cli import main
from safety_stream.client import PostError, SiteClient


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[ServeProcess, str]]:
    db = f"sqlite:///{tmp_path / 'post.db'}"
    served = start_safety_stream(db, tmp_path)
    site_token = _site_token(db, "CN-SH-01")
    try:
        yield served, site_token
    finally:
        served.stop()


def _site_token(db: str, site: str) -> str:
    executable = str(Path(sys.executable).with_name("safety-stream"))
    added = subprocess.run(
        [executable, "sites", "add", site, "--db", db], check=True, capture_output=True, text=True
    )
    return added.stdout.splitlines()[-1]


def _position(served: ServeProcess) -> int:
    """The log's position: how many events are stored."""
    answer = httpx.get(
        f"{served.url}/healthz", headers={"Authorization": f"Bearer {served.token}"}, timeout=10
    )
    answer.raise_for_status()
    return int(answer.json()["position"])


def _enrol_sample(served: ServeProcess, capsys: pytest.CaptureFixture[str]) -> int:
    """Post the sample trial (its enrolments) as the admin; the log position after it."""
    sample = str(EXAMPLES / "sparkle-l-sample.ndjson")
    assert main(["post", "--url", served.url, "--token", served.token, sample]) == 0
    capsys.readouterr()
    return _position(served)


def _export(tmp_path: Path, name: str, delimiter: str, replace: tuple[str, str] | None) -> Path:
    text = (EXAMPLES / "edc-export-sample.csv").read_text()
    if replace:
        text = text.replace(*replace, 1)
    rows = list(csv.reader(text.splitlines()))
    path = tmp_path / name
    with path.open("w", newline="", encoding="cp1252") as f:
        csv.writer(f, delimiter=delimiter).writerows(rows)
    return path


def test_a_url_without_scheme_and_several_files_are_posted(
    server: tuple[ServeProcess, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    served, site_token = server
    sample = str(EXAMPLES / "sparkle-l-sample.ndjson")
    address = served.url.removeprefix("http://") + "/v1"
    assert main(["post", "--url", address, "--token", served.token, sample]) == 0
    assert "stored 50, duplicates 0, rejected 0" in capsys.readouterr().out
    export = _export(tmp_path, "export.csv", ",", None)
    status = main(["post", "--url", served.url, "--token", site_token, sample, str(export)])
    out = capsys.readouterr().out
    assert status == 1  # the sample's other site is not this credential's: refused, listed
    records = [json.loads(line) for line in Path(sample).read_text().splitlines()]
    own = sum(r["site_id"] == "CN-SH-01" for r in records)
    assert f"stored 6, duplicates {own}, rejected {len(records) - own} (2 request(s))" in out


def test_a_cp1252_semicolon_export_is_posted_with_its_encoding(
    server: tuple[ServeProcess, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    served, site_token = server
    before = _enrol_sample(served, capsys)
    export = _export(tmp_path, "excel.csv", ";", ("tired", "fatigué"))
    args = ["post", "--url", served.url, "--token", site_token, str(export)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"safety-stream post: {export} is not valid UTF-8: byte 0xe9 on line")
    assert "give --encoding cp1252" in err and "nothing of" in err
    assert _position(served) == before  # nothing was sent
    assert main([*args, "--encoding", "cp1252"]) == 0
    assert "stored 6, duplicates 0, rejected 0" in capsys.readouterr().out
    history = httpx.get(
        f"{served.url}/v1/patients/SPK-0102/adverse-events",
        headers={"Authorization": f"Bearer {site_token}"},
    ).json()
    verbatim = {json.loads(e["event"]).get("verbatim_term") for e in history["events"]}
    assert "fatigué" in verbatim  # the text was read as cp1252 and stored as itself


def test_a_half_valid_row_stores_nothing_of_itself(
    server: tuple[ServeProcess, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    served, site_token = server
    before = _enrol_sample(served, capsys)
    # row 2's AE ends before it began: its resolution is rejected, and so is its AE
    export = _export(tmp_path, "half.csv", ",", ("2026-01-17,2026-01-25", "2026-01-17,2026-01-10"))
    assert main(["post", "--url", served.url, "--token", site_token, str(export)]) == 1
    out = capsys.readouterr().out
    assert "row 2: (record): another event of this row was rejected" in out
    assert "row 2 (ae.resolved): AEENDTC (end_date): end 2026-01-10 is before" in out
    assert "stored 4, duplicates 0, rejected 2" in out
    assert _position(served) == before + 4  # rows 1, 3, 4 and 5; nothing of row 2


class _Answer(http.server.BaseHTTPRequestHandler):
    status = 404
    body = b'{"detail": "Not Found"}'
    content_type = "application/json"
    paths: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).paths.append(self.path)
        self.send_response(self.status)
        self.send_header("Content-Type", self.content_type)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def stranger() -> Iterator[tuple[str, type[_Answer]]]:
    handler = type("Answer", (_Answer,), {"paths": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize(
    ("status", "body", "content_type", "fragments"),
    [
        (404, b'{"detail": "Not Found"}', "application/json", ["HTTP 404: Not Found", "base URL"]),
        (405, b"Method Not Allowed", "text/plain", ["HTTP 405: Method Not Allowed", "base URL"]),
        (200, b"<html>welcome</html>", "text/html", ["HTTP 200: <html>welcome</html>"]),
        (201, b'{"stored": 3}', "application/json", ["HTTP 201"]),
    ],
)
def test_an_answer_that_is_not_the_ingest_apis_fails_the_post(
    stranger: tuple[str, type[_Answer]],
    status: int,
    body: bytes,
    content_type: str,
    fragments: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, handler = stranger
    handler.status, handler.body, handler.content_type = status, body, content_type
    sample = str(EXAMPLES / "sparkle-l-sample.ndjson")
    assert main(["post", "--url", url + "/v1/", "--token", "t", sample]) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    line = captured.err.strip().splitlines()[-1]
    assert line.startswith(f"safety-stream post: {url}/v1/events: HTTP {status}")
    for fragment in [*fragments, "nothing was submitted"]:
        assert fragment in line
    assert "stored 0" not in captured.out  # no summary that reads like a success
    assert handler.paths == ["/v1/events"]  # one request, to the ingest path


def test_server_errors_are_retried_with_progress_then_fail(
    stranger: tuple[str, type[_Answer]],
) -> None:
    url, handler = stranger
    handler.status, handler.body = 500, b'{"detail": "database is locked"}'
    told: list[str] = []
    client = SiteClient(
        url,
        "t",
        retries=3,
        sleep=lambda _: None,
        on_retry=lambda attempt, attempts, reason, _: told.append(f"{attempt}/{attempts} {reason}"),
    )
    with pytest.raises(PostError, match="HTTP 500: database is locked; gave up after 4 attempts"):
        client.post_lines([b"{}"])
    client.close()
    assert told == [f"{n}/4 HTTP 500: database is locked" for n in (1, 2, 3)]
    assert len(handler.paths) == 4
