"""The event store: a DuckDB file in the workspace holding deduplicated events and provenance.

Tables
------
``meta``
    ``key``/``value`` pairs; ``schema_version`` says which layout the file has.
``events``
    One row per distinct event. The deduplication key is (``date``, ``actor1``, ``actor2``,
    ``event_code``, ``location``, ``source_url``), NULLs comparing equal, and for a curated feed
    (ACLED) also its own event id, so two of its events are never merged; ``duplicates`` counts
    the further source rows that had the same key, so ``1 + duplicates`` is the number of source
    rows behind an event. ``file``, ``line`` and ``original_id`` point at the first source row
    that was stored. ``folded_into`` (``file:line``) marks a machine-coded event that the optional
    cross-feed step found to report a curated one (`forecast.events.merge_feeds`): it is no longer
    counted as an event of its own, but it still shows the days its feed covers.
``event_sources``
    (``sha256``, ``line``, ``row_hash``) of every source row counted (stored or counted as a
    duplicate), where ``sha256`` is the SHA-256 of the file's (decompressed) content and
    ``row_hash`` a 128-bit hash of the row's event fields (`ROW_FIELDS`). Importing the same
    content again, or the same rows in another file (a re-export with CRLF line ends or in
    another order), finds them here and counts them as duplicates without touching ``events``:
    one source row is one source, however often it is imported.
``imports``
    One row per import: file, content hash, format, region, the counts reported, and the days
    its valid rows span (``first_day``, ``last_day``: the day GDELT coded a row, DATEADDED, else
    the event's day), which `forecast.resolution` reads as what the data cover.

Every change of an import happens in one transaction (:func:`transaction`), so a failed import
leaves the store as it was.
"""

from __future__ import annotations

import functools
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import duckdb

from forecast.errors import (
    OS_ADVICE,
    ForecastError,
    StoreDamagedError,
    WorkspaceBusyError,
    WorkspaceError,
    first_line,
    os_error_line,
)

SCHEMA_VERSION = 1

#: Seconds a command waits for the store file while another process has it open in a
#: conflicting mode: a writer holds it for the length of one import or one record, which on a
#: busy machine takes seconds (the workspace lock's default wait is as long).
STORE_WAIT = 30.0

#: Where a damage message sends the user.
RECOVERY = "run `forecast doctor --repair` to restore it from its backup (the damaged file is kept)"

_LOCKED = "Could not set lock on file"
_DAMAGE_SIGNS = ("not a valid DuckDB database file", "Could not read enough bytes",
                 "Corrupt database file", "checksum")

#: The columns of ``events`` in table order that importers produce (plus ``line``) for each row;
#: ``folded_into`` follows them.
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


