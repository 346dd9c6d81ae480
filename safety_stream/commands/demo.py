"""``safety-stream demo``: the embedded runtime, simulated sites posting in accelerated time,
and a live terminal view of per-modality toxicity, rule states and alerts."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import httpx
from rich.console import Console

from safety_stream.client import PostError
from safety_stream.commands.simulate import add_scenario_options, config_of
from safety_stream.errors import SafetyStreamError, UsageError

DEMO_SCENARIO = "chemotherapy-toxicity"


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "demo",
        help="serve, simulate six sites posting a trial in accelerated time, watch it live",
    )
    # the plan's planned sample size; a toxic backbone, so that a boundary is really crossed
    add_scenario_options(parser, patients=40, default=DEMO_SCENARIO)
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path("safety-stream-demo"),
        help="where the demo keeps its database, tokens, alerts and server log "
        "(default ./safety-stream-demo; each run starts a new database there)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="default 8080, else a free one")
    parser.add_argument(
        "--seconds", type=float, default=40.0, help="real time the simulated trial takes"
    )
    parser.add_argument(
        "--keep-serving", action="store_true", help="keep the server up after the summary"
    )


def run(args: argparse.Namespace) -> int:
    from safety_stream.demo.runner import DemoOptions, run_demo

    try:
        config = config_of(args)
    except ValueError as error:
        raise UsageError(str(error)) from None
    options = DemoOptions(
        config=config,
        scenario=args.scenario,
        directory=args.dir,
        host=args.host,
        port=args.port,
        seconds=args.seconds,
        keep_serving=args.keep_serving,
    )
    try:
        # a log file or pipe gets wide lines instead of 80 columns of wrapped tables
        run_demo(options, Console() if sys.stdout.isatty() else Console(width=120))
    except (RuntimeError, PostError, httpx.HTTPError) as error:
        log = args.dir / "server.log"
        raise SafetyStreamError(f"{error} (the server's log: {log})") from None
    return 0
