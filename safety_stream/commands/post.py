"""``safety-stream post FILE|-``: a site posts events to the ingest API, with retries."""

from __future__ import annotations

import sys

from safety_stream.client import PostError, SiteClient, post_path


def run(url: str, token: str, path: str, batch_size: int) -> int:
    client = SiteClient(url, token)
    try:
        summary = post_path(client, path, batch_size)
    except PostError as error:
        print(f"post failed: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"{path}: cannot read: {error.strerror or error}", file=sys.stderr)
        return 2
    finally:
        client.close()
    for problem in summary.problems:
        allowed = f" (allowed: {problem['allowed']})" if problem.get("allowed") else ""
        where = problem.get("path") or "(record)"
        print(f"{problem['location']}: {where}: {problem['message']}{allowed}")
    print(
        f"stored {summary.stored}, duplicates {summary.duplicates}, rejected {summary.rejected} "
        f"({summary.attempts} request(s))"
    )
    return 1 if summary.rejected else 0
