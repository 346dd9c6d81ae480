"""Deliver the dashboards: upload them to a Grafana through its HTTP API (grafana-client), or
write them as JSON files for Grafana's file provisioning, or check those files for drift."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safety_stream import __version__
from safety_stream.grafana.dashboards import all_dashboards

DEFAULT_FOLDER_TITLE = "Safety monitoring"
# The folder's uid when push creates it; a folder found by its title keeps its own uid.
FOLDER_UID = "safety-stream"
DEFAULT_EXPORT_DIR = Path("deploy/grafana/dashboards")


@dataclass(frozen=True)
class PushResult:
    """One uploaded dashboard, as Grafana answered."""

    uid: str
    title: str
    folder_uid: str
    folder_created: bool
    version: int | None
    url: str | None
    status: str | None


class GrafanaPushError(RuntimeError):
    """An upload failed; says which dashboard (or the folder) and which HTTP status."""

    def __init__(self, message: str, *, dashboard: str | None, status: int | None) -> None:
        super().__init__(message)
        self.dashboard = dashboard
        self.status = status


def _hint(status: int | None) -> str:
    return {
        401: " (check the token: a Grafana service account token with the Editor role)",
        403: " (the token may not write dashboards or folders: it needs the Editor role)",
        404: " (is the URL the Grafana root, e.g. http://grafana:3000/?)",
        412: " (Grafana refused the version or name; push with overwrite to replace it)",
    }.get(status or 0, "")


def _failure(what: str, base_url: str, error: Exception, dashboard: str | None) -> Exception:
    from grafana_client.client import GrafanaException

    if isinstance(error, GrafanaException):
        status = error.status_code or None
        response = error.response
        detail = response.get("message") if isinstance(response, dict) else None
        message = str(detail or error.message or error)
        shown = f"HTTP {status}" if status else "no HTTP response"
        return GrafanaPushError(
            f"{what} at {base_url} failed: {shown}: {message}{_hint(status)}",
            dashboard=dashboard,
            status=status,
        )
    return GrafanaPushError(
        f"{what} at {base_url} failed: cannot reach Grafana: {error}",
        dashboard=dashboard,
        status=None,
    )


def _api(url: str, token: str, timeout: float) -> Any:
    from grafana_client.api import GrafanaApi

    # grafana-client joins the URL's path and "api" with no slash in between, so a Grafana
    # served under a sub-path needs the trailing slash ("http://host/grafana/").
    return GrafanaApi.from_url(url.rstrip("/") + "/", credential=token, timeout=timeout)


def _ensure_folder(api: Any, title: str, base_url: str) -> tuple[str, bool]:
    """The uid of the folder titled ``title``, created (uid ``safety-stream``) if missing;
    and whether it was created now."""
    from grafana_client.client import GrafanaClientError, GrafanaException

    try:
        hits = api.search.search_dashboards(query=title, type_="dash-folder")
        for hit in hits:
            if hit.get("title") == title and hit.get("uid"):
                return str(hit["uid"]), False
        try:
            existing = api.folder.get_folder(FOLDER_UID)
        except GrafanaClientError as error:
            if error.status_code != 404:
                raise
        else:
            # The folder was renamed in Grafana; keep using it rather than fail on its uid.
            return str(existing["uid"]), False
        created = api.folder.create_folder(title, uid=FOLDER_UID)
        return str(created["uid"]), True
    except (GrafanaException, OSError) as error:
        raise _failure(
            f"finding or creating the folder {title!r}", base_url, error, None
        ) from error


def push_dashboards(
    url: str,
    token: str,
    folder_title: str = DEFAULT_FOLDER_TITLE,
    overwrite: bool = True,
    *,
    dashboards: Sequence[dict[str, Any]] | None = None,
    timeout: float = 10.0,
) -> list[PushResult]:
    """Upload every dashboard (by default ``all_dashboards()``) into the folder
    ``folder_title`` of the Grafana at ``url``, authenticating with a bearer ``token``.

    Raises GrafanaPushError naming the dashboard (or the folder) and the HTTP status on the
    first failure; dashboards uploaded before it stay uploaded."""
    from grafana_client.client import GrafanaException

    if not token:
        raise GrafanaPushError("no Grafana token given", dashboard=None, status=None)
    api = _api(url, token, timeout)
    folder_uid, created = _ensure_folder(api, folder_title, url)
    results: list[PushResult] = []
    for dashboard in all_dashboards() if dashboards is None else dashboards:
        uid, title = str(dashboard["uid"]), str(dashboard.get("title", ""))
        body = {
            "dashboard": dashboard,
            "folderUid": folder_uid,
            "overwrite": overwrite,
            "message": f"safety-stream {__version__}: dashboards as code",
        }
        try:
            answer = api.dashboard.update_dashboard(body)
        except (GrafanaException, OSError) as error:
            raise _failure(f"uploading dashboard {uid!r} ({title})", url, error, uid) from error
        answer = answer if isinstance(answer, dict) else {}
        results.append(
            PushResult(
                uid=str(answer.get("uid", uid)),
                title=title,
                folder_uid=folder_uid,
                folder_created=created,
                version=answer.get("version"),
                url=answer.get("url"),
                status=answer.get("status"),
            )
        )
    return results


# --- files -----------------------------------------------------------------------------------


def render(dashboard: dict[str, Any]) -> str:
    """The committed form of a dashboard: sorted keys, two-space indent, final newline."""
    return json.dumps(dashboard, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def expected_files(dashboards: Sequence[dict[str, Any]] | None = None) -> dict[str, str]:
    """File name (``<uid>.json``) to content, for every dashboard."""
    chosen = all_dashboards() if dashboards is None else dashboards
    return {f"{dashboard['uid']}.json": render(dashboard) for dashboard in chosen}


def export_dashboards(directory: Path, check: bool) -> list[Path]:
    """Write ``<uid>.json`` for every dashboard into ``directory`` and return the paths.

    With ``check``, write nothing and return the files that drift instead: missing, different
    from what the code produces, or a ``*.json`` no dashboard produces (Grafana's file
    provider would load it too). An empty list means the directory is up to date."""
    expected = expected_files()
    if check:
        drifting = [
            directory / name
            for name, text in expected.items()
            if not (directory / name).is_file()
            or (directory / name).read_text(encoding="utf-8") != text
        ]
        if directory.is_dir():
            drifting += sorted(p for p in directory.glob("*.json") if p.name not in expected)
        return drifting
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in expected.items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
