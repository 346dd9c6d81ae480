"""What can stop a DSMB report from being written, each error saying how to get past it.

ReportError
 +-- LogIntegrityError        the log's hash chain does not verify up to the cut-off
 +-- ChromiumNotFoundError    --format pdf without a Chromium to print with
 +-- PdfRenderError           Chromium ran but produced no PDF
"""

from __future__ import annotations

from safety_stream.errors import SafetyStreamError


class ReportError(SafetyStreamError):
    """The report could not be produced."""


class LogIntegrityError(ReportError):
    def __init__(self, position: int | None, reason: str | None) -> None:
        self.position = position
        super().__init__(
            f"the log's hash chain is broken at position {position}: {reason}; a report from "
            "it would not be reproducible (run 'safety-stream verify' and restore the log)"
        )


class ChromiumNotFoundError(ReportError):
    def __init__(self, tried: str) -> None:
        super().__init__(
            f"no Chromium found ({tried}): install Debian's 'chromium' package "
            "(apt-get install chromium), pass --chromium PATH, or use --format html"
        )


class PdfRenderError(ReportError):
    def __init__(self, chromium: str, detail: str) -> None:
        super().__init__(f"{chromium} did not print the report to PDF: {detail}")
