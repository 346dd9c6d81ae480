"""``safety-stream simulate``: the seeded SPARKLE-L trial, written to a file or posted by the
simulated sites through the real site client (a load generator for the ingest API)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from safety_stream.client import PostError
from safety_stream.errors import SafetyStreamError, UsageError
from safety_stream.simulate.generator import SimulatedRecord, as_ndjson, simulate
from safety_stream.simulate.posting import SimulatedSites
from safety_stream.simulate.rates import SCENARIOS, SimulationConfig, scenario


def add_scenario_options(
    parser: argparse.ArgumentParser, patients: int, default: str = "default"
) -> None:
    parser.add_argument(
        "--scenario",
        choices=list(SCENARIOS),
        default=default,
        help=f"'default': published rates; or one modality far more toxic than planned "
        f"(default here: {default})",
    )
    parser.add_argument("--seed", type=int, default=1, help="same seed, same trial (default 1)")
    parser.add_argument("--patients", type=int, default=patients, help=f"default {patients}")
    parser.add_argument("--sites", type=int, default=6, help="default 6")


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "simulate",
        help="a seeded multicentre trial: write it to NDJSON, or post it as the sites would",
    )
    add_scenario_options(parser, patients=40)  # the plan's planned sample size
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--out",
        metavar="FILE",
        help="write NDJSON to FILE ('-': stdout); FILE.csv: the AEs as an EDC export, the "
        "other records to FILE.ndjson",
    )
    target.add_argument("--url", help="post to this ingest API, e.g. http://127.0.0.1:8080")
    parser.add_argument(
        "--tokens",
        type=Path,
        metavar="FILE",
        help="with --url: one 'SITE-ID TOKEN' line per site (each site posts with its own)",
    )
    parser.add_argument("--token", help="with --url: one admin token that posts for every site")
    parser.add_argument(
        "--days-per-second",
        type=float,
        help="accelerated time: simulated days per real second (default: as fast as possible)",
    )
    parser.add_argument("--batch-size", type=int, default=500, help="records per request")


def config_of(args: argparse.Namespace) -> SimulationConfig:
    return scenario(args.scenario, seed=args.seed, patients=args.patients, sites=args.sites)


def read_tokens(path: Path) -> dict[str, str]:
    """``SITE-ID TOKEN`` per line; blank lines and ``#`` comments ignored."""
    tokens: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        parts = text.split()
        if len(parts) != 2:
            raise ValueError(f"{path}:{number}: expected 'SITE-ID TOKEN', got {len(parts)} fields")
        tokens[parts[0]] = parts[1]
    return tokens


def run(args: argparse.Namespace) -> int:
    try:
        config = config_of(args)
    except ValueError as error:
        raise UsageError(str(error)) from None
    records = simulate(config)
    if args.out is not None:
        return _write(records, args.out)
    try:
        tokens = _tokens(args, records)
    except (OSError, ValueError) as error:
        raise UsageError(str(error)) from None
    sites = SimulatedSites(args.url, tokens)
    try:
        stats = sites.run(records, args.days_per_second, batch_size=args.batch_size)
    except ValueError as error:
        raise UsageError(str(error)) from None
    except PostError as error:
        raise SafetyStreamError(str(error)) from None
    finally:
        sites.close()
    print(
        f"posted {stats.records} records from {len(stats.by_site)} sites in {stats.seconds:.2f} s "
        f"({stats.records_per_second:,.0f} records/s, {stats.requests} requests): "
        f"stored {stats.stored}, duplicates {stats.duplicates}, rejected {stats.rejected}"
    )
    return 0


def _tokens(args: argparse.Namespace, records: list[SimulatedRecord]) -> dict[str, str]:
    sites = sorted({r.site_id for r in records})
    if args.tokens is not None:
        return read_tokens(args.tokens)
    if args.token is not None:
        return dict.fromkeys(sites, args.token)
    raise ValueError("with --url give --tokens FILE (one per site) or --token (admin)")


def _write(records: list[SimulatedRecord], out: str) -> int:
    if out.endswith(".csv"):
        return _write_edc(records, Path(out))
    lines = as_ndjson(records)
    if out == "-":
        sys.stdout.buffer.write(lines)
        sys.stdout.flush()
    else:
        Path(out).write_bytes(lines)
        invalid = sum(not r.valid for r in records)
        print(f"wrote {len(records)} records ({invalid} deliberately invalid) to {out}")
    return 0


def _write_edc(records: list[SimulatedRecord], path: Path) -> int:
    """The AE forms as an EDC export; the other records as NDJSON to post before it (FILE.ndjson)
    and the expedited safety reports to post after it (FILE.reports.ndjson)."""
    from safety_stream.simulate.edc_export import edc_csv, records_after, records_before

    export = edc_csv(records)
    before, after = path.with_suffix(".ndjson"), path.with_suffix(".reports.ndjson")
    first, last = records_before(records), records_after(records)
    before.write_bytes(as_ndjson(first))
    path.write_bytes(export)
    after.write_bytes(as_ndjson(last))
    rows = export.count(b"\n") - 1
    print(
        f"wrote {rows} AE rows to {path} (an EDC export: the current state of each AE), "
        f"{len(first)} enrolment, treatment and lab records to {before} and {len(last)} "
        f"expedited safety reports to {after}; post them in that order: {before}, {path}, {after}"
    )
    return 0
