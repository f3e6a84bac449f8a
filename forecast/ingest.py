"""Event files into the workspace's store, and the questions the new events settle.

One write lock covers the files and the resolutions they imply, so a reader never sees events
whose verdict on the questions is not recorded yet. Each file is imported in its own transaction
(`forecast.events.import_events`): a failing file leaves the ones before it stored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from forecast import events, resolution
from forecast.events import Format, ImportResult, import_events
from forecast.store import transaction
from forecast.workspace import Workspace


def import_files(ws: Workspace, paths: Sequence[Path], *, fmt: Format = "auto",
                 by: str = "forecast events import",
                 each: Callable[[Path, ImportResult], None] | None = None
                 ) -> tuple[list[ImportResult], list[resolution.Resolution]]:
    """Import `paths` in order, then record the resolutions the events imply.

    Parameters
    ----------
    each
        Called after each file with its result (to report progress as it goes).

    Returns
    -------
    The import results, and the new resolution rows (`forecast.resolution.sync`).
    """
    results = []
    with ws.lock(), ws.store() as con:
        for path in paths:
            results.append(import_events(con, path, fmt=fmt, region=ws.config.region))
            if each is not None:
                each(path, results[-1])
        return results, resolution.sync_workspace(ws, con, by=by)


def merge_feeds(ws: Workspace, *, days: int, apply: bool, by: str = "forecast events merge-feeds"
                ) -> tuple[list[dict], list[resolution.Resolution]]:
    """`forecast.events.merge_feeds` on the workspace's store, in one transaction, then the
    resolutions the merged events imply; without `apply` (a dry run), read-only."""
    if not apply:
        with ws.store(read_only=True) as con:
            return events.merge_feeds(con, days=days, apply=False), []
    with ws.lock(), ws.store() as con:
        with transaction(con):
            pairs = events.merge_feeds(con, days=days)
        return pairs, resolution.sync_workspace(ws, con, by=by) if pairs else []
