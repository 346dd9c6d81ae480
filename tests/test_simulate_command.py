"""`safety-stream simulate`: seeded files, and simulated sites posting through the site client."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from serve_process import start_safety_stream
from test_client import FlakyTransport

from safety_stream.api.app import create_app
from safety_stream.cli import main
from safety_stream.client import SiteClient
from safety_stream.projections.toxicity import toxicity_tables
from safety_stream.runtime import build_memory_runtime
from safety_stream.simulate.generator import as_ndjson, simulate
from safety_stream.simulate.posting import SimulatedSites
from safety_stream.simulate.rates import scenario

NDJSON = "application/x-ndjson"
EXECUTABLE = str(Path(sys.executable).with_name("safety-stream"))


def test_out_file_is_seeded_and_byte_identical(tmp_path: Path) -> None:
    args = ["simulate", "--patients", "12", "--seed", "7"]
    assert main([*args, "--out", str(tmp_path / "a.ndjson")]) == 0
    assert main([*args, "--out", str(tmp_path / "b.ndjson")]) == 0
    assert main(["simulate", "--patients", "12", "--seed", "8", "--out", str(tmp_path / "c")]) == 0
    first = (tmp_path / "a.ndjson").read_bytes()
    assert first == (tmp_path / "b.ndjson").read_bytes()
    assert first != (tmp_path / "c").read_bytes()
    expected = simulate(scenario("default", patients=12, seed=7))
    assert first == as_ndjson(expected)
    kinds = {json.loads(line)["event_type"] for line in first.splitlines()}
    assert {"patient.enrolled", "treatment.administered", "ae.reported"} <= kinds


def test_unknown_scenario_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["simulate", "--scenario", "nope", "--out", "-"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err


def test_sites_post_through_a_lossy_network_without_counting_twice() -> None:
    """Each site's client retries lost responses and refused connections with the same ids."""
    runtime = build_memory_runtime()
    records = simulate(scenario("default", patients=10, seed=4))
    sites = sorted({r.site_id for r in records})
    tokens = {site: runtime.credentials.add(site, "site", site) for site in sites}
    app = TestClient(create_app(runtime))
    transports: list[FlakyTransport] = []

    def lossy_client(url: str, token: str) -> SiteClient:
        transports.append(FlakyTransport(app, ["lose", "ok", "refuse", "ok", "503"] * 50))
        return SiteClient(url, token, sleep=lambda _: None, transport=transports[-1])

    posting = SimulatedSites("http://test", tokens, client=lossy_client)
    stats = posting.run(records, days_per_second=2000.0, tick_seconds=0.01)
    posting.close()

    valid = [r for r in records if r.valid]
    assert stats.records == len(records)
    assert runtime.store.head() == len(valid)  # every valid record once, despite the retries
    stored_ids = {p["event_id"] for _, p in map(lambda t: (t[0], json.loads(t[1])),
                                                runtime.store.payloads())}  # fmt: skip
    assert stored_ids == {json.loads(r.body)["event_id"] for r in valid}
    assert len(runtime.store.rejections(limit=1000)) == len(records) - len(valid)
    # lost responses were resent: the server answered "duplicate" for what it had stored
    assert stats.duplicates > 0
    assert stats.requests == sum(t.requests for t in transports)
    assert stats.by_site.keys() == set(sites)
    runtime.close()


