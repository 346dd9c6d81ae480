"""The demo end to end: serve, simulate the sites in accelerated time, watch, summarise.

The sites post through the real site client over HTTP; the live view and the summary read the
API with a safety officer's token. Nothing here computes a safety number itself.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.live import Live

from safety_stream.demo.server import (
    DemoFiles,
    DemoServer,
    issue_credentials,
    pick_port,
    write_alert_config,
)
from safety_stream.demo.view import alert_line, rules_table, screen, toxicity_table
from safety_stream.simulate.generator import simulate
from safety_stream.simulate.posting import PostingStats, SimulatedSites
from safety_stream.simulate.rates import SimulationConfig

SCENARIO_NOTES = {
    "default": "scenario default: the published toxicity rates of this regimen; a safe trial "
    "should cross no stopping boundary",
    "chemotherapy-toxicity": "scenario chemotherapy-toxicity: the 5-FU backbone is made far "
    "more toxic than planned (85 % of patients with a related grade >= 3 AE), so a stopping "
    "boundary is really crossed; --scenario default posts the published rates",
    "immunotherapy-toxicity": "scenario immunotherapy-toxicity: the PD-1 antibody is made far "
    "more toxic than planned (60 %), so a stopping boundary is really crossed",
}


@dataclass(frozen=True)
class DemoOptions:
    config: SimulationConfig
    directory: Path
    host: str = "127.0.0.1"
    port: int = 8080
    seconds: float = 40.0
    keep_serving: bool = False
    scenario: str = "default"


@dataclass
class DemoResult:
    seconds: float
    posting: PostingStats
    alerts: list[dict[str, Any]]
    crossed_rules: list[str]
    url: str


class _Watcher:
    """Reads the API as the safety officer; collects every alert once, in order."""

    def __init__(self, url: str, token: str) -> None:
        self.http = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        self.alerts: list[dict[str, Any]] = []

    def get(self, path: str, **params: Any) -> Any:
        response = self.http.get(path, params=params)
        response.raise_for_status()
        return response.json()

    def new_alerts(self) -> list[dict[str, Any]]:
        after = self.alerts[-1]["number"] if self.alerts else 0
        fresh: list[dict[str, Any]] = self.get(
            "/v1/alerts", order="raised", after=after, limit=1000
        )  # in the order raised: the next page holds the ones raised since
        self.alerts.extend(fresh)
        return fresh

    def settled(self) -> bool:
        """The projection has caught up with the log and every alert delivery has finished."""
        health = self.get("/healthz")
        if health["projection_position"] != health["position"]:
            return False
        every = self.get("/v1/alerts", limit=1000)
        return all(d["state"] == "delivered" for a in every for d in a["deliveries"])


def run_demo(options: DemoOptions, console: Console) -> DemoResult:
    started = time.perf_counter()
    files = DemoFiles(options.directory.resolve())
    files.fresh()
    records = simulate(options.config)
    sites = sorted({r.site_id for r in records})
    site_tokens, reader_token = issue_credentials(files, sites)
    port = pick_port(options.host, options.port)
    url = f"http://{options.host}:{port}"
    write_alert_config(files, f"{url}/board")
    console.print(f"[bold]safety-stream demo[/]: {len(records):,} submissions from "
                  f"{len(sites)} simulated sites, {options.config.patients} patients, "
                  f"scenario seed {options.config.seed}")  # fmt: skip
    console.print(SCENARIO_NOTES.get(options.scenario, f"scenario {options.scenario}"),
                  highlight=False)  # fmt: skip
    console.print(f"serving {url} (API docs {url}/docs, safety board {url}/board); "
                  f"log {files.server_log}")  # fmt: skip
    server = DemoServer(files, options.host, port)
    try:
        server.wait_ready()
        result = _simulate_and_watch(options, console, records, site_tokens, reader_token, url)
        result.seconds = time.perf_counter() - started
        _summary(console, result, files, url)
        if options.keep_serving:
            console.print("[bold]still serving[/]: press Ctrl-C to stop")
            with contextlib.suppress(KeyboardInterrupt):
                server.process.wait()
    finally:
        server.stop()
    return result


def _simulate_and_watch(
    options: DemoOptions,
    console: Console,
    records: list[Any],
    site_tokens: dict[str, str],
    reader_token: str,
    url: str,
) -> DemoResult:
    span_days = (records[-1].sent_at - records[0].sent_at).total_seconds() / 86400
    posting = SimulatedSites(url, site_tokens)
    outcome: dict[str, Any] = {}
    progress: dict[str, Any] = {"simulated_until": records[0].sent_at.date(), "records": 0,
                                "stored": 0, "rejected": 0, "rate": 0.0}  # fmt: skip
    began = time.perf_counter()

    def tick(until: datetime, stats: PostingStats) -> None:
        elapsed = time.perf_counter() - began
        rate = stats.records / elapsed if elapsed else 0.0
        progress.update(simulated_until=until.date(), records=stats.records, stored=stats.stored,
                        rejected=stats.rejected, rate=rate)  # fmt: skip

    def post_all() -> None:
        try:
            outcome["stats"] = posting.run(
                records, span_days / max(options.seconds, 1.0), on_tick=tick
            )
        except BaseException as error:  # reported by the main thread
            outcome["error"] = error

    watcher = _Watcher(url, reader_token)
    poster = threading.Thread(target=post_all, name="simulated-sites", daemon=True)
    poster.start()
    toxicity: dict[str, Any] | None = None
    rules: dict[str, Any] | None = None
    interrupted = False
    try:
        with Live(console=console, refresh_per_second=4, transient=True) as live:
            deadline: float | None = None
            while True:
                toxicity, rules = watcher.get("/v1/toxicity"), watcher.get("/v1/rules")
                for alert in watcher.new_alerts():
                    live.console.print(alert_line(alert))
                live.update(screen(progress, toxicity, rules, watcher.alerts))
                if not poster.is_alive():
                    deadline = deadline or time.monotonic() + 30
                    if watcher.settled() or time.monotonic() > deadline:
                        for alert in watcher.new_alerts():
                            live.console.print(alert_line(alert))
                        break
                time.sleep(0.5)
    except KeyboardInterrupt:
        interrupted = True
        console.print("[yellow]interrupted[/]: summary of what was posted so far")
    finally:
        posting.stop.set()  # the sites stop between ticks; then their clients close
        poster.join()
        posting.close()
    if "error" in outcome and not interrupted:
        raise outcome["error"]
    toxicity, rules = watcher.get("/v1/toxicity"), watcher.get("/v1/rules")
    console.print(toxicity_table(toxicity))
    console.print(rules_table(rules))
    # from the final table, so that the summary says what the table shows: a crossing stays
    # latched (awaiting a DSMB decision) whatever later data did
    crossed = [
        r["rule_id"]
        for r in rules["rules"]
        if r["kind"] in ("bayesian", "pocock") and r["awaiting_decision"]
    ]
    stats = outcome.get("stats") or PostingStats()
    return DemoResult(0.0, stats, watcher.alerts, crossed, url)


def _summary(console: Console, result: DemoResult, files: DemoFiles, url: str) -> None:
    stats = result.posting
    outbox_lines = (
        len(files.alert_outbox.read_text(encoding="utf-8").splitlines())
        if files.alert_outbox.exists()
        else 0
    )
    console.print(
        f"\n[bold]Summary[/] ({result.seconds:.0f} s): the sites posted {stats.records:,} "
        f"records in {stats.requests:,} requests ({stats.records_per_second:,.0f} records/s "
        f"while pacing); stored {stats.stored:,}, rejected {stats.rejected:,} (kept as dead "
        f"letters), duplicates {stats.duplicates:,}; simulated trial time up to "
        f"{stats.simulated_until.date() if stats.simulated_until else '-'}."
    )
    command = command_prefix()
    if result.crossed_rules:
        console.print(
            f"[bold red]Boundary crossed[/], awaiting a DSMB decision: "
            f"{', '.join(result.crossed_rules)}; {len(result.alerts)} alerts raised, "
            f"{outbox_lines} delivered to {files.alert_outbox}\n"
            f"  record the DSMB's decision (it releases the latch; pause_enrolment refuses new "
            f"patients): {command} decide --db {files.db_url} --rule {result.crossed_rules[0]} "
            f"--outcome pause_enrolment --rationale 'minuted reasons' --by dsmb-chair",
            soft_wrap=True,
            highlight=False,
        )
    else:
        console.print(f"No boundary crossed; {len(result.alerts)} alerts raised.")
    host, port = url.removeprefix("http://").rsplit(":", 1)
    today = datetime.now(UTC).date().isoformat()  # the report's cut-off is the time stored
    console.print(
        f"The database stays for inspection: {files.database}\n"
        f"  tokens (site and safety officer): {files.tokens}\n"
        f"  look again: {command} serve --db {files.db_url} --alerts {files.alert_config} "
        f"--host {host} --port {port}\n"
        f"  then the board {url}/board (log in with the safety-officer token), the API "
        f"{url}/docs\n"
        f"  the DSMB report: {command} report --db {files.db_url} --cutoff {today}",
        soft_wrap=True,  # commands stay on one line, to be copied as printed
        highlight=False,
    )


def command_prefix() -> str:
    """How to run safety-stream again as the user ran it: plain ``safety-stream`` when that is
    on PATH and is this one, else the path of the script that is running (e.g. a venv's)."""
    script = Path(sys.argv[0])
    on_path = shutil.which("safety-stream")
    if script.name != "safety-stream" or not script.exists():
        return f"{sys.executable} -m safety_stream.cli"
    if on_path is not None and Path(on_path).resolve() == script.resolve():
        return "safety-stream"
    with contextlib.suppress(ValueError):
        return str(script.resolve().relative_to(Path.cwd()))
    return str(script.resolve())
