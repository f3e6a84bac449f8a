"""`forecast events fetch gdelt2`: GDELT 2.0's 15-minute exports, downloaded and imported.

GDELT publishes a master file list, one line per file: ``size md5 url``. The exports of a day
range are those whose name starts with a time in it (``20191024143000.export.CSV.zip``). Each
one not imported yet (the store's ``imports`` name it by its address) is downloaded into the
workspace's scratch folder, checked against the list's size and MD5, and imported in its own
transaction, so a killed fetch resumes where it stopped: a re-run fetches only what is missing.
A file that cannot be had whole (an HTTP error, a wrong size or MD5, a broken zip) is reported
on one line and skipped; nothing of it is stored.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from forecast import resolution
from forecast.errors import EventFormatError, ForecastError
from forecast.events import ImportResult, import_events
from forecast.store import open_store
from forecast.workspace import Workspace

TIMEOUT = 60.0  # seconds without an answer before a download is given up
_EXPORT = re.compile(r"/(\d{14})\.export\.CSV\.zip$")


@dataclass(frozen=True)
class Listed:
    """One export of the master list."""

    url: str
    size: int
    md5: str
    day: dt.date


@dataclass(frozen=True)
class FetchResult:
    """What a fetch did: the exports in the range, those already imported, the imports made,
    and a one-line problem for each export that could not be had whole."""

    listed: int
    already: int
    imported: list[ImportResult] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    unreadable_lines: int = 0  # master-list lines that are not "size md5 url"

    def as_dict(self) -> dict:
        return {"listed": self.listed, "already": self.already,
                "imported": [r.as_dict() for r in self.imported], "failed": self.failed,
                "unreadable_lines": self.unreadable_lines}


def exports(master: str, since: dt.date, until: dt.date) -> tuple[list[Listed], int]:
    """The exports of the master list's text dated from `since` to `until` (by the time in their
    name), and the number of lines that are not ``size md5 url``."""
    found, unreadable = [], 0
    for line in master.splitlines():
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3 or not parts[0].isdigit() or not re.fullmatch(r"[0-9a-f]{32}",
                                                                          parts[1]):
            unreadable += 1
            continue
        stamp = _EXPORT.search(parts[2])
        if stamp is None:
            continue  # mentions, GKG: not events
        day = dt.datetime.strptime(stamp[1][:8], "%Y%m%d").date()
        if since <= day <= until:
            found.append(Listed(parts[2], int(parts[0]), parts[1], day))
    return found, unreadable


def fetch_gdelt2(ws: Workspace, *, since: dt.date, until: dt.date,
                 progress: Callable[[int, int, str | None], None] | None = None) -> FetchResult:
    """Download and import the GDELT 2.0 exports from `since` to `until` not imported yet, under
    the workspace's write lock; `progress` is told after each export how many are done, of how
    many, and its problem (None when it was imported).

    Raises
    ------
    ForecastError
        The master list cannot be read.
    """
    master_url = ws.config.fetch_gdelt2_master
    try:
        master = _get(master_url).decode("utf-8", "replace")
    except OSError as exc:
        raise ForecastError(f"{master_url}: cannot read GDELT's master file list "
                            f"({_reason(exc)}); check the address ([fetch] gdelt2_master in "
                            "forecast.toml) and the network") from exc
    listed, unreadable = exports(master, since, until)
    with ws.lock():
        con = open_store(ws.store_path)
        try:
            done = {f for (f,) in con.execute("SELECT DISTINCT file FROM imports").fetchall()}
            todo = [e for e in listed if e.url not in done]
            result = FetchResult(len(listed), len(listed) - len(todo),
                                 unreadable_lines=unreadable)
            # the imports' scratch prefix: a killed fetch's folder is cleaned up like theirs
            with tempfile.TemporaryDirectory(prefix="forecast-import-fetch-", dir=ws.root) as tmp:
                for k, export in enumerate(todo, 1):
                    problem = _fetch_one(con, ws, export, Path(tmp), result)
                    if progress is not None:
                        progress(k, len(todo), problem)
            if result.imported:
                resolution.sync_workspace(ws, con, by="forecast events fetch")
        finally:
            con.close()
    return result


def _fetch_one(con, ws: Workspace, export: Listed, tmp: Path, result: FetchResult) -> str | None:
    """Download, check and import one export; its problem on one line, or None."""
    path = tmp / export.url.rsplit("/", 1)[-1]
    try:
        data = _get(export.url)
    except OSError as exc:
        problem = f"{export.url}: not downloaded ({_reason(exc)})"
    else:
        if len(data) != export.size:
            problem = (f"{export.url}: {len(data)} bytes, but the master list says "
                       f"{export.size}: not imported")
        elif (md5 := hashlib.md5(data).hexdigest()) != export.md5:
            problem = (f"{export.url}: MD5 {md5}, but the master list says {export.md5}: "
                       "not imported")
        else:
            path.write_bytes(data)
            try:
                result.imported.append(import_events(con, path, fmt="gdelt2",
                                                     region=ws.config.region, name=export.url))
                return None
            except EventFormatError as exc:
                problem = f"{exc} (not imported)"
            finally:
                path.unlink(missing_ok=True)
    result.failed.append(problem)
    return problem


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
        return response.read()


def _reason(exc: OSError) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return str(exc)