def _identity(table: str = "") -> str:
    """SQL: the event id of a curated feed (ACLED's event_id_cnty), NULL for machine-coded ones:
    two rows of a curated feed with different ids are never one event, whatever they share."""
    return f"CASE WHEN {table}source_format = 'acled' THEN {table}original_id END"

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
    duplicates INTEGER NOT NULL DEFAULT 0,
    folded_into VARCHAR
);
-- stores made before the cross-feed step (`forecast.events.merge_feeds`)
ALTER TABLE events ADD COLUMN IF NOT EXISTS folded_into VARCHAR;
CREATE TABLE IF NOT EXISTS event_sources (
    sha256 VARCHAR NOT NULL,
    line BIGINT NOT NULL,
    row_hash UHUGEINT
);
-- stores made before source rows were known by their fields (their rows keep NULL)
ALTER TABLE event_sources ADD COLUMN IF NOT EXISTS row_hash UHUGEINT;
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
    rejected BIGINT NOT NULL,
    first_day DATE,
    last_day DATE
);
"""

#: The forecast history's tables (`forecast.history`), and the columns stores made by older
#: versions gain on their first write.
HISTORY_TABLES = """
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY,
    created_at TIMESTAMP NOT NULL DEFAULT now(),
    as_of DATE NOT NULL,
    seed BIGINT NOT NULL,
    draws INTEGER NOT NULL,
    tune INTEGER NOT NULL,
    chains INTEGER NOT NULL,
    data_hash VARCHAR NOT NULL,
    priors_hash VARCHAR NOT NULL,
    code_version VARCHAR NOT NULL,
    posterior_file VARCHAR NOT NULL,
    r_hat_max DOUBLE NOT NULL,
    ess_bulk_min DOUBLE NOT NULL,
    divergences INTEGER NOT NULL,
    worst VARCHAR NOT NULL,
    converged BOOLEAN NOT NULL,
    allow_unconverged BOOLEAN NOT NULL,
    simulated BOOLEAN NOT NULL
);
CREATE TABLE IF NOT EXISTS forecasts (
    run_id VARCHAR NOT NULL,
    question VARCHAR NOT NULL,
    scenario VARCHAR NOT NULL,
    deadline DATE NOT NULL,
    probability DOUBLE NOT NULL,
    low DOUBLE NOT NULL,
    high DOUBLE NOT NULL,
    status VARCHAR NOT NULL,
    PRIMARY KEY (run_id, question)
);
CREATE TABLE IF NOT EXISTS resolutions (
    question VARCHAR NOT NULL,
    state VARCHAR NOT NULL,
    resolved_on DATE,
    method VARCHAR NOT NULL,
    evidence VARCHAR NOT NULL,
    resolved_by VARCHAR NOT NULL,
    recorded_at TIMESTAMP NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS judgments (
    question VARCHAR NOT NULL,
    probability DOUBLE NOT NULL,
    note VARCHAR,
    judged_by VARCHAR NOT NULL,
    recorded_at TIMESTAMP NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS submissions (
    submitted_at TIMESTAMP NOT NULL DEFAULT now(),
    platform VARCHAR NOT NULL,
    question VARCHAR NOT NULL,
    probability DOUBLE NOT NULL,
    model_probability DOUBLE NOT NULL,
    judgment DOUBLE,
    model_weight DOUBLE NOT NULL,
    judgment_weight DOUBLE NOT NULL,
    extremize DOUBLE NOT NULL,
    run_id VARCHAR NOT NULL,
    as_of DATE NOT NULL,
    forced BOOLEAN NOT NULL,
    destination VARCHAR NOT NULL
);
-- stores made before runs kept the fingerprint of their inputs (see `forecast.update`)
ALTER TABLE runs ADD COLUMN IF NOT EXISTS inputs_hash VARCHAR;
-- and before they kept the forecasts without the claims (`forecast.forecasts`)
ALTER TABLE runs ADD COLUMN IF NOT EXISTS claims_pareto_k DOUBLE;
ALTER TABLE forecasts ADD COLUMN IF NOT EXISTS without_claims DOUBLE;
-- and before what-if runs and the current run were told apart (`forecast.history.current_runs`)
ALTER TABLE runs ADD COLUMN IF NOT EXISTS what_if BOOLEAN DEFAULT false;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS current_at TIMESTAMP;
"""

#: Stores made before imports recorded the days they span get them from the events each file
#: stored (once: the columns are then there).
_SPANS = """
ALTER TABLE imports ADD COLUMN first_day DATE;
ALTER TABLE imports ADD COLUMN last_day DATE;
UPDATE imports SET first_day = span.first_day, last_day = span.last_day
FROM (SELECT file, min(date) AS first_day, max(date) AS last_day FROM events GROUP BY file) span
WHERE imports.file = span.file;
"""


def open_store(path: Path, *, read_only: bool = False,
               wait: float = STORE_WAIT) -> duckdb.DuckDBPyConnection:
    """Open the event store at `path`, creating its tables if they are missing.

    Parameters
    ----------
    path
        The DuckDB file (``<workspace>/store.duckdb``); created unless `read_only`.
    read_only
        Open without write access; the file must exist and have a schema.
    wait
        Seconds to keep trying while another process has the file open in a conflicting mode
        (DuckDB lets one process write to a file, or any number read it).

    Returns
    -------
    duckdb.DuckDBPyConnection
        A connection the caller closes.

    Raises
    ------
    WorkspaceBusyError
        Another process still holds the file after `wait` seconds.
    StoreDamagedError
        The file is truncated or overwritten (see `forecast doctor`).
    WorkspaceError
        The file is missing (read-only), not a store, or from a newer version of the program.
    """
    con = _connect(path, read_only, wait)
    try:
        if read_only or tables(con):  # before creating what is missing: a table dropped by
            _check_version(con, path)  # another program is not made anew, empty
            _check_schema(con, path)
        if not read_only:
            with transaction(con):
                con.execute(_SCHEMA)
                if not has_column(con, "imports", "first_day"):
                    con.execute(_SPANS)
                con.execute(
                    "INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT DO NOTHING",
                    [str(SCHEMA_VERSION)],
                )
        elif not has_column(con, "events", "folded_into"):
            _events_as_migrated(con)
        _check_size(con, path)
    except duckdb.Error as exc:
        con.close()
        error = damage(exc, path)
        if error is None:
            raise
        raise error from exc
    except BaseException:
        con.close()
        raise
    return con


def _events_as_migrated(con: duckdb.DuckDBPyConnection) -> None:
    """A store written before the cross-feed step, opened read-only, cannot gain its column
    (`_SCHEMA`): a view of the same name shows its events as the next write will, none folded."""
    (name,) = con.execute("SELECT current_database()").fetchone() or ("",)
    quoted = '"' + name.replace('"', '""') + '"'
    con.execute("CREATE TEMP VIEW events AS "
                f"SELECT *, NULL::VARCHAR AS folded_into FROM {quoted}.main.events")


def _connect(path: Path, read_only: bool, wait: float) -> duckdb.DuckDBPyConnection:
    deadline, pause = time.monotonic() + wait, 0.02
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            if _LOCKED not in str(exc):
                reason = first_line(exc)
                raise damage(exc, path) or WorkspaceError(
                    f"{path}: cannot open the event store ({reason})") from exc
            if time.monotonic() + pause > deadline:
                holder = re.search(r"\(PID (\d+)\)", str(exc))
                by = f" (process {holder[1]})" if holder else ""
                raise WorkspaceBusyError(
                    f"{path}: the event store is in use by another process{by} (waited "
                    f"{wait:g} s); try again when it has finished") from exc
            time.sleep(pause)
            pause = min(2 * pause, 0.25)


def damage(exc: BaseException, path: Path) -> StoreDamagedError | None:
    """`exc`, raised by DuckDB on the store at `path`, as a one-line `StoreDamagedError` if it
    says the file is damaged (truncated, overwritten, a block failing its checksum); else None.
    """
    if not isinstance(exc, duckdb.Error) or not any(
            sign in str(exc) for sign in _DAMAGE_SIGNS):
        return None
    return StoreDamagedError(f"{path}: the event store is damaged ({first_line(exc)}); "
                             f"{RECOVERY}")


def refusal(exc: BaseException, path: Path) -> ForecastError | None:
    """`exc`, raised by DuckDB writing the store at `path`, as one line if the file system
    refused the write (a full disk, a read-only one: DuckDB quotes the system's words); else
    None. The transaction was rolled back: nothing of the command is in the store."""
    if not isinstance(exc, duckdb.Error):
        return None
    for code in OS_ADVICE:
        if os.strerror(code) in str(exc):
            return ForecastError(os_error_line(OSError(code, os.strerror(code), str(path)))
                                 + " (nothing of this command was stored)")
    return None


def journal(path: Path) -> Path:
    """DuckDB's write-ahead log of the store at `path`: left by a killed writer until the next
    writer opens the store and replays it."""
    return path.with_name(path.name + ".wal")


def _check_size(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """A file shorter than the blocks in use was truncated. (Free blocks at the end may be cut
    off by a checkpoint, so the test is conservative: used blocks can lie beyond a shorter cut.
    While the journal of a killed writer waits to be replayed, the counts may include blocks
    still in it: not checked then.)"""
    if not path.is_file() or journal(path).exists():
        return  # an in-memory store (":memory:"), or a journal to replay
    block_size, used = con.execute(
        "SELECT block_size, used_blocks FROM pragma_database_size() "
        "WHERE database_name = current_database()").fetchone() or (0, 0)
    size = path.stat().st_size
    if size < block_size * used:
        raise StoreDamagedError(f"{path}: the event store is damaged (truncated: {size} bytes, "
                                f"but {used} blocks of {block_size} in use); {RECOVERY}")


def verify(path: Path) -> dict[str, int]:
    """Read every table of the store at `path` whole (DuckDB checks every block's checksum).

    Returns
    -------
    dict[str, int]
        The number of rows of each table.

    Raises
    ------
    StoreDamagedError
        A table cannot be read whole, or the file is truncated or not a store.
    """
    con = open_store(path, read_only=True, wait=0)
    try:
        rows = {}
        for table in tables(con):
            try:
                rows[table] = count(con, f'SELECT count(hash(t)) FROM "{table}" t')
            except duckdb.Error as exc:
                raise StoreDamagedError(f"{path}: the event store is damaged (table {table}: "
                                        f"{first_line(exc)}); {RECOVERY}") from exc
        return rows
    finally:
        con.close()


def row_counts(path: Path) -> dict[str, int]:
    """The number of rows of each table (from DuckDB's metadata: cheap, reads no data)."""
    con = open_store(path, read_only=True, wait=0)
    try:
        return {t: count(con, f'SELECT count(*) FROM "{t}"') for t in tables(con)}
    finally:
        con.close()


def tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The tables of the store's main database, by name."""
    return [r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
        "AND NOT temporary ORDER BY table_name").fetchall()]


#: Columns a store made by an older version gains on its first write by this one.
_ADDED_LATER = {("imports", "first_day"), ("imports", "last_day"), ("runs", "inputs_hash"),
                ("event_sources", "row_hash"), ("events", "folded_into"),
                ("runs", "claims_pareto_k"), ("forecasts", "without_claims"),
                ("runs", "what_if"), ("runs", "current_at")}
#: The tables every store has from its creation (the history's come with its first write).
_FIRST_TABLES = ("meta", "events", "event_sources", "imports")


def _columns(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, str]]:
    """Each table's columns and their types."""
    found: dict[str, dict[str, str]] = {}
    for table, column, kind in con.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_catalog = current_database() AND table_schema = 'main'").fetchall():
        found.setdefault(table, {})[column] = kind
    return found


@functools.cache
def _expected_columns() -> dict[str, dict[str, str]]:
    with duckdb.connect(":memory:") as con:
        con.execute(_SCHEMA + HISTORY_TABLES)
        return _columns(con)


def _check_schema(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Every table and column this program reads is there, with its type: another DuckDB client
    may have changed them (`ALTER TABLE events DROP COLUMN ...`). Such a store is damaged: it
    never replaces its backup (`verify`), and `forecast doctor --repair` restores the backup."""
    have = _columns(con)
    for table, columns in _expected_columns().items():
        if table not in have:
            if table in _FIRST_TABLES:
                raise StoreDamagedError(f"{path}: the event store's table {table} is missing "
                                        f"(changed by another program?); {RECOVERY}")
            continue
        for column, kind in columns.items():
            found = have[table].get(column)
            if found == kind or (found is None and (table, column) in _ADDED_LATER):
                continue
            what = "is missing" if found is None else f"is {found}, not {kind}"
            raise StoreDamagedError(f"{path}: the event store's column {table}.{column} {what} "
                                    f"(changed by another program?); {RECOVERY}")


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


#: The fields that make a source row what it is (all but where it was read, and the count).
ROW_FIELDS = tuple(c for c in EVENT_COLUMNS if c not in ("file", "line", "duplicates"))
_ROW_HASH_SQL = ("md5_number(concat_ws(chr(31), " + ", ".join(
    f"coalesce({c}::VARCHAR, chr(0))" for c in ROW_FIELDS) + "))")


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
    A source row already in ``event_sources`` (by its line in this content, or by its fields in
    any file) changes nothing. Each new source row is recorded
    there; among the new rows sharing a deduplication key the one with the lowest line becomes the
    event unless the key is already stored, and the others raise that event's ``duplicates``.
    """
    key_match = " AND ".join([*(f"e.{c} IS NOT DISTINCT FROM g.{c}" for c in DEDUP_KEY),
                              f"{_identity('e.')} IS NOT DISTINCT FROM g.identity"])
    key = ", ".join([*DEDUP_KEY, "identity"])
    columns = ", ".join(c for c in EVENT_COLUMNS if c != "duplicates")
    total = count(con, f"SELECT count(*) FROM {rows}")
    # the source rows not counted before: not of this content, nor a row with the same fields
    # imported from another file (a re-export); copies within this file count as usual
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _fresh AS
            SELECT line, row_hash, {key} FROM (
                SELECT *, {_ROW_HASH_SQL} AS row_hash, {_identity()} AS identity FROM {rows})
            WHERE line NOT IN (SELECT line FROM event_sources WHERE sha256 = ?)
              AND row_hash NOT IN (SELECT row_hash FROM event_sources
                                   WHERE row_hash IS NOT NULL)""",
        [sha256],
    )
    # One row per key among the source rows not counted before; `known` when the store already
    # has the event.
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _groups AS
            SELECT g.*, EXISTS (SELECT 1 FROM events e WHERE {key_match}) AS known
            FROM (SELECT {key}, min(line) AS first_line, count(*) AS n
                  FROM _fresh GROUP BY ALL) g""")
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
    imported = count(con, "SELECT count(*) FROM _groups WHERE NOT known")
    con.execute("INSERT INTO event_sources SELECT ?, line, row_hash FROM _fresh ORDER BY line",
                [sha256])
    con.execute("DROP TABLE _groups; DROP TABLE _fresh")
    return imported, total - imported


def has_column(con: duckdb.DuckDBPyConnection, table: str, column: str) -> bool:
    return count(con, "SELECT count(*) FROM information_schema.columns WHERE table_name = ? "
                      "AND column_name = ?", [table, column]) > 0


def log_import(
    con: duckdb.DuckDBPyConnection,
    *,
    file: str,
    sha256: str,
    fmt: str,
    region: str | None,
    counts: dict[str, int],
    span: tuple[date | None, date | None],
) -> None:
    """Record one import, its counts (``read``, ``imported``, ...) and the days its rows span
    (first, last) in ``imports``."""
    con.execute(
        """INSERT INTO imports (file, sha256, format, region, read, imported, duplicate,
                                outside_region, rejected, first_day, last_day)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
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
            *span,
        ],
    )


def count(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> int:
    """The integer a counting query returns (0 if it returns no row)."""
    row = con.execute(sql, params or []).fetchone()
    return int(row[0]) if row else 0
