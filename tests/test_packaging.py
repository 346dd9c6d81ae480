"""The installed wheel works on its own: packaged data, console entry point, any directory."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import EXAMPLES, REPO


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "-q", "-w", str(out), str(REPO)],
        check=True,
    )  # fmt: skip
    [built] = out.glob("safety_stream-*.whl")
    return built


def test_wheel_carries_the_data_as_real_files(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        dictionary = archive.read("safety_stream/data/ctcae-v5.0.json")
    assert "safety_stream/data/plans/sparkle-l.yaml" in names
    assert dictionary == (REPO / "schemas" / "ctcae" / "ctcae-v5.0.json").read_bytes()
    assert any(n.endswith("entry_points.txt") for n in names)


def test_installed_wheel_validates_from_an_unrelated_directory(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
         str(wheel)],
        check=True,
    )  # fmt: skip
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    (workdir / "events.ndjson").write_bytes((EXAMPLES / "sparkle-l-sample.ndjson").read_bytes())
    # only the installed copy and the dependencies are importable, not the checkout
    deps = [p for p in sys.path if p.endswith("site-packages")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(target), *deps]))
    script = (
        "import sys, safety_stream; from safety_stream.cli import main;"
        "assert str(safety_stream.__file__).startswith(sys.argv[1]), safety_stream.__file__;"
        "sys.exit(main(['validate', 'events.ndjson']))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(target)],
        cwd=workdir, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "50 valid, 0 invalid" in done.stdout