def test_load_generator_posts_each_site_with_its_own_token(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'load.db'}"
    server = start_safety_stream(db, tmp_path)
    try:
        records = simulate(scenario("chemotherapy-toxicity", patients=15, seed=2))
        sites = sorted({r.site_id for r in records})
        lines = []
        for site in sites:
            created = subprocess.run([EXECUTABLE, "sites", "add", site, "--db", db],
                                     check=True, capture_output=True, text=True)  # fmt: skip
            lines.append(f"{site} {created.stdout.splitlines()[-1]}")
        (tmp_path / "tokens.txt").write_text("# site tokens\n" + "\n".join(lines) + "\n")
        command = [EXECUTABLE, "simulate", "--scenario", "chemotherapy-toxicity", "--patients",
                   "15", "--seed", "2", "--url", server.url, "--tokens",
                   str(tmp_path / "tokens.txt"), "--batch-size", "50"]  # fmt: skip
        first = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        valid = sum(r.valid for r in records)
        assert f"posted {len(records)} records from {len(sites)} sites" in first
        assert f"stored {valid}, duplicates 0, rejected {len(records) - valid}" in first
        again = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        assert f"stored 0, duplicates {valid}," in again  # a resend never double-counts

        # what the server concludes equals the same records folded in memory
        served = httpx.get(f"{server.url}/v1/toxicity",
                           headers={"Authorization": f"Bearer {server.token}"}).json()  # fmt: skip
        memory = build_memory_runtime()
        in_memory = TestClient(create_app(memory))
        for site in sites:
            token = memory.credentials.add(site, "site", site)
            answer = in_memory.post(
                "/v1/events",
                content=as_ndjson([r for r in records if r.site_id == site]),
                headers={"Content-Type": NDJSON, "Authorization": f"Bearer {token}"},
            )
            assert answer.status_code in (201, 422), answer.text
        memory.projector.catch_up()
        plan = memory.plan
        tables = toxicity_tables(memory.projector.state, memory.monitor.clock,
                                 plan.related_means_at_least, plan.windows, None)  # fmt: skip
        for table, row in zip(tables, served["modalities"], strict=True):
            assert row["modality"] == table.modality
            assert row["exposed"] == table.exposed
            assert row["by_worst_grade"] == table.by_worst_grade
            assert row["grade3_or_worse"]["count"] == table.grade3_or_worse.count
        memory.close()
    finally:
        server.stop()


def _outcome_after(
    bodies: list[tuple[bytes, str]],
) -> tuple[list[dict[str, Any]], list[tuple[str, str, str]]]:
    """(per-modality toxicity, expedited-report clocks) after posting ``bodies`` in order."""
    runtime = build_memory_runtime()
    headers = {"Authorization": f"Bearer {runtime.credentials.add('x', 'admin', None)}"}
    app = TestClient(create_app(runtime))
    for body, content_type in bodies:
        answer = app.post("/v1/events", content=body,
                          headers=headers | {"Content-Type": content_type})  # fmt: skip
        assert answer.status_code in (201, 422), answer.text
    modalities = app.get("/v1/toxicity", headers=headers).json()["modalities"]
    rules = app.get("/v1/rules", headers=headers).json()["rules"]
    runtime.close()
    clocks = next(r["clocks"] for r in rules if r["kind"] == "expedited_report")
    toxicity = [
        {key: m[key] for key in ("modality", "patients_with_related_ae", "by_worst_grade")}
        | {"grade3": m["grade3_or_worse"]["count"], "terms": m["by_term"]}
        for m in modalities
    ]
    # each clock runs from when this server received the report: compare its length, not dates
    length = [
        (datetime.fromisoformat(c["due"]) - datetime.fromisoformat(c["aware_at"])).days
        for c in clocks
    ]
    return toxicity, sorted(
        (c["ae_id"], c["state"], f"{days} d") for c, days in zip(clocks, length, strict=True)
    )


def test_csv_output_is_an_edc_export_with_the_same_toxicity(tmp_path: Path) -> None:
    """The AE forms as an EDC export (current state of each AE) plus the other records as
    NDJSON give the same per-modality toxicity and expedited-report clocks as the full event
    history."""
    args = ["simulate", "--scenario", "chemotherapy-toxicity", "--patients", "25", "--seed", "5"]
    assert main([*args, "--out", str(tmp_path / "trial.csv")]) == 0
    assert main([*args, "--out", str(tmp_path / "trial.full.ndjson")]) == 0
    export = (tmp_path / "trial.csv").read_bytes()
    assert export.startswith(b"EVENT_ID,STUDYID,SITEID,SUBJID,AESPID,")
    others = (tmp_path / "trial.ndjson").read_bytes()
    history = (tmp_path / "trial.full.ndjson").read_bytes()
    reports = (tmp_path / "trial.reports.ndjson").read_bytes()
    assert reports  # the scenario has expedited safety reports, citing AEs of the export
    posted = [(others, NDJSON), (export, "text/csv"), (reports, NDJSON)]
    from_export, export_clocks = _outcome_after(posted)
    from_history, history_clocks = _outcome_after([(history, NDJSON)])
    assert from_export == from_history
    assert sum(m["grade3"] for m in from_export) > 0
    assert export_clocks == history_clocks  # opened, and closed by the reports, the same way
    assert any(state == "closed" for _, state, _ in export_clocks)
