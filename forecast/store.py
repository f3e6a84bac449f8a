"""The event store: a DuckDB file in the workspace holding deduplicated events and provenance.

Tables
------
``meta``
    ``key``/``value`` pairs; ``schema_version`` says which layout the file has.
``events``
    One row per distinct event. The deduplication key is (``date``, ``actor1``, ``actor2``,
    ``event_code``, ``location``, ``source_url``), NULLs comparing equal; ``duplicates`` counts
    the further source rows that had the same key, so ``1 + duplicates`` is the number of source
    rows behind an event. ``file``, ``line`` and ``original_id`` point at the first source row
    that was stored.
``event_sources``
    (``sha256``, ``line``) of every source row counted (stored or counted as a duplicate), where
    ``sha256`` is the SHA-256 of the file's (decompressed) content. Importing the same content again
    finds its rows here and counts them as duplicates without touching ``events``.
``imports``
    One row per import: file, content hash, format, region and the counts reported.

Every change of an import happens in one transaction (:func:`transaction`), so a failed import
leaves the store as it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from forecast.errors import WorkspaceBusyError, WorkspaceError

SCHEMA_VERSION = 1

#: The columns of ``events`` in table order; importers produce them (plus ``line``) for each row.
EVENT_COLUMNS = (
    "date",
    "actor1",
    "actor2",
    "event_code",
    "goldstein",
    "num_sources",
    "source_url",
    "location",
    "is_root",
    "source_format",
    "file",
    "line",
    "original_id",
    "duplicates",
)

DEDUP_KEY = ("date", "actor1", "actor2", "event_code", "location", "source_url")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    date DATE NOT NULL,
    actor1 VARCHAR,
    actor2 VARCHAR,
    event_code VARCHAR NOT NULL,
    goldstein DOUBLE,
    num_sources INTEGER NOT NULL,
    source_url VARCHAR,
    location VARCHAR,
    is_root BOOLEAN,
    source_format VARCHAR NOT NULL,
    file VARCHAR NOT NULL,
    line BIGINT NOT NULL,
    original_id VARCHAR,
    duplicates INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS event_sources (sha256 VARCHAR NOT NULL, line BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS imports (
    imported_at TIMESTAMP NOT NULL DEFAULT now(),
    file VARCHAR NOT NULL,
    sha256 VARCHAR NOT NULL,
    format VARCHAR NOT NULL,
    region VARCHAR,
    read BIGINT NOT NULL,
    imported BIGINT NOT NULL,
    duplicate BIGINT NOT NULL,
    outside_region BIGINT NOT NULL,
    rejected BIGINT NOT NULL
);
"""


def open_store(path: Path, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the event store at `path`, creating its tables if they are missing.

    Parameters
    ----------
    path
        The DuckDB file (``<workspace>/store.duckdb``); created unless `read_only`.
    read_only
        Open without write access; the file must exist and have a schema.

    Returns
    -------
    duckdb.DuckDBPyConnection
        A connection the caller closes.

    Raises
    ------
    WorkspaceBusyError
        Another process holds the file open for writing.
    WorkspaceError
        The file is missing (read-only), not a store, or from a newer version of the program.
    """
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            message = f"{path}: the event store is in use by another process"
            raise WorkspaceBusyError(message) from exc
        reason = str(exc).strip().splitlines()[0]
        raise WorkspaceError(f"{path}: cannot open the event store ({reason})") from exc
    try:
        if not read_only:
            with transaction(con):
                con.execute(_SCHEMA)
                con.execute(
                    "INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT DO NOTHING",
                    [str(SCHEMA_VERSION)],
                )
        _check_version(con, path)
    except BaseException:
        con.close()
        raise
    return con


def _check_version(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    try:
        row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except duckdb.CatalogException:
        row = None
    if row is None:
        raise WorkspaceError(f"{path}: not an event store (no schema_version)")
    if int(row[0]) > SCHEMA_VERSION:
        raise WorkspaceError(
            f"{path}: the store has schema version {row[0]}, newer than this program's "
            f"{SCHEMA_VERSION}; upgrade forecast"
        )


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """Run the block in one transaction: commit if it returns, roll back if it raises."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def add_events(con: duckdb.DuckDBPyConnection, rows: str, *, sha256: str) -> tuple[int, int]:
    """Merge candidate events into the store, deduplicating them; call inside :func:`transaction`.

    Parameters
    ----------
    con
        The store.
    rows
        Name of a table or view holding the :data:`EVENT_COLUMNS` except ``duplicates``, one row
        per valid, in-region source row of one file, ``line`` unique.
    sha256
        The content hash of that file.

    Returns
    -------
    tuple[int, int]
        ``(imported, duplicate)``: source rows stored as new events, and source rows counted as
        duplicates (of an event already stored, of an earlier row of the same file, or because this
        content was imported before).

    Notes
    -----
    A source row already in ``event_sources`` changes nothing. Each new source row is recorded
    there; among the new rows sharing a deduplication key the one with the lowest line becomes the
    event unless the key is already stored, and the others raise that event's ``duplicates``.
    """
    key_match = " AND ".join(f"e.{c} IS NOT DISTINCT FROM g.{c}" for c in DEDUP_KEY)
    key = ", ".join(DEDUP_KEY)
    columns = ", ".join(c for c in EVENT_COLUMNS if c != "duplicates")
    total = _count(con, f"SELECT count(*) FROM {rows}")
    fresh = f"{rows} WHERE line NOT IN (SELECT line FROM event_sources WHERE sha256 = ?)"
    # One row per key among the source rows not counted before; `known` when the store already
    # has the event.
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _groups AS
            SELECT g.*, EXISTS (SELECT 1 FROM events e WHERE {key_match}) AS known
            FROM (SELECT {key}, min(line) AS first_line, count(*) AS n
                  FROM {fresh} GROUP BY ALL) g""",
        [sha256],
    )
    con.execute(
        f"""UPDATE events e SET duplicates = e.duplicates + g.n
            FROM _groups g WHERE g.known AND {key_match}"""
    )
    con.execute(
        f"""INSERT INTO events ({columns}, duplicates)
            SELECT {", ".join(f"r.{c}" for c in columns.split(", "))}, g.n - 1
            FROM {rows} r JOIN _groups g ON r.line = g.first_line
            WHERE NOT g.known ORDER BY r.date, r.line"""
    )
    imported = _count(con, "SELECT count(*) FROM _groups WHERE NOT known")
    con.execute(
        f"INSERT INTO event_sources SELECT ?, line FROM {fresh} ORDER BY line", [sha256, sha256]
    )
    con.execute("DROP TABLE _groups")
    return imported, total - imported


def log_import(
    con: duckdb.DuckDBPyConnection,
    *,
    file: str,
    sha256: str,
    fmt: str,
    region: str | None,
    counts: dict[str, int],
) -> None:
    """Record one import and its counts (``read``, ``imported``, ...) in ``imports``."""
    con.execute(
        """INSERT INTO imports (file, sha256, format, region, read, imported, duplicate,
                                outside_region, rejected)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        [
            file,
            sha256,
            fmt,
            region,
            counts["read"],
            counts["imported"],
            counts["duplicate"],
            counts["outside_region"],
            counts["rejected"],
        ],
    )


def _count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = con.execute(sql).fetchone()
    return int(row[0]) if row else 0
