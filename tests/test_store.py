import subprocess
import sys
import textwrap
from datetime import date
from pathlib import Path

import duckdb
import pytest

from forecast.errors import WorkspaceBusyError, WorkspaceError
from forecast.store import SCHEMA_VERSION, add_events, open_store, transaction

SHA_A = "a" * 64
SHA_B = "b" * 64


def candidates(con: duckdb.DuckDBPyConnection, rows: list[tuple]) -> str:
    """A candidate table of (line, date, actor1, actor2, event_code, location, source_url[,
    original_id])."""
    con.execute(
        """CREATE OR REPLACE TEMP TABLE cand (
            date DATE, actor1 VARCHAR, actor2 VARCHAR, event_code VARCHAR, goldstein DOUBLE,
            num_sources INTEGER, source_url VARCHAR, location VARCHAR, is_root BOOLEAN,
            source_format VARCHAR, file VARCHAR, line BIGINT, original_id VARCHAR)"""
    )
    for line, day, a1, a2, code, loc, url, *ident in rows:
        con.execute(
            "INSERT INTO cand VALUES (?, ?, ?, ?, NULL, 1, ?, ?, NULL, 'native', 'f.csv', ?, ?)",
            [day, a1, a2, code, url, loc, line, ident[0] if ident else None],
        )
    return "cand"


def events(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute(
        "SELECT date, actor1, actor2, event_code, location, source_url, line, duplicates "
        "FROM events ORDER BY ALL"
    ).fetchall()


D = date(2025, 5, 16)


@pytest.fixture
def con(tmp_path: Path):
    con = open_store(tmp_path / "store.duckdb")
    yield con
    con.close()


def test_open_store_creates_the_schema_once(tmp_path: Path) -> None:
    path = tmp_path / "store.duckdb"
    open_store(path).close()
    con = open_store(path)  # again: idempotent
    tables = {row[0] for row in con.execute("SHOW TABLES").fetchall()}
    assert {"meta", "events", "event_sources", "imports"} <= tables
    assert con.execute("SELECT key, value FROM meta").fetchall() == [
        ("schema_version", str(SCHEMA_VERSION))
    ]
    con.close()
    read_only = open_store(path, read_only=True)
    assert read_only.execute("SELECT count(*) FROM events").fetchone() == (0,)
    read_only.close()


def test_a_store_from_before_the_cross_feed_step_reads_and_upgrades(tmp_path: Path) -> None:
    from forecast.events import event_stats, import_events, list_events

    path = tmp_path / "store.duckdb"
    con = open_store(path)
    import_events(con, Path(__file__).parent / "data" / "native-sample.csv")
    con.execute("ALTER TABLE events DROP COLUMN folded_into")  # as an older version made it
    con.close()
    old = open_store(path, read_only=True)  # cannot gain the column: read as if it had it
    listed, stats = list_events(old), event_stats(old)
    old.close()
    assert (len(listed), stats["events"], stats["folded"]) == (3, 3, 0)
    open_store(path).close()  # the next write adds it
    with duckdb.connect(str(path), read_only=True) as raw:
        assert raw.execute("SELECT count(*), count(folded_into) FROM events").fetchone() == (3, 0)


def test_read_only_store_must_exist(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="cannot open the event store"):
        open_store(tmp_path / "missing.duckdb", read_only=True)


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "store.duckdb"
    with open_store(path) as con:
        con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [SCHEMA_VERSION + 1])
    with pytest.raises(WorkspaceError, match="newer than this program's"):
        open_store(path)


def test_a_duckdb_file_without_our_schema_is_not_a_store(tmp_path: Path) -> None:
    path = tmp_path / "other.duckdb"
    duckdb.connect(str(path)).close()
    with pytest.raises(WorkspaceError, match="not an event store"):
        open_store(path, read_only=True)


