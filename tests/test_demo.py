"""The README's main command: `safety-stream demo` end to end, with nothing but what it starts."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import httpx
from realservers import free_port, stop_process

from safety_stream.simulate.generator import simulate
from safety_stream.simulate.rates import scenario

EXECUTABLE = str(Path(sys.executable).with_name("safety-stream"))


def wait_for(url: str) -> httpx.Response:
    deadline = time.monotonic() + 60
    while True:
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def run_demo(workdir: Path, port: int) -> str:
    finished = subprocess.run(
        [EXECUTABLE, "demo", "--seconds", "6", "--port", str(port)],
        cwd=workdir, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert finished.returncode == 0, finished.stderr[-3000:] + finished.stdout[-3000:]
    return finished.stdout


def test_demo_shows_a_boundary_crossing_and_its_alert_and_keeps_the_database(
    tmp_path: Path,
) -> None:
    port = free_port()
    out = run_demo(tmp_path, port)
    # the demo's default: 40 patients, seed 1, a chemotherapy backbone far more toxic than planned
    records = simulate(scenario("chemotherapy-toxicity", patients=40))
    valid = sum(r.valid for r in records)

    assert f"serving http://127.0.0.1:{port}" in out
    assert "scenario chemotherapy-toxicity: the 5-FU backbone is made far more toxic" in out
    assert f"safety board http://127.0.0.1:{port}/board" in out
    # the alert is printed as it happens, and the summary names the crossed rule
    crossing_lines = [line for line in out.splitlines() if "boundary.crossed" in line]
    assert crossing_lines and crossing_lines[0].startswith("ALERT #")
    assert "Boundary crossed, awaiting a DSMB decision: " in out
    assert f"the sites posted {len(records):,} records" in out
    assert f"stored {valid:,}, rejected {len(records) - valid:,}" in out

    demo = tmp_path / "safety-stream-demo"
    delivered = [json.loads(line) for line in (demo / "alerts.ndjson").read_text().splitlines()]
    crossed = [d for d in delivered if d["alert"]["kind"] == "boundary.crossed"]
    assert crossed, "the crossing was delivered to the demo's alert channel"
    summary = out.split("Boundary crossed, awaiting a DSMB decision: ")[1].splitlines()[0]
    assert crossed[0]["alert"]["rule_id"] in summary
    # no patient identifier in what the terminal showed (ids look like SITE-01-0001)
    assert "-00" not in "\n".join(line for line in out.splitlines() if "ALERT" in line)

    # the database stays, complete and intact
    db = f"sqlite:///{demo / 'demo.db'}"
    verify = subprocess.run([EXECUTABLE, "verify", "--db", db], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert f"{valid}" in verify.stdout
    assert (demo / "tokens.txt").stat().st_mode & 0o077 == 0

    # the closing hints work as printed: serve on the port the board URL names, whose alert
    # links point there too; / leads to the board; the report command selects data
    serve_line = next(line for line in out.splitlines() if "  look again: " in line)
    serve_args = shlex.split(serve_line.split("look again: ", 1)[1])
    assert serve_args[-2:] == ["--port", str(port)] and serve_args[1] == "serve"
    assert f"board_url: http://127.0.0.1:{port}/board" in (demo / "alerts.yaml").read_text()
    server = subprocess.Popen(serve_args, cwd=tmp_path, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        landing = wait_for(f"http://127.0.0.1:{port}/")
        assert landing.status_code == 307 and landing.headers["location"] == "/board"
    finally:
        stop_process(server)
    report_line = next(line for line in out.splitlines() if "the DSMB report: " in line)
    report_args = shlex.split(report_line.split("the DSMB report: ", 1)[1])
    made = subprocess.run(report_args, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert made.returncode == 0, made.stderr
    written = tmp_path / made.stdout.split("wrote ", 1)[1].split(":", 1)[0]
    assert f"log position {valid}" in made.stdout and written.stat().st_size > 10_000
    # ... and so does the one that records the DSMB's decision on the latched crossing
    decide_line = next(line for line in out.splitlines() if "record the DSMB's decision" in line)
    decide_args = shlex.split(decide_line.split("refuses new patients): ", 1)[1])
    decided = subprocess.run(decide_args, cwd=tmp_path, capture_output=True, text=True)
    assert decided.returncode == 0 and "recorded decision" in decided.stdout, decided.stderr

    # a second run starts from a new database (the same event ids are stored again, not
    # answered as duplicates of the previous run)
    again = run_demo(tmp_path, port)
    assert f"stored {valid:,}, rejected {len(records) - valid:,}" in again
