"""The ``safety-stream`` command line: parses arguments and hands off to ``commands``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from safety_stream import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="safety-stream", description="Adverse-event safety monitoring for clinical trials."
    )
    parser.add_argument("--version", action="version", version=f"safety-stream {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = commands.add_parser(
        "validate", help="check NDJSON / JSON / EDC CSV event files without storing them"
    )
    validate.add_argument("files", nargs="+", metavar="FILE", help="files, directories or '-'")
    validate.add_argument("--format", choices=["ndjson", "json", "csv"], help="skip sniffing")
    validate.add_argument("--json", action="store_true", help="machine-readable output")

    schemas = commands.add_parser("schemas", help="the JSON Schema wire contract")
    schema_commands = schemas.add_subparsers(dest="schemas_command", required=True)
    export = schema_commands.add_parser("export", help="write one JSON Schema per event type")
    export.add_argument("--dir", type=Path, default=Path("schemas/json"))
    export.add_argument("--check", action="store_true", help="fail if the files are stale")

    plan = commands.add_parser("plan", help="monitoring plans")
    plan_commands = plan.add_subparsers(dest="plan_command", required=True)
    check = plan_commands.add_parser("check", help="validate a plan and list its rules")
    check.add_argument("plan_file", type=Path, metavar="PLAN.yaml")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "validate":
        from safety_stream.commands import validate

        return validate.run(args.files, args.format, args.json)
    if args.command == "schemas":
        from safety_stream.commands import contract

        return contract.run(args.dir, args.check)
    if args.command == "plan":
        from safety_stream.commands import plan

        return plan.run(args.plan_file)
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
