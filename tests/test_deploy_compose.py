"""deploy/compose.yaml cannot run here (no Docker engine), so everything checkable is checked:
it parses; every file, directory and build input it names exists; images are pinned; ports
agree with the commands; the environment is exactly safety-stream's settings; commands parse
with the real CLI; a one-shot `db upgrade` runs before the API and the workers start;
Prometheus scrapes every service that serves /metrics."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from realservers import require_binary

from safety_stream.cli import build_parser
from safety_stream.settings import Settings

DEPLOY = Path(__file__).parents[1] / "deploy"
ROOT = DEPLOY.parent


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(document, dict)
    return document


def ours(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        n: s for n, s in compose["services"].items() if s.get("image") == "safety-stream:latest"
    }


def test_every_service_has_a_pinned_image_or_a_build_that_exists(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {
        "kafka", "postgres", "migrate", "api", "worker-1", "worker-2", "prometheus", "alertmanager",
        "grafana",
    }  # fmt: skip
    for name, service in compose["services"].items():
        image = service["image"]
        if "build" in service:
            context = (DEPLOY / service["build"]["context"]).resolve()
            assert context == ROOT
            dockerfile = context / service["build"]["dockerfile"]
            for line in dockerfile.read_text().splitlines():
                if line.startswith("COPY "):
                    for source in line.split()[1:-1]:
                        assert (context / source).exists(), (name, source)
        else:
            assert re.fullmatch(r"[a-z/]+:v?[0-9][\w.]*", image), f"{name}: pin {image}"


def test_every_mounted_path_exists_and_named_volumes_are_declared(
    compose: dict[str, Any],
) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), (name, source)
            else:
                assert source in compose["volumes"], (name, source)
            assert target.startswith("/")
    environment = ours(compose)["api"]["environment"]
    mounts = dict(v.split(":")[1::-1] for v in ours(compose)["api"]["volumes"])
    for key in ("SAFETY_STREAM_PLAN", "SAFETY_STREAM_ALERTS"):
        directory, file = environment[key].rsplit("/", 1)
        assert (DEPLOY / mounts[directory] / file).is_file()


def test_environment_and_commands_are_the_real_settings_and_cli(compose: dict[str, Any]) -> None:
    for name, service in ours(compose).items():
        settings = {
            key.removeprefix("SAFETY_STREAM_").lower(): re.sub(r"\$\{[^}]+\}", "secret", value)
            for key, value in service["environment"].items()
            if key in ("SAFETY_STREAM_DB", "SAFETY_STREAM_PLAN", "SAFETY_STREAM_ALERTS")
        }
        kafka = {
            key.removeprefix("SAFETY_STREAM_KAFKA__").lower(): value
            for key, value in service["environment"].items()
            if key.startswith("SAFETY_STREAM_KAFKA__")
        }
        parsed = Settings.model_validate(settings | {"kafka": kafka})  # extra="forbid": no typos
        assert parsed.kafka is not None and parsed.kafka.bootstrap == "kafka:9092"
        args = build_parser().parse_args(service["command"])
        assert args.command in ("serve", "worker", "db"), name
        published = {int(p.split(":")[1]) for p in service.get("ports", [])}
        if args.command == "db":
            assert published == set(), name
            continue
        listening = args.port if args.command == "serve" else args.web_port
        assert published <= {listening}


def test_the_schema_is_upgraded_once_before_the_api_and_the_workers_start(
    compose: dict[str, Any],
) -> None:
    """Opening a store never migrates it: a one-shot `safety-stream db upgrade` (under the
    migration lock) must finish successfully before anything that serves or works starts."""
    services = ours(compose)
    migrate = services["migrate"]
    args = build_parser().parse_args(migrate["command"])
    assert (args.command, args.db_command) == ("db", "upgrade")
    assert migrate["restart"] == "no"  # a one-shot: "unless-stopped" would run it forever
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert (
        migrate["environment"]["SAFETY_STREAM_DB"]
        == services["api"]["environment"]["SAFETY_STREAM_DB"]
    )
    long_running = {
        name
        for name, service in services.items()
        if build_parser().parse_args(service["command"]).command in ("serve", "worker")
    }
    assert long_running == {"api", "worker-1", "worker-2"}
    for name in long_running:
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }, name


def test_prometheus_scrapes_the_api_and_every_worker(compose: dict[str, Any]) -> None:
    config = yaml.safe_load((DEPLOY / "compose" / "prometheus.yml").read_text())
    [job] = config["scrape_configs"]
    targets = {t for group in job["static_configs"] for t in group["targets"]}
    expected = set()
    for name, service in ours(compose).items():
        args = build_parser().parse_args(service["command"])
        if args.command == "db":
            continue  # the one-shot migration serves nothing
        expected.add(f"{name}:{args.port if args.command == 'serve' else args.web_port}")
    assert targets == expected
    promtool = require_binary("promtool")
    checked = subprocess.run(
        [promtool, "check", "config", "--syntax-only", str(DEPLOY / "compose" / "prometheus.yml")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_grafana_mounts_the_dashboards_where_provisioning_looks(compose: dict[str, Any]) -> None:
    provider = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "safety-stream.yml").read_text()
    )["providers"][0]
    mounts = dict(v.split(":")[1::-1] for v in compose["services"]["grafana"]["volumes"])
    assert mounts[provider["options"]["path"]] == "./grafana/dashboards"
    assert list((DEPLOY / "grafana" / "dashboards").glob("*.json"))
