"""The ``safety-stream`` command line: parses arguments and hands off to ``commands``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any, cast

from safety_stream import __version__
from safety_stream.commands import ae, boundaries, decide, demo, grafana, report, simulate
from safety_stream.commands import export as export_datasets
from safety_stream.commands.arguments import encoding_option, fraction, port_number, positive_int
from safety_stream.commands.failures import CliParser, run_reporting_errors
from safety_stream.errors import UsageError
from safety_stream.kafka.config import KafkaSettings
from safety_stream.settings import Settings


def build_parser() -> argparse.ArgumentParser:
    parser = CliParser(
        prog="safety-stream", description="Adverse-event safety monitoring for clinical trials."
    )
    parser.add_argument("--version", action="version", version=f"safety-stream {__version__}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the full traceback of an error (for a bug report)",
    )
    commands = cast(  # the subcommands' parsers are CliParsers too (argparse takes the class)
        "argparse._SubParsersAction[argparse.ArgumentParser]",
        parser.add_subparsers(dest="command", required=True, metavar="COMMAND"),
    )

    validate = commands.add_parser(
        "validate", help="check NDJSON / JSON / EDC CSV event files without storing them"
    )
    validate.add_argument("files", nargs="+", metavar="FILE", help="files, directories or '-'")
    validate.add_argument("--format", choices=["ndjson", "json", "csv"], help="skip sniffing")
    encoding_option(validate)
    validate.add_argument("--json", action="store_true", help="machine-readable output")

    schemas = commands.add_parser("schemas", help="the JSON Schema wire contract")
    schema_commands = schemas.add_subparsers(dest="schemas_command", required=True)
    export = schema_commands.add_parser("export", help="write one JSON Schema per event type")
    export.add_argument(
        "--dir",
        type=Path,
        default=Path("schemas/json"),
        help="where the schema files go (default: schemas/json)",
    )
    export.add_argument("--check", action="store_true", help="fail if the files are stale")

    plan = commands.add_parser("plan", help="monitoring plans")
    plan_commands = plan.add_subparsers(dest="plan_command", required=True)
    check = plan_commands.add_parser("check", help="validate a plan and list its rules")
    check.add_argument("plan_file", type=Path, metavar="PLAN.yaml", help="the plan file to check")
    check.add_argument(
        "--simulate",
        type=positive_int,
        metavar="N",
        help="also simulate N trials per scenario through the monitor: P(stop) as run",
    )
    check.add_argument(
        "--accrual-days",
        type=positive_int,
        default=240,
        help="days over which the planned patients enrol (default 240)",
    )
    check.add_argument(
        "--dropout",
        type=fraction,
        default=0.0,
        help="share of patients who leave follow-up at a random time in their window (0)",
    )
    check.add_argument("--seed", type=int, default=1, help="simulation seed (default 1)")
    check.add_argument(
        "--workers", type=positive_int, default=2, help="processes to simulate with (default 2)"
    )
    check.add_argument("--json", action="store_true", help="machine-readable simulation output")

    serve = commands.add_parser("serve", help="run the embedded runtime (API, store, projections)")
    _db(serve)
    serve.add_argument(
        "--host", help=f"listen address (default {Settings.model_fields['host'].default})"
    )
    serve.add_argument(
        "--port",
        type=port_number,
        help=f"listen port, 1-65535 (default {Settings.model_fields['port'].default})",
    )
    serve.add_argument("--plan", type=Path, help="monitoring plan (default: SPARKLE-L)")
    serve.add_argument("--alerts", type=Path, help="alert routing YAML (default: an NDJSON file)")
    _kafka(serve, "distributed mode: produce POSTs to this Kafka; workers process them")

    worker = commands.add_parser("worker", help="run a Faust worker of the distributed runtime")
    _db(worker)
    _kafka(worker, "the Kafka brokers (host:port[,host:port])")
    worker.add_argument("--plan", type=Path, help="monitoring plan (default: SPARKLE-L)")
    worker.add_argument("--alerts", type=Path, help="alert routing YAML")
    worker.add_argument("--web-host", default="127.0.0.1", help="address of /metrics, /healthz")
    worker.add_argument(
        "--web-port", type=port_number, default=6066, help="port of /metrics, /healthz"
    )
    worker.add_argument(
        "--data-dir", type=Path, default=Path("safety-stream-worker"), help="Faust's local data"
    )
    topics = commands.add_parser("topics", help="Kafka topics of the distributed runtime")
    topics_create = topics.add_subparsers(dest="topics_command", required=True).add_parser(
        "create", help="create the missing topics (idempotent) and list them"
    )
    _kafka(topics_create, "the Kafka brokers")

    sites = commands.add_parser("sites", help="site credentials")
    site_commands = sites.add_subparsers(dest="sites_command", required=True)
    sites_add = site_commands.add_parser(
        "add", help="create a site's token (printed once, on the last line)"
    )
    sites_add.add_argument("site", help="the site id its events carry in site_id, e.g. CN-SH-01")
    _expires(sites_add)
    _db(sites_add)
    _credential_commands(site_commands, "site", "SITE")
    readers = commands.add_parser("readers", help="read-only credentials (safety officer, DSMB)")
    reader_commands = readers.add_subparsers(dest="readers_command", required=True)
    readers_add = reader_commands.add_parser(
        "add", help="create a reader's token (printed once, on the last line)"
    )
    readers_add.add_argument("name", help="who reads with it (recorded on acknowledgements)")
    _expires(readers_add)
    readers_add.add_argument(
        "--role",
        choices=["safety_officer", "dsmb", "admin"],
        required=True,
        help="what it may do: read all sites (safety_officer, dsmb), or also write (admin)",
    )
    _db(readers_add)
    _credential_commands(reader_commands, "reader", "NAME")

    post = commands.add_parser("post", help="post events to the ingest API as a site")
    post.add_argument(
        "files", nargs="+", metavar="FILE", help="NDJSON, JSON or EDC CSV files, or '-' (stdin)"
    )
    post.add_argument(
        "--url",
        default="http://127.0.0.1:8080",
        help="the safety-stream server's base URL (default http://127.0.0.1:8080)",
    )
    post.add_argument("--token", help="the site's bearer token (HTTP)")
    post.add_argument(
        "--batch-size",
        type=positive_int,
        default=500,
        help="records per request (default 500); each request is stored all at once",
    )
    encoding_option(post)
    _kafka(post, "produce straight to Kafka instead of the API (needs broker credentials)")

    verify = commands.add_parser("verify", help="walk the hash chain of the log")
    _db(verify)
    verify.add_argument(
        "--checkpoint",
        type=Path,
        metavar="FILE",
        help="also check a signed checkpoint (key: $SAFETY_STREAM_CHECKPOINT_KEY): the log "
        "must still hold its position with its chain hash (no truncation, no rewrite)",
    )
    rejected = commands.add_parser("rejected", help="list the dead-letter store")
    _db(rejected)
    rejected.add_argument("--site", help="only this site's rejected records")
    rejected.add_argument(
        "--limit", type=positive_int, default=100, help="at most this many, newest first (100)"
    )
    rejected.add_argument("--json", action="store_true", help="machine-readable output")
    replay = commands.add_parser("replay", help="rebuild every projection from the log")
    _db(replay)
    replay.add_argument("--plan", type=Path, help="monitoring plan (default: SPARKLE-L)")
    boundaries.add_parser(commands)
    simulate.add_parser(commands)
    demo.add_parser(commands)
    report.add_parser(commands)
    export_datasets.add_parser(commands)
    grafana.add_parser(commands)
    whatif = commands.add_parser(
        "whatif", help="replay the log under another plan: when would alerts have fired?"
    )
    whatif.add_argument(
        "--plan", type=Path, required=True, metavar="NEW.yaml", help="the plan to try on the log"
    )
    whatif.add_argument("--current", type=Path, help="the plan in force (default: SPARKLE-L)")
    whatif.add_argument("--json", action="store_true", help="machine-readable output")
    _db(whatif)
    alerts = commands.add_parser("alerts", help="alerts and their delivery state")
    _db(alerts)
    alerts.add_argument("--unacknowledged", action="store_true", help="only those not yet seen")
    alerts.add_argument("--json", action="store_true", help="machine-readable output")
    alert_commands = alerts.add_subparsers(dest="alerts_command")
    ack = alert_commands.add_parser("ack", help="acknowledge an alert (stops its escalation)")
    ack.add_argument(
        "alert_id", metavar="ALERT_ID", help="the alert's id, or a unique prefix (8 characters)"
    )
    ack.add_argument("--by", required=True, help="who acknowledges (recorded)")
    ack.add_argument("--note", help="why, or what was done (recorded with the acknowledgement)")
    _db(ack)
    decide.add_parser(commands)
    ae.add_parser(commands)
    monitor = commands.add_parser(
        "monitor", help="fold trial histories in memory through the monitor (nothing stored)"
    )
    monitor.add_argument(
        "files", nargs="+", metavar="FILE", help="one trial history per file (NDJSON/JSON/CSV)"
    )
    monitor.add_argument("--plan", type=Path, help="monitoring plan (default: SPARKLE-L)")
    monitor.add_argument(
        "--now", help="the monitoring clock at the end (default: the latest time in the file)"
    )
    monitor.add_argument("--json", action="store_true", help="machine-readable output")
    database = commands.add_parser("db", help="the store's schema: status and upgrade")
    db_commands = database.add_subparsers(dest="db_command", required=True)
    _db(
        db_commands.add_parser(
            "upgrade",
            help="create the store or upgrade its schema to this version's (under a lock; "
            "idempotent), printing from-revision -> to-revision",
        )
    )
    _db(
        db_commands.add_parser(
            "status",
            help="the store's schema revision and this version's head (exit 0: current, "
            "1: behind, missing or newer); never creates or changes anything",
        )
    )
    migrate = commands.add_parser("migrate", help="the same as `db upgrade` (kept as an alias)")
    _db(migrate)
    return parser


def _db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        help="store URL, e.g. sqlite:///trial.db or postgresql://user@host/db "
        "(default: $SAFETY_STREAM_DB, else sqlite:///safety-stream.db in this directory)",
    )


def _expires(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--expires",
        metavar="DATE",
        help="refuse the token after this ISO date (UTC) or date and time, e.g. 2026-06-30",
    )


def _credential_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], what: str, metavar: str
) -> None:
    """``list``, ``revoke`` and ``rotate`` of ``sites`` and ``readers``."""
    listing = commands.add_parser(
        "list", help=f"{what} credentials and their dates (never a token)"
    )
    _db(listing)
    revoke = commands.add_parser("revoke", help=f"refuse a {what}'s token (kept for the audit)")
    revoke.add_argument("name", metavar=metavar, help=f"the {what} credential's name")
    _db(revoke)
    rotate = commands.add_parser(
        "rotate", help=f"a new token for a {what}, the old one refused (printed once, last line)"
    )
    rotate.add_argument("name", metavar=metavar, help=f"the {what} credential's name")
    _expires(rotate)
    _db(rotate)


def _kafka(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument(
        "--kafka",
        metavar="HOST:PORT",
        help=f"{help_text}; TLS/SASL from SAFETY_STREAM_KAFKA__* (see deploy/kafka/README.md)",
    )


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {
        key: value
        for key in ("db", "host", "port", "plan", "alerts")
        if (value := getattr(args, key, None)) is not None
    }
    bootstrap = getattr(args, "kafka", None)
    if bootstrap is not None:
        configured = Settings(**overrides).kafka
        base = configured.model_dump() if configured is not None else {}
        overrides["kafka"] = KafkaSettings(**(base | {"bootstrap": bootstrap}))
    return Settings(**overrides)


def _log_info() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # one line per plugin otherwise


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    debug = args.debug or bool(os.environ.get("SAFETY_STREAM_DEBUG"))
    words = [args.command, getattr(args, f"{args.command}_command", None)]
    prog = " ".join(["safety-stream", *(w for w in words if w)])
    return run_reporting_errors(lambda: _dispatch(args), prog, debug)


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "validate":
        from safety_stream.commands import validate

        return validate.run(args.files, args.format, args.json, args.encoding)
    if args.command == "schemas":
        from safety_stream.commands import contract

        return contract.run(args.dir, args.check)
    if args.command == "plan":
        from safety_stream.commands import plan

        return plan.run(args.plan_file, args)
    if args.command == "boundaries":
        return boundaries.run(args)
    if args.command == "grafana":
        return grafana.run(args)
    if args.command == "simulate":
        return simulate.run(args)
    if args.command == "demo":
        return demo.run(args)
    if args.command == "report":
        return report.run(args)
    if args.command == "export":
        return export_datasets.run(args)
    if args.command == "monitor":
        from safety_stream.commands import monitor
        from safety_stream.runtime import load_plan_or_default

        return monitor.run(load_plan_or_default(args.plan), args.files, args.now, args.json)
    return _store_commands(args)


def _store_commands(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.command == "serve":
        from safety_stream.commands import serve

        _log_info()
        return serve.run(settings)
    if args.command in ("sites", "readers"):
        return _run_credentials(args, settings)
    if args.command in ("worker", "topics", "post"):
        return _run_kafka(args, settings)
    if args.command == "decide":
        from safety_stream.commands import decide

        return decide.run(args, settings.db)
    if args.command == "alerts":
        from safety_stream.commands import alerts

        if args.alerts_command == "ack":
            return alerts.acknowledge(settings.db, args.alert_id, args.by, args.note)
        from safety_stream.runtime import load_plan_or_default

        trial = load_plan_or_default(settings.plan).trial.id  # whose triage steps to read
        return alerts.list_alerts(settings.db, args.unacknowledged, args.json, trial)
    if args.command == "ae":
        return ae.run(settings.db, args.ae_id, args.json)
    if args.command == "whatif":
        from safety_stream.commands import whatif

        return whatif.run(settings.db, args.plan, args.current, args.json)
    return _run_log(args, settings)


def _run_credentials(args: argparse.Namespace, settings: Settings) -> int:
    from safety_stream.commands import credentials

    sites = args.command == "sites"
    action = args.sites_command if sites else args.readers_command
    if action == "list":
        return credentials.list_credentials(settings.db, sites)
    if action == "revoke":
        return credentials.revoke(settings.db, args.name, sites)
    if action == "rotate":
        return credentials.rotate(settings.db, args.name, sites, args.expires)
    if sites:
        return credentials.add(settings.db, args.site, "site", args.site, args.expires)
    return credentials.add(settings.db, args.name, args.role, None, args.expires)


def _run_kafka(args: argparse.Namespace, settings: Settings) -> int:
    from safety_stream.commands import post

    if args.command == "worker":
        from safety_stream.commands import worker

        _log_info()
        return worker.run(settings, args.web_host, args.web_port, args.data_dir)
    if args.command == "topics":
        return post.create_topics(settings.kafka)
    if settings.kafka is not None:
        return post.run_kafka(settings.kafka, args.files, args.batch_size)
    if args.token is None:
        raise UsageError("give --token (the site's bearer token), or --kafka")
    return post.run(args.url, args.token, args.files, args.batch_size, args.encoding)


def _run_log(args: argparse.Namespace, settings: Settings) -> int:
    """The commands on the log itself: schema, verification, dead letters, replay."""
    from safety_stream.commands import store

    if args.command == "migrate":
        print("(`migrate` is the same as `safety-stream db upgrade`)", file=sys.stderr)
        return store.db_upgrade(settings.db)
    if args.command == "db":
        if args.db_command == "status":
            return store.db_status(settings.db)
        return store.db_upgrade(settings.db)
    if args.command == "verify":
        if args.checkpoint is None:
            return store.verify(settings.db)
        key = settings.checkpoint_key
        secret = None if key is None else key.get_secret_value()
        return store.verify(settings.db, args.checkpoint, secret)
    if args.command == "rejected":
        return store.rejected(settings.db, args.site, args.limit, args.json)
    if args.command == "replay":
        return store.replay_command(settings.db, settings.plan)
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
