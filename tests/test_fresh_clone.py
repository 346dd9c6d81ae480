"""A clone of the repository, with nothing beside it, has all it needs: the CTCAE derivation
checks against the sheet committed in it, and the README's first command installs it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.fail("the fresh-clone check needs git and a git checkout of the repository")
    alone = tmp_path_factory.mktemp("alone")
    subprocess.run(
        ["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(alone / "safety-stream")],
        check=True,
    )
    return alone / "safety-stream"


def test_nothing_tracked_reads_beside_the_clone(clone: Path) -> None:
    found = subprocess.run(
        ["git", "grep", "-n", "-e", r"\.\./shared", "--", "."],
        cwd=clone, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert found.returncode == 1, found.stdout  # 1: no match
    assert list(clone.parent.iterdir()) == [clone]


def test_the_ctcae_derivation_checks_inside_the_clone(clone: Path) -> None:
    done = subprocess.run(
        [sys.executable, "schemas/ctcae/derive_ctcae.py", "--check"],
        cwd=clone, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ctcae-v5.0.json matches CTCAE_v5.0_2017-11-27.xlsx (837 terms)"


def test_the_readmes_install_step_works_in_the_clone(clone: Path) -> None:
    readme = (clone / "README.md").read_text()
    first = re.search(r"```sh\n(.+?)\n```", readme, re.S)
    assert first is not None
    command = first.group(1).strip()
    install, _, run = command.rpartition(" && ")
    assert run == ".venv/bin/safety-stream demo", command
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    done = subprocess.run(
        ["bash", "-c", install], cwd=clone, capture_output=True, text=True, check=False, env=env
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Successfully installed" in done.stdout  # the step says what it does as it goes
    checked = subprocess.run(
        [".venv/bin/safety-stream", "validate", "schemas/examples/sparkle-l-sample.ndjson"],
        cwd=clone, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert "50 valid, 0 invalid" in checked.stdout