@pytest.mark.slow
def test_a_store_held_by_another_process_is_busy(tmp_path: Path) -> None:
    path = tmp_path / "store.duckdb"
    open_store(path).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
                import sys, duckdb
                con = duckdb.connect({str(path)!r})
                print("ready", flush=True)
                sys.stdin.read()
            """),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        with pytest.raises(WorkspaceBusyError) as err:
            open_store(path, wait=0.2)
    finally:
        holder.communicate("")
    assert str(err.value) == (f"{path}: the event store is in use by another process (process "
                              f"{holder.pid}) (waited 0.2 s); try again when it has finished")


def test_transaction_rolls_back_on_error(con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(RuntimeError), transaction(con):
        con.execute("INSERT INTO meta VALUES ('x', 'y')")
        raise RuntimeError
    assert con.execute("SELECT count(*) FROM meta WHERE key = 'x'").fetchone() == (0,)


def test_duplicates_within_a_file_count_on_the_first_row(con: duckdb.DuckDBPyConnection) -> None:
    rows = [
        (2, D, "RUS", "AZE", "163", None, "http://a"),
        (3, D, "RUS", "AZE", "163", None, "http://a"),  # same key as line 2 (NULL location)
        (4, D, "RUS", "AZE", "163", None, "http://b"),  # another URL: another event
        (5, D, "RUS", "AZE", "163", None, "http://a"),
    ]
    with transaction(con):
        assert add_events(con, candidates(con, rows), sha256=SHA_A) == (2, 2)
    assert events(con) == [
        (D, "RUS", "AZE", "163", None, "http://a", 2, 2),
        (D, "RUS", "AZE", "163", None, "http://b", 4, 0),
    ]
    assert con.execute("SELECT count(*) FROM event_sources").fetchone() == (4,)


def test_reimport_counts_duplicates_and_changes_nothing(con: duckdb.DuckDBPyConnection) -> None:
    rows = [(2, D, "RUS", "AZE", "163", "Baku", None), (3, D, "RUS", "AZE", "163", "Baku", None)]
    with transaction(con):
        add_events(con, candidates(con, rows), sha256=SHA_A)
    before = events(con), con.execute("SELECT * FROM event_sources ORDER BY ALL").fetchall()
    with transaction(con):
        assert add_events(con, candidates(con, rows), sha256=SHA_A) == (0, 2)
    assert (events(con), con.execute("SELECT * FROM event_sources ORDER BY ALL").fetchall()) == (
        before
    )


def test_a_re_export_of_the_same_rows_adds_no_source(con: duckdb.DuckDBPyConnection) -> None:
    """The same rows in another file (CRLF line ends, another order: another content hash) are
    the same source rows: counted as duplicates by the import, but no event gains a source."""
    rows = [(2, D, "RUS", "AZE", "163", None, "u"), (3, D, "RUS", "AZE", "163", None, "u"),
            (4, D, "RUS", "AZE", "1663", None, "v")]
    with transaction(con):
        add_events(con, candidates(con, rows), sha256=SHA_A)
    before = events(con)
    reordered = [(10 + i, *row[1:]) for i, row in enumerate(reversed(rows))]
    with transaction(con):
        assert add_events(con, candidates(con, reordered), sha256=SHA_B) == (0, 3)
    assert events(con) == before
    assert con.execute("SELECT sum(1 + duplicates) FROM events").fetchone() == (3,)


def test_the_same_event_from_another_file_is_a_duplicate(con: duckdb.DuckDBPyConnection) -> None:
    with transaction(con):
        add_events(con, candidates(con, [(2, D, "RUS", "AZE", "163", None, "u")]), sha256=SHA_A)
    more = [(7, D, "RUS", "AZE", "163", None, "u", "another row"),
            (8, D, "RUS", None, "163", None, "u")]
    with transaction(con):
        assert add_events(con, candidates(con, more), sha256=SHA_B) == (1, 1)
    assert events(con) == [
        (D, "RUS", "AZE", "163", None, "u", 2, 1),
        (D, "RUS", None, "163", None, "u", 8, 0),
    ]
