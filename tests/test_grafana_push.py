"""``push_dashboards`` and the ``grafana`` command against a fake Grafana on 127.0.0.1.

The fake implements the endpoints grafana-client calls for a push (GET /api/search,
GET /api/folders/<uid>, POST /api/folders, POST /api/dashboards/db), checks every request
(bearer token, JSON body shape) and answers as Grafana 11 does, including 401 and the 412
"version-mismatch" of a dashboard saved without overwrite."""

from __future__ import annotations

import argparse
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from safety_stream.commands import grafana as command
from safety_stream.grafana.dashboards import all_dashboards
from safety_stream.grafana.push import FOLDER_UID, GrafanaPushError, push_dashboards

TOKEN = "glsa_test_0123456789"
UIDS = ["safety-overview", "safety-sites", "safety-pipeline"]


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class FakeGrafana:
    url: str
    prefix: str = ""
    requests: list[Request] = field(default_factory=list)
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    # path -> (status, body) answered instead of the normal response
    failures: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def calls(self, method: str, path: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and r.path == path]


class Handler(BaseHTTPRequestHandler):
    server: GrafanaServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _reply(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        fake = self.server.fake
        parts = urlsplit(self.path)
        path = parts.path
        if fake.prefix and path.startswith(fake.prefix):
            path = path[len(fake.prefix) :]
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        request = Request(method, path, parse_qs(parts.query), dict(self.headers.items()), body)
        fake.requests.append(request)
        try:
            status, answer = self._route(fake, request)
        except AssertionError as error:  # a malformed request: record it and answer 400
            fake.problems.append(f"{method} {path}: {error}")
            status, answer = 400, {"message": f"bad request: {error}"}
        self._reply(status, answer)

    def _route(self, fake: FakeGrafana, request: Request) -> tuple[int, Any]:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return 401, {"message": "Invalid API key", "messageId": "api-key.invalid"}
        if request.path in fake.failures:
            return fake.failures[request.path]
        if request.method == "GET" and request.path == "/api/search":
            return 200, self._search(fake, request)
        if request.method == "GET" and request.path.startswith("/api/folders/"):
            uid = request.path.removeprefix("/api/folders/")
            if uid not in fake.folders:
                return 404, {"message": "folder not found", "status": "not-found"}
            return 200, fake.folders[uid]
        if request.method == "POST" and request.path == "/api/folders":
            return self._create_folder(fake, request.body)
        if request.method == "POST" and request.path == "/api/dashboards/db":
            return self._save_dashboard(fake, request)
        return 404, {"message": "Not found"}

    @staticmethod
    def _search(fake: FakeGrafana, request: Request) -> list[dict[str, Any]]:
        assert request.query.get("type") == ["dash-folder"], request.query
        text = request.query.get("query", [""])[0].lower()
        return [
            {
                "id": folder["id"],
                "uid": uid,
                "title": folder["title"],
                "uri": f"db/{uid}",
                "url": folder["url"],
                "slug": "",
                "type": "dash-folder",
                "tags": [],
                "isStarred": False,
                "sortMeta": 0,
            }
            for uid, folder in fake.folders.items()
            if text in folder["title"].lower()
        ]

    @staticmethod
    def _create_folder(fake: FakeGrafana, body: Any) -> tuple[int, Any]:
        assert isinstance(body, dict) and set(body) <= {"title", "uid", "parentUid"}, body
        assert body.get("title"), body
        uid = body.get("uid") or f"f{len(fake.folders) + 1}"
        if uid in fake.folders:
            return 409, {"message": "a folder with the same uid already exists"}
        folder = {
            "id": len(fake.folders) + 1,
            "uid": uid,
            "title": body["title"],
            "url": f"/dashboards/f/{uid}/",
            "hasAcl": False,
            "canSave": True,
            "canEdit": True,
            "canAdmin": True,
            "version": 1,
        }
        fake.folders[uid] = folder
        return 200, folder

    @staticmethod
    def _save_dashboard(fake: FakeGrafana, request: Request) -> tuple[int, Any]:
        body = request.body
        assert request.headers.get("Content-Type", "").startswith("application/json")
        assert isinstance(body, dict), body
        assert set(body) <= {"dashboard", "folderUid", "overwrite", "message"}, sorted(body)
        dashboard = body["dashboard"]
        assert isinstance(dashboard, dict) and dashboard.get("uid") and dashboard.get("title")
        assert isinstance(dashboard.get("panels"), list) and dashboard["panels"]
        assert body.get("folderUid") in fake.folders, body.get("folderUid")
        assert isinstance(body.get("overwrite"), bool)
        assert isinstance(body.get("message"), str) and body["message"]
        uid = dashboard["uid"]
        stored = fake.dashboards.get(uid)
        changed = stored is not None and dashboard.get("version") != stored["version"]
        if changed and not body["overwrite"]:
            return 412, {
                "message": "The dashboard has been changed by someone else",
                "status": "version-mismatch",
            }
        version = 1 if stored is None else stored["version"] + 1
        fake.dashboards[uid] = {
            "dashboard": dashboard,
            "folderUid": body["folderUid"],
            "version": version,
        }
        slug = dashboard["title"].lower().replace(" ", "-")
        return 200, {
            "id": list(fake.dashboards).index(uid) + 1,
            "uid": uid,
            "url": f"/d/{uid}/{slug}",
            "status": "success",
            "version": version,
            "slug": slug,
            "folderUid": body["folderUid"],
        }


class GrafanaServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeGrafana) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.fake = fake


