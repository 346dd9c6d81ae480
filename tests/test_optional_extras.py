"""`pip install safety-stream` runs the embedded runtime; the extras add Kafka, PostgreSQL and
Grafana, and a command that needs a missing one says which extra to install."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from conftest import EXAMPLES, REPO

from safety_stream.commands.failures import EXTRAS

# Run the CLI in a process where the extras' modules cannot be imported, as if not installed.
WITHOUT_EXTRAS = f"""
import sys
for name in {sorted(EXTRAS)!r}:
    sys.modules[name] = None  # importing it raises ModuleNotFoundError, as when not installed
from safety_stream.cli import main
sys.exit(main(sys.argv[1:]))
"""


def cli_without_extras(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_EXTRAS, *args],
        cwd=cwd, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_the_base_install_names_no_extra_package() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    base = " ".join(project["dependencies"]).lower()
    for package in ("faust", "kafka-python", "psycopg", "grafana", "pyreadstat", "pandas"):
        assert package not in base
    extras = project["optional-dependencies"]
    assert any("faust-streaming" in d for d in extras["kafka"])
    assert any("psycopg" in d for d in extras["postgres"])
    assert any("grafana-client" in d for d in extras["grafana"])
    assert any("pyreadstat" in d for d in extras["export"])
    assert "export" in extras["all"][0]


def test_the_embedded_runtime_runs_without_any_extra(tmp_path: Path) -> None:
    checked = cli_without_extras(
        "validate", str(EXAMPLES / "sparkle-l-sample.ndjson"), cwd=tmp_path
    )
    assert checked.returncode == 0, checked.stderr
    demo = cli_without_extras("demo", "--seconds", "3", "--port", "0", cwd=tmp_path)
    assert demo.returncode == 0, demo.stderr[-3000:] + demo.stdout[-3000:]
    assert "Boundary crossed" in demo.stdout
    db = f"sqlite:///{tmp_path / 'safety-stream-demo' / 'demo.db'}"
    report = cli_without_extras(
        "report",
        "--db",
        db,
        "--cutoff",
        "2030-01-01",
        "--out",
        str(tmp_path / "r.html"),
        cwd=tmp_path,
    )
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "r.html").stat().st_size > 0
    verified = cli_without_extras("verify", "--db", db, cwd=tmp_path)
    assert verified.returncode == 0, verified.stderr
    exported = cli_without_extras("export", "--db", db, "--out", str(tmp_path / "x"), cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr  # CSV needs no extra
    assert (tmp_path / "x" / "ae.csv").stat().st_size > 0


def test_a_command_that_needs_an_extra_names_it(tmp_path: Path) -> None:
    worker = cli_without_extras(
        "worker", "--db", f"sqlite:///{tmp_path / 'w.db'}", "--kafka", "127.0.0.1:9", cwd=tmp_path
    )
    assert worker.returncode == 2
    assert "pip install 'safety-stream[kafka]'" in worker.stderr
    assert "Traceback" not in worker.stderr
    grafana = cli_without_extras("grafana", "export", "--dir", str(tmp_path / "d"), cwd=tmp_path)
    assert grafana.returncode == 2
    assert "pip install 'safety-stream[grafana]'" in grafana.stderr
    postgres = cli_without_extras(
        "verify", "--db", "postgresql://nobody@127.0.0.1:9/x", cwd=tmp_path
    )
    assert postgres.returncode == 2
    assert "pip install 'safety-stream[postgres]'" in postgres.stderr
    xpt = cli_without_extras(
        "export", "--db", f"sqlite:///{tmp_path / 'w.db'}", "--out", str(tmp_path / "xpt"),
        "--format", "xpt", cwd=tmp_path,
    )  # fmt: skip
    assert xpt.returncode == 2
    assert "pip install 'safety-stream[export]'" in xpt.stderr
    assert "Traceback" not in xpt.stderr and not (tmp_path / "xpt").exists()
