"""End to end: from the POST of an AE to its ``boundary.crossed`` stored, p50 / p99.

    python benchmarks/alert_latency.py [--probes 200]

Starts ``safety-stream serve`` (SQLite) with a plan whose chemotherapy rule crosses at one
counted patient, enrols and treats one patient, then repeats: POST a grade 3 chemotherapy-
related AE (the rule crosses), poll GET /v1/derived-events until the crossing is there (timed),
then retract the AE (the rule clears; not timed). The baseline is GET /healthz on the same
connection.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import yaml
from http_ingest import print_latencies, start_server

from safety_stream.runtime import default_plan

T0 = "2026-01-05T08:00:00+00:00"


def event(kind: str, **fields: Any) -> dict[str, Any]:
    return {
        "event_type": kind, "schema_version": 1, "event_id": str(uuid.uuid4()),
        "trial_id": "SPARKLE-L", "site_id": "S1", "patient_id": "P1", "reporter": "bench",
        "occurred_at": T0, "recorded_at": T0, **fields,
    }  # fmt: skip


def setup() -> list[dict[str, Any]]:
    """Patient P1 enrolled and given one chemotherapy cycle: the rule's one evaluable patient."""
    return [
        event("patient.enrolled", consent_date="2026-01-05", planned_modalities=["chemotherapy"]),
        event("treatment.administered",
              treatment={"modality": "chemotherapy", "regimen": "FOLFOX", "cycle": 1}),
    ]  # fmt: skip


def plan_file(directory: Path) -> Path:
    document = default_plan().model_dump(mode="json")
    document["rules"] = [
        {
            "id": "chemo-fast", "title": "Chemotherapy-related grade >= 3", "kind": "bayesian",
            "illustrative": True, "population": {"exposed_to": "chemotherapy"},
            "counts": {"min_grade": 3, "related_to": ["chemotherapy"]},
            "prior": [1, 1], "theta": 0.3, "cutoff": 0.9, "min_n": 1, "max_n": 40,
        }
    ]  # fmt: skip
    path = directory / "plan.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--probes", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        server, url, token = start_server(
            f"sqlite:///{directory / 'bench.db'}", directory, plan_file(directory)
        )
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        try:
            with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
                assert http.post("/v1/events", content=json.dumps(setup())).status_code == 201
                seen = 0
                baseline, latency = [], []
                for _ in range(args.probes):
                    sent = time.perf_counter()
                    http.get("/healthz").raise_for_status()
                    baseline.append(time.perf_counter() - sent)
                for _ in range(args.probes):
                    ae = event(
                        "ae.reported", ctcae_version="5.0",
                        ctcae_term="Neutrophil count decreased", meddra_code=10029366, grade=3,
                        onset_date="2026-01-05", seriousness=[], expectedness="expected",
                        immune_related=False, action_taken="dose_reduced",
                        attribution={"radiotherapy": "unrelated", "chemotherapy": "definite",
                                     "immunotherapy": "unrelated"},
                    )  # fmt: skip
                    sent = time.perf_counter()
                    assert http.post("/v1/events", content=json.dumps(ae)).status_code == 201
                    while True:
                        found = http.get(f"/v1/derived-events?after={seen}").json()
                        if found:
                            seen = found[-1]["number"]
                        if any(d["event"]["kind"] == "boundary.crossed" for d in found):
                            break
                    latency.append(time.perf_counter() - sent)
                    retraction = event("ae.retracted", ae_id=ae["event_id"], reason="benchmark")
                    assert http.post("/v1/events", content=json.dumps(retraction)).is_success
            print(f"{args.probes} crossings, each from a single POST")
            print_latencies(baseline, ("POST -> crossed", latency))
        finally:
            server.terminate()
            server.wait(30)


if __name__ == "__main__":
    main()