@contextmanager
def running_grafana(prefix: str = "") -> Iterator[FakeGrafana]:
    fake = FakeGrafana(url="", prefix=prefix)
    server = GrafanaServer(fake)
    host, port = server.server_address[:2]
    fake.url = f"http://{host!s}:{port}{prefix}"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert not fake.problems, fake.problems


@pytest.fixture
def grafana() -> Iterator[FakeGrafana]:
    with running_grafana() as fake:
        yield fake


# --- push_dashboards -------------------------------------------------------------------------


def test_push_creates_the_folder_once_and_uploads_three_dashboards(grafana: FakeGrafana) -> None:
    results = push_dashboards(grafana.url, TOKEN)

    assert [r.uid for r in results] == UIDS
    assert all(r.folder_uid == FOLDER_UID and r.folder_created for r in results)
    assert [r.version for r in results] == [1, 1, 1]
    assert [r.status for r in results] == ["success"] * 3
    assert results[0].url == "/d/safety-overview/safety-overview"
    (create,) = grafana.calls("POST", "/api/folders")
    assert create.body == {"title": "Safety monitoring", "uid": FOLDER_UID}
    uploads = grafana.calls("POST", "/api/dashboards/db")
    assert [u.body["dashboard"] for u in uploads] == all_dashboards()
    assert all(u.body["folderUid"] == FOLDER_UID and u.body["overwrite"] for u in uploads)
    assert all(r.headers["Authorization"] == f"Bearer {TOKEN}" for r in grafana.requests)

    again = push_dashboards(grafana.url, TOKEN)
    assert len(grafana.calls("POST", "/api/folders")) == 1
    assert not any(r.folder_created for r in again)
    assert [r.version for r in again] == [2, 2, 2]
    assert len(grafana.calls("POST", "/api/dashboards/db")) == 6
    assert set(grafana.dashboards) == set(UIDS)


def test_push_uses_a_folder_found_by_title(grafana: FakeGrafana) -> None:
    grafana.folders["a1b2c3"] = {"id": 7, "uid": "a1b2c3", "title": "Safety monitoring", "url": ""}
    grafana.folders["other"] = {"id": 8, "uid": "other", "title": "Safety monitoring (old)"}
    grafana.folders["other"]["url"] = ""

    results = push_dashboards(grafana.url, TOKEN)

    assert {r.folder_uid for r in results} == {"a1b2c3"}
    assert not grafana.calls("POST", "/api/folders")
    assert {d["folderUid"] for d in grafana.dashboards.values()} == {"a1b2c3"}


def test_push_keeps_its_folder_when_it_was_renamed(grafana: FakeGrafana) -> None:
    grafana.folders[FOLDER_UID] = {"id": 3, "uid": FOLDER_UID, "title": "DSMB", "url": ""}

    results = push_dashboards(grafana.url, TOKEN)

    assert {r.folder_uid for r in results} == {FOLDER_UID}
    assert not grafana.calls("POST", "/api/folders")
    assert len(grafana.calls("GET", f"/api/folders/{FOLDER_UID}")) == 1


def test_push_into_another_folder_title(grafana: FakeGrafana) -> None:
    push_dashboards(grafana.url, TOKEN, folder_title="Trial X safety")
    (create,) = grafana.calls("POST", "/api/folders")
    assert create.body == {"title": "Trial X safety", "uid": FOLDER_UID}


def test_a_bad_token_fails_at_the_folder_with_401(grafana: FakeGrafana) -> None:
    with pytest.raises(GrafanaPushError) as raised:
        push_dashboards(grafana.url, "not-the-token")
    message = str(raised.value)
    assert raised.value.status == 401 and raised.value.dashboard is None
    assert "folder 'Safety monitoring'" in message and "HTTP 401" in message
    assert "token" in message
    assert not grafana.calls("POST", "/api/dashboards/db")


