"""``safety-stream grafana push|export``: the dashboards as code, uploaded to a Grafana or
written as provisioning files (``--check`` reports drift instead of writing)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

TOKEN_VARIABLE = "SAFETY_STREAM_GRAFANA_TOKEN"
DEFAULT_FOLDER = "Safety monitoring"
DEFAULT_DIR = Path("deploy/grafana/dashboards")


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    grafana = commands.add_parser("grafana", help="Grafana dashboards: push or export them")
    actions = grafana.add_subparsers(dest="grafana_command", required=True)
    push = actions.add_parser("push", help="upload the dashboards through Grafana's HTTP API")
    push.add_argument("--url", required=True, help="Grafana's root URL, e.g. http://grafana:3000")
    push.add_argument(
        "--token",
        help=f"a service account token with the Editor role (default: ${TOKEN_VARIABLE})",
    )
    push.add_argument(
        "--folder", default=DEFAULT_FOLDER, metavar="TITLE", help=f"default: {DEFAULT_FOLDER}"
    )
    export = actions.add_parser("export", help="write one JSON file per dashboard")
    export.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"default: {DEFAULT_DIR}")
    export.add_argument("--check", action="store_true", help="fail if the files are stale")


def run(args: argparse.Namespace) -> int:
    if args.grafana_command == "push":
        return push(args.url, args.token or os.environ.get(TOKEN_VARIABLE), args.folder)
    return export(args.dir, args.check)


def push(url: str, token: str | None, folder: str) -> int:
    from safety_stream.grafana.push import GrafanaPushError, push_dashboards

    if not token:
        print(
            f"safety-stream grafana push: no token: pass --token or set {TOKEN_VARIABLE}",
            file=sys.stderr,
        )
        return 2
    try:
        results = push_dashboards(url, token, folder)
    except GrafanaPushError as error:
        print(f"safety-stream grafana push: {error}", file=sys.stderr)
        return 1
    if results and results[0].folder_created:
        print(f"created folder {folder!r} (uid {results[0].folder_uid})")
    for result in results:
        where = f" at {result.url}" if result.url else ""
        print(f"{result.uid}: version {result.version}{where}")
    return 0


def export(directory: Path, check: bool) -> int:
    from safety_stream.grafana.push import expected_files, export_dashboards

    paths = export_dashboards(directory, check)
    if not check:
        for path in paths:
            print(path)
        return 0
    names = expected_files()
    for path in paths:
        if path.name not in names:
            print(f"{path}: no dashboard in code produces it (delete it)")
        elif path.is_file():
            print(
                f"{path}: differs from the dashboards in code (run: safety-stream grafana export)"
            )
        else:
            print(f"{path}: missing (run: safety-stream grafana export)")
    if not paths:
        print(f"{directory}: every dashboard matches the code")
    return 1 if paths else 0
