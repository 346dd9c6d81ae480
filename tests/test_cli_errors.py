"""The command line's error policy: every bad input a site or operator can type is answered
with one line ``safety-stream COMMAND: ...`` on stderr and exit status 2 (bad usage or input)
or 1 (a check failed, a server could not be used); never a traceback, never a silent success,
never a database created by a command that only reads."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO

from safety_stream.cli import main
from safety_stream.store.engine import make_engine
from safety_stream.store.migrate import upgrade

PLAN = REPO / "deploy" / "plans" / "sparkle-l.yaml"


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SAFETY_STREAM_DB", raising=False)
    yield tmp_path


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Exit status and stderr of the command as a user would see them."""
    try:
        status = main(args)
    except SystemExit as exit_:  # argparse's own exits
        status = int(exit_.code or 0)
    return status, capsys.readouterr().err


def assert_one_line(err: str, command: str, *fragments: str) -> None:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"safety-stream {command}: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.mark.parametrize(
    ("args", "command", "status", "fragments"),
    [
        (["verify", "--db", "trial.db"], "verify", 2, ["not a store URL", "sqlite:///trial.db"]),
        (["verify", "--db", "sqlite:///no/such/dir/t.db"], "verify", 2, ["no/such/dir", "exist"]),
        (["verify", "--db", "mysql://u@localhost/db"], "verify", 2, ["mysql is not supported"]),
        (
            ["verify", "--db", "postgresql://u@127.0.0.1:1/db"],
            "verify",
            1,
            ["cannot use postgresql://u@127.0.0.1:1/db", "is the database server running"],
        ),
        (["verify", "--db", "sqlite:///typo.db"], "verify", 2, ["no store at typo.db"]),
        (["rejected", "--db", "sqlite:///typo.db"], "rejected", 2, ["no store at typo.db"]),
        (["alerts", "--db", "sqlite:///typo.db"], "alerts", 2, ["no store at typo.db"]),
        (["replay", "--db", "sqlite:///typo.db"], "replay", 2, ["no store at typo.db"]),
        (
            ["whatif", "--plan", str(PLAN), "--db", "sqlite:///typo.db"],
            "whatif",
            2,
            ["no store at typo.db"],
        ),
        (
            ["report", "--as-of", "2026-06-30", "--db", "sqlite:///typo.db"],
            "report",
            2,
            ["no store at typo.db"],
        ),
        (
            ["alerts", "ack", "abcd1234", "--by", "x", "--db", "sqlite:///typo.db"],
            "alerts ack",
            2,
            ["no store at typo.db"],
        ),
        (["serve", "--plan", "missing.yaml"], "serve", 2, ["plan missing.yaml", "No such file"]),
        (
            ["serve", "--alerts", "missing.yaml"],
            "serve",
            2,
            ["alert routing file missing.yaml", "No such file"],
        ),
        (["serve", "--port", "99999"], "serve", 2, ["'99999' is not a TCP port (1-65535)"]),
        (["plan", "check", "missing.yaml"], "plan check", 2, ["No such file"]),
        (["post", "--token", "t", "missing.ndjson"], "post", 2, ["missing.ndjson", "cannot read"]),
        (["post", "x.ndjson"], "post", 2, ["give --token"]),
        (["post", "--url", "ftp://h/x", "--token", "t", "x"], "post", 2, ["not the server's"]),
        (["post", "--batch-size", "0", "--token", "t", "x"], "post", 2, ["1 or more"]),
        (["validate", "--encoding", "klingon", "x.csv"], "validate", 2, ["unknown encoding"]),
        (["simulate", "--out", "x.ndjson", "--patients", "0"], "simulate", 2, []),
        (["nonsense"], "", 2, ["invalid choice"]),
    ],
)
def test_bad_input_is_one_line_with_the_right_status(
    args: list[str],
    command: str,
    status: int,
    fragments: list[str],
    capsys: pytest.CaptureFixture[str],
    in_tmp: Path,
) -> None:
    got, err = run(args, capsys)
    assert got == status, err
    if command:
        assert_one_line(err, command, *fragments)
    else:
        assert err.startswith("safety-stream: ") and len(err.strip().splitlines()) == 1
    assert not (in_tmp / "typo.db").exists()  # nothing that only reads creates a store


def test_a_plan_that_is_not_utf8_is_named_with_its_byte(
    capsys: pytest.CaptureFixture[str], in_tmp: Path
) -> None:
    (in_tmp / "plan.yaml").write_bytes(PLAN.read_bytes().replace(b"SPARKLE", b"SPARKL\xe9", 1))
    for args, command in (
        (["plan", "check", "plan.yaml"], "plan check"),
        (["serve", "--plan", "plan.yaml"], "serve"),
        (["whatif", "--plan", "plan.yaml"], "whatif"),
    ):
        status, err = run(args, capsys)
        assert status == 2, err
        assert_one_line(err, command, "plan.yaml is not UTF-8 text: byte 0xe9 on line")
    assert not (in_tmp / "safety-stream.db").exists()  # refused before opening the store


def test_serve_refuses_a_port_in_use_before_saying_it_serves(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        status, err = run(["serve", "--port", str(port), "--db", "sqlite:///s.db"], capsys)
    assert status == 2
    assert_one_line(err, "serve", f"cannot listen on 127.0.0.1:{port}", "give --port")
    assert "serving on" not in caplog.text


def test_a_store_whose_schema_is_behind_is_refused_with_the_command_that_upgrades_it(
    capsys: pytest.CaptureFixture[str], in_tmp: Path
) -> None:
    url = f"sqlite:///{in_tmp / 'old.db'}"
    engine = make_engine(url)
    upgrade(engine, "0004")
    engine.dispose()
    status, err = run(["verify", "--db", url], capsys)
    assert status == 1
    assert_one_line(err, "verify", "revision 0004", f"safety-stream db upgrade --db {url}")
    assert main(["migrate", "--db", url]) == 0
    assert main(["verify", "--db", url]) == 0
    assert "OK: 0 events" in capsys.readouterr().out


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from safety_stream.commands import store

    def broken(db: str) -> int:
        raise KeyError("boom")

    monkeypatch.setattr(store, "verify", broken)
    status, err = run(["verify"], capsys)
    assert status == 1
    assert_one_line(err, "verify", "KeyError: 'boom'", "rerun with --debug")
    status, err = run(["--debug", "verify"], capsys)
    assert status == 1
    assert "Traceback" in err and "KeyError: 'boom'" in err


def test_a_pipe_closed_early_ends_quietly(tmp_path: Path) -> None:
    many = tmp_path / "many.ndjson"
    many.write_text('{"event_type": "ae.reported"}\n' * 5000)
    process = subprocess.Popen(
        [sys.executable, "-m", "safety_stream.cli", "validate", str(many)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.read(100)
    process.stdout.close()  # what `| head` does
    err = process.stderr.read().decode()
    assert process.wait(timeout=60) == 141
    assert err == ""


def test_every_option_and_argument_has_help() -> None:
    import argparse

    from safety_stream.cli import build_parser

    missing = []

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, f"{path} {name}")
            elif not action.help:
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")

    walk(build_parser(), "safety-stream")
    assert missing == []


def test_tokens_never_read_as_options() -> None:
    """A token starting with '-' made `post --token TOKEN` fail to parse (seen in CI)."""
    from safety_stream.auth import new_token
    from safety_stream.cli import build_parser

    for _ in range(200):
        token = new_token()
        assert not token.startswith("-")
        assert build_parser().parse_args(["post", "--token", token, "f.ndjson"]).token == token
