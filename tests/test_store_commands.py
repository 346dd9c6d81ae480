"""`safety-stream verify`, `rejected` and `replay` on a SQLite store."""

from __future__ import annotations

import io
import json

import pytest
from conftest import EXAMPLES
from sqlalchemy import update

from safety_stream.cli import main
from safety_stream.ctcae import ctcae_dictionary
from safety_stream.ingest import ingest
from safety_stream.store.sql import SqlEventStore
from safety_stream.store.tables import EventRow
from safety_stream.validation.records import InputFormat, read_ndjson


def test_verify_rejected_and_replay(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    store = SqlEventStore.create(sqlite_url)
    body = (
        EXAMPLES / "sparkle-l-sample.ndjson"
    ).read_bytes() + b'{"event_type": "ae.reported"}\n\xff\n'
    report = ingest(
        store,
        read_ndjson(io.BytesIO(body)),
        InputFormat.NDJSON,
        ctcae_dictionary(),
        "cli-test",
        None,
    )
    assert (report.count("stored"), report.count("rejected")) == (50, 2)

    assert main(["verify", "--db", sqlite_url]) == 0
    assert "OK: 50 events, hash chain intact" in capsys.readouterr().out

    assert main(["rejected", "--db", sqlite_url, "--json"]) == 0
    kept = json.loads(capsys.readouterr().out)
    assert [k["location"] for k in kept] == ["line 52", "line 51"]
    assert kept[0]["raw"] == "\\xff"
    assert kept[1]["problems"][0]["path"] == "schema_version"

    assert main(["replay", "--db", sqlite_url]) == 0
    assert "replayed 50 events" in capsys.readouterr().out

    with store.engine.begin() as connection:
        connection.execute(update(EventRow).where(EventRow.position == 9).values(payload="{}"))
    store.close()
    assert main(["verify", "--db", sqlite_url]) == 1
    assert "BROKEN at position 9" in capsys.readouterr().out
