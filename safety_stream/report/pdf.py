"""Printing the HTML report to PDF with headless Chromium (Debian package ``chromium``).

Chromium runs with a throwaway profile, no network services and no header/footer of its own:
the report's CSS puts the version marking and page numbers in every page's margins.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from safety_stream.report.errors import ChromiumNotFoundError, PdfRenderError

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
TIMEOUT_SECONDS = 120


def find_chromium(explicit: str | None = None) -> str:
    """The Chromium to print with: ``explicit`` if given, else the first candidate on PATH."""
    if explicit is not None:
        found = shutil.which(explicit)
        if found is None and not (os.path.isfile(explicit) and os.access(explicit, os.X_OK)):
            raise ChromiumNotFoundError(f"--chromium {explicit} is not an executable")
        return found or explicit
    for name in CANDIDATES:
        found = shutil.which(name)
        if found is not None:
            return found
    raise ChromiumNotFoundError(f"none of {', '.join(CANDIDATES)} is on PATH")


def print_to_pdf(html: str, out: Path, chromium: str) -> None:
    """Write ``html`` (one self-contained document) to ``out`` as PDF."""
    with tempfile.TemporaryDirectory(prefix="safety-stream-report-") as work:
        page = Path(work) / "report.html"
        page.write_text(html, encoding="utf-8")
        printed = Path(work) / "report.pdf"
        command = [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={Path(work) / 'profile'}",
            f"--print-to-pdf={printed}",
            "--no-pdf-header-footer",
            page.as_uri(),
        ]
        try:
            finished = subprocess.run(
                command, capture_output=True, timeout=TIMEOUT_SECONDS, check=False
            )
        except subprocess.TimeoutExpired:
            raise PdfRenderError(chromium, f"no PDF after {TIMEOUT_SECONDS} s") from None
        except OSError as error:
            raise PdfRenderError(chromium, str(error)) from None
        if not printed.exists() or printed.read_bytes()[:5] != b"%PDF-":
            lines = finished.stderr.decode(errors="replace").strip().splitlines()
            detail = f"exit status {finished.returncode}"
            if lines:
                detail += f"; last message: {lines[-1]}"
            raise PdfRenderError(chromium, detail)
        shutil.move(printed, out)