def test_a_401_on_upload_names_the_dashboard(grafana: FakeGrafana) -> None:
    push_dashboards(grafana.url, TOKEN)
    grafana.failures["/api/dashboards/db"] = (401, {"message": "Unauthorized"})
    with pytest.raises(GrafanaPushError) as raised:
        push_dashboards(grafana.url, TOKEN)
    assert raised.value.status == 401
    assert raised.value.dashboard == "safety-overview"
    assert "dashboard 'safety-overview' (Safety overview)" in str(raised.value)
    assert "HTTP 401" in str(raised.value)


def test_a_412_without_overwrite_names_the_dashboard_and_grafanas_reason(
    grafana: FakeGrafana,
) -> None:
    push_dashboards(grafana.url, TOKEN)
    with pytest.raises(GrafanaPushError) as raised:
        push_dashboards(grafana.url, TOKEN, overwrite=False)
    error = raised.value
    assert error.status == 412 and error.dashboard == "safety-overview"
    assert "HTTP 412" in str(error)
    assert "The dashboard has been changed by someone else" in str(error)
    assert "overwrite" in str(error)
    assert grafana.calls("POST", "/api/dashboards/db")[-1].body["overwrite"] is False


def test_a_server_error_on_the_second_dashboard_names_it(grafana: FakeGrafana) -> None:
    original = Handler._save_dashboard

    def failing_second(fake: FakeGrafana, request: Request) -> tuple[int, Any]:
        if request.body["dashboard"]["uid"] == "safety-sites":
            return 500, {"message": "database is locked"}
        return original(fake, request)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Handler, "_save_dashboard", staticmethod(failing_second))
        with pytest.raises(GrafanaPushError) as raised:
            push_dashboards(grafana.url, TOKEN)
    assert raised.value.dashboard == "safety-sites" and raised.value.status == 500
    assert "database is locked" in str(raised.value)
    assert list(grafana.dashboards) == ["safety-overview"]


def test_push_to_a_grafana_under_a_sub_path() -> None:
    with running_grafana(prefix="/grafana") as fake:
        results = push_dashboards(fake.url, TOKEN)
        assert [r.uid for r in results] == UIDS
        assert fake.calls("POST", "/api/folders")


def test_push_to_nothing_listening_says_so() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(GrafanaPushError, match="cannot reach Grafana") as raised:
        push_dashboards(f"http://127.0.0.1:{port}", TOKEN, timeout=2)
    assert raised.value.status is None


# --- the command -----------------------------------------------------------------------------


def run_cli(argv: list[str]) -> int:
    """Through ``safety_stream.cli.main`` once the command is wired in, else its own parser."""
    from safety_stream import cli

    commands = next(
        a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    )
    if "grafana" in commands.choices:
        return cli.main(argv)
    parser = argparse.ArgumentParser(prog="safety-stream")
    command.add_parser(parser.add_subparsers(dest="command", required=True))
    return command.run(parser.parse_args(argv))


def test_cli_push_takes_the_token_from_the_environment(
    grafana: FakeGrafana, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(command.TOKEN_VARIABLE, TOKEN)
    assert run_cli(["grafana", "push", "--url", grafana.url, "--folder", "DSMB"]) == 0
    out = capsys.readouterr().out
    assert "created folder 'DSMB'" in out
    for uid in UIDS:
        assert f"{uid}: version 1 at /d/{uid}/" in out
    assert grafana.folders[FOLDER_UID]["title"] == "DSMB"


def test_cli_push_without_a_token_or_with_a_bad_one(
    grafana: FakeGrafana, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(command.TOKEN_VARIABLE, raising=False)
    assert run_cli(["grafana", "push", "--url", grafana.url]) == 2
    assert command.TOKEN_VARIABLE in capsys.readouterr().err
    assert not grafana.requests

    assert run_cli(["grafana", "push", "--url", grafana.url, "--token", "wrong"]) == 1
    assert "HTTP 401" in capsys.readouterr().err


def test_cli_export_and_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "dashboards"
    assert run_cli(["grafana", "export", "--dir", str(target), "--check"]) == 1
    assert "missing" in capsys.readouterr().out
    assert run_cli(["grafana", "export", "--dir", str(target)]) == 0
    assert sorted(p.name for p in target.iterdir()) == sorted(f"{u}.json" for u in UIDS)
    capsys.readouterr()
    assert run_cli(["grafana", "export", "--dir", str(target), "--check"]) == 0
    assert "every dashboard matches" in capsys.readouterr().out
    (target / "safety-overview.json").write_text("{}\n")
    (target / "extra.json").write_text("{}\n")
    assert run_cli(["grafana", "export", "--dir", str(target), "--check"]) == 1
    out = capsys.readouterr().out
    assert "safety-overview.json: differs" in out
    assert "extra.json: no dashboard in code produces it" in out
