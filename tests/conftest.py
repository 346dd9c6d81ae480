"""Shared test helpers: repository paths and example events."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "schemas" / "examples"
SHARED = REPO.parent / "shared"
CTCAE_XLSX = SHARED / "reference" / "ctcae" / "CTCAE_v5.0_2017-11-27.xlsx"


def example(name: str) -> dict[str, Any]:
    """A fresh copy of a valid example event, by file stem (e.g. 'ae.reported')."""
    data: dict[str, Any] = json.loads((EXAMPLES / "valid" / f"{name}.json").read_text())
    return copy.deepcopy(data)
