import csv
import gzip
import json
import tempfile
import zipfile
from datetime import date, timedelta
from functools import cache
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forecast.errors import EventFormatError
from forecast.events import (
    DEFAULT_REGION,
    MAX_REJECTIONS,
    ImportResult,
    Rejection,
    detect_format,
    event_stats,
    filter_sql,
    import_events,
    list_events,
)
from forecast.store import open_store

DATA = Path(__file__).parent / "data"
GDELT2 = DATA / "gdelt2-20191024143000.export.tsv"
GDELT1 = DATA / "gdelt1-sample.tsv"
ICEWS = DATA / "icews-sample.tsv"
ACLED = DATA / "acled-sample.csv"
NATIVE = DATA / "native-sample.csv"
NATIVE_HEADER = "date,actor1,actor2,event_code,num_sources,source_url,note"


@pytest.fixture
def con(tmp_path: Path):
    con = open_store(tmp_path / "store.duckdb")
    yield con
    con.close()


def snapshot(con: duckdb.DuckDBPyConnection) -> tuple[list, ...]:
    """Every row of the store's tables, for 'the store is unchanged'."""
    return tuple(
        con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()
        for table in ("events", "event_sources", "imports", "meta")
    )


def balanced(result: ImportResult) -> bool:
    parts = result.imported + result.duplicate + result.outside_region + result.rejected
    return (result.read == parts
            and min(result.rejected, MAX_REJECTIONS) == len(result.rejections))


def raw_rows(path: Path) -> list[list[str]]:
    """The file's rows split on tabs with plain Python, independently of the importer."""
    return [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()]


def source_rows(con: duckdb.DuckDBPyConnection, where: str = "TRUE") -> int:
    """Source rows behind the stored events: each event plus its duplicates."""
    row = con.execute(f"SELECT coalesce(sum(1 + duplicates), 0) FROM events WHERE {where}")
    return int(row.fetchone()[0])


# --------------------------------------------------------------------------- real GDELT files


@pytest.mark.parametrize(("path", "fmt"), [(GDELT2, "gdelt2"), (GDELT1, "gdelt1")])
def test_real_gdelt_files(con: duckdb.DuckDBPyConnection, path: Path, fmt: str) -> None:
    rows = raw_rows(path)
    result = import_events(con, path)
    assert (result.format, result.read, result.rejected) == (fmt, len(rows), 0)
    assert balanced(result)
    # Independent counts over the raw file: actor country codes are fields 8 and 18.
    in_region = [r for r in rows if r[7] in DEFAULT_REGION or r[17] in DEFAULT_REGION]
    assert result.imported + result.duplicate == len(in_region) == source_rows(con)
    assert source_rows(con, "actor1 = 'RUS'") == sum(r[7] == "RUS" for r in rows)
    # Each stored event's line is the physical line of the row with its GLOBALEVENTID.
    stored = con.execute("SELECT line, original_id, event_code FROM events").fetchall()
    for line, original_id, code in stored:
        assert rows[line - 1][0] == original_id
        assert rows[line - 1][26] == code  # as a string: "042" keeps its zero


def test_a_file_read_on_several_threads_keeps_each_rows_line(tmp_path: Path, con) -> None:
    # ~80 MB: DuckDB reads it in parallel, and the lines are numbered after the read. Each copy
    # of the sample gets its own day, so that its rows are events of their own.
    sample = raw_rows(GDELT2)
    path = tmp_path / "big.export.tsv"
    with path.open("w") as out:
        for copy in range(100):
            day = (date(2019, 1, 1) + timedelta(days=copy)).strftime("%Y%m%d")
            for i, row in enumerate(sample):
                out.write("\t".join([str(copy * 10_000 + i), day, *row[2:]]) + "\n")
    result = import_events(con, path)
    assert result.read == 100 * len(sample) and result.imported > 10_000
    for line, original_id in con.execute("SELECT line, original_id FROM events").fetchall():
        copy, i = divmod(int(original_id), 10_000)
        assert line == copy * len(sample) + i + 1


def test_gdelt1_mixes_57_and_58_columns_without_loss(con: duckdb.DuckDBPyConnection) -> None:
    rows = raw_rows(GDELT1)
    assert {len(r) for r in rows} == {57, 58}
    import_events(con, GDELT1, region=None)  # every row, not just the region's
    stored = con.execute(
        "SELECT count(*) FILTER (WHERE source_url IS NULL), count(*) FILTER (WHERE source_url "
        "LIKE 'http%'), sum(1 + duplicates) FROM events"
    ).fetchone()
    assert stored[2] == len(rows)
    assert stored[0] >= 1 and stored[1] >= 1
    # A backfile row keeps its 1982 date and ActionGeo_FullName (field 51 of the 1.0 layout).
    assert con.execute(
        "SELECT date, location, source_url FROM events WHERE original_id = '230523753'"
    ).fetchone() == (date(1982, 12, 31), "Vietnam, Republic Of", None)


def test_reimport_imports_nothing_and_changes_nothing(con: duckdb.DuckDBPyConnection) -> None:
    first = import_events(con, GDELT2)
    before = snapshot(con)[:2]
    again = import_events(con, GDELT2)
    assert (again.imported, again.duplicate) == (0, first.imported + first.duplicate)
    assert again.outside_region == first.outside_region
    assert snapshot(con)[:2] == before


def test_a_wider_region_adds_only_the_new_rows(con: duckdb.DuckDBPyConnection) -> None:
    first = import_events(con, GDELT2)
    wider = import_events(con, GDELT2, region=(*DEFAULT_REGION, "USA"))
    usa_only = [
        r
        for r in raw_rows(GDELT2)
        if "USA" in (r[7], r[17]) and not {r[7], r[17]} & set(DEFAULT_REGION)
    ]
    assert wider.imported + wider.duplicate - first.imported - first.duplicate == len(usa_only)
    assert source_rows(con) == first.imported + first.duplicate + len(usa_only)


def test_region_is_either_actor(con: duckdb.DuckDBPyConnection) -> None:
    import_events(con, GDELT2)
    pairs = con.execute("SELECT DISTINCT actor1, actor2 FROM events").fetchall()
    assert all(a1 in DEFAULT_REGION or a2 in DEFAULT_REGION for a1, a2 in pairs)
    assert any(a1 not in DEFAULT_REGION for a1, _ in pairs)  # e.g. USA -> IRN is kept


# --------------------------------------------------------------------------- bad files


def test_a_declared_format_that_does_not_fit(con: duckdb.DuckDBPyConnection) -> None:
    import_events(con, GDELT1)
    before = snapshot(con)
    with pytest.raises(EventFormatError) as error:
        import_events(con, NATIVE, fmt="gdelt2")
    assert str(error.value) == (
        f"{NATIVE}: expected GDELT 2.0 rows of 61 tab-separated columns, "
        "found 1 tab-separated column on line 1"
    )
    with pytest.raises(EventFormatError) as error:
        import_events(con, GDELT1, fmt="gdelt2")
    assert str(error.value) == (
        f"{GDELT1}: expected GDELT 2.0 rows of 61 tab-separated columns, "
        "found 58 tab-separated columns on line 1"
    )
    with pytest.raises(EventFormatError) as error:
        import_events(con, NATIVE, fmt="acled")
    assert str(error.value) == (
        f"{NATIVE}: expected an ACLED CSV header (event_id_cnty, event_date, event_type, "
        f"sub_event_type, actor1, ...), found '{NATIVE_HEADER}' on line 1"
    )
    assert snapshot(con) == before


@pytest.mark.parametrize(
    ("content", "found"),
    [
        (b"", "an empty file"),
        (b"\n\n  \n", "an empty file"),
        (bytes(range(256)) * 4, "binary data (a NUL byte on line 1)"),
        (b"hello,world\n1,2\n", "'hello,world' on line 1"),
    ],
)
def test_files_of_no_format(tmp_path: Path, content: bytes, found: str) -> None:
    path = tmp_path / "events.tsv"
    path.write_bytes(content)
    expected = "GDELT 1.0/2.0 rows, or an ICEWS, ACLED or native CSV header"
    with pytest.raises(EventFormatError) as error:
        detect_format(path)
    assert str(error.value) == f"{path}: expected {expected}, found {found}"


@pytest.mark.parametrize("packed", ["plain", "gzip"])
def test_binary_data_past_the_first_bytes_refuses_the_file(
    tmp_path: Path, con: duckdb.DuckDBPyConnection, packed: str
) -> None:
    """Format detection reads the first 64 KB; binary data after them used to import the rows
    before it, without a word."""
    text = NATIVE.read_bytes() + b"".join(
        b"%d-01-01,RUS,AZE,163,1,https://example.org/%d,\n" % (2000 + i % 20, i)
        for i in range(3000))
    lines = text.count(b"\n")
    content = text + b"\x00\x01binary tail\n"
    path = tmp_path / "events.csv"
    path.write_bytes(gzip.compress(content) if packed == "gzip" else content)
    before = snapshot(con)
    with pytest.raises(EventFormatError) as error:
        import_events(con, path)
    assert str(error.value) == (f"{path}: expected lines of text, found binary data (a NUL byte "
                                f"on line {lines + 1}); nothing was imported")
    assert snapshot(con) == before


def test_a_missing_file(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(EventFormatError, match="found no such file"):
        import_events(con, tmp_path / "missing.tsv")


def test_a_few_broken_rows_are_rejected_not_the_file(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    lines = GDELT2.read_text(encoding="utf-8").splitlines()
    russian = [i for i, line in enumerate(lines) if line.split("\t")[7] == "RUS"]
    broken = lines.copy()
    broken[russian[0]] = "\t".join(lines[russian[0]].split("\t")[:40])  # truncated row
    fields = lines[russian[1]].split("\t")
    broken[russian[1]] = "\t".join([fields[0], "20191341", *fields[2:]])  # bad date
    fields = lines[russian[2]].split("\t")
    broken[russian[2]] = "\t".join([*fields[:26], "19x", *fields[27:]])  # bad event code
    fields = lines[russian[3]].split("\t")
    broken[russian[3]] = "\t".join([*fields[:32], "many", *fields[33:]])  # bad NumSources
    path = tmp_path / "broken.tsv"
    path.write_text("\n".join(broken) + "\n", encoding="utf-8")
    result = import_events(con, path, fmt="gdelt2")
    assert balanced(result) and result.read == len(lines)
    assert result.rejections == [
        Rejection(russian[0] + 1, "expected 61 columns, found 40"),
        Rejection(russian[1] + 1, "bad date '20191341'"),
        Rejection(russian[2] + 1, "bad event code '19x'"),
        Rejection(russian[3] + 1, "bad number of sources 'many'"),
    ]


def test_dates_out_of_range_are_rejected(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    late = date.today() + timedelta(days=400)
    path = tmp_path / "events.csv"
    path.write_text(
        f"{NATIVE_HEADER}\n1978-12-31,RUS,AZE,163,1,,\n{late},RUS,AZE,163,1,,\n"
        f"1979-01-01,RUS,AZE,163,1,,\n"
    )
    result = import_events(con, path)
    last = date.today() + timedelta(days=365)
    assert result.rejections == [
        Rejection(2, f"date 1978-12-31 outside 1979-01-01..{last}"),
        Rejection(3, f"date {late} outside 1979-01-01..{last}"),
    ]
    assert result.imported == 1


# --------------------------------------------------------------------------- the other formats


def test_icews(con: duckdb.DuckDBPyConnection) -> None:
    assert detect_format(ICEWS) == "icews"
    result = import_events(con, ICEWS)
    # Lines 2, 3, 5, 9 imported; 10 repeats 2; 4 and 11 are France-Germany; 6-8 are broken.
    assert result.as_dict() == {
        "file": str(ICEWS),
        "format": "icews",
        "read": 10,
        "imported": 4,
        "duplicate": 1,
        "outside_region": 2,
        "rejected": 3,
    }
    assert result.rejections == [
        Rejection(6, "bad date '2019-13-40'"),
        Rejection(7, "bad event code '9999'"),
        Rejection(8, "expected 20 columns, found 5"),
    ]
    assert con.execute(
        "SELECT line, actor1, actor2, event_code, goldstein, location, duplicates FROM events "
        "ORDER BY line"
    ).fetchall() == [
        (2, "RUS", "AZE", "010", 0.0, "Moscow, Moskva, Russian Federation", 1),
        (3, "IRN", "USA", "111", -2.0, "Tehran, Tehran, Iran", 0),
        (5, "GEO", "GEO", "141", -6.5, "Tbilisi, Tbilisi, Georgia", 0),
        (9, None, "ARM", "138", -7.0, "Yerevan, Yerevan, Armenia", 0),  # 'Atlantis' is no code
    ]


def test_acled(con: duckdb.DuckDBPyConnection) -> None:
    assert detect_format(ACLED) == "acled"
    result = import_events(con, ACLED)
    assert (result.read, result.imported, result.duplicate) == (9, 4, 0)
    assert (result.outside_region, result.rejected) == (2, 3)  # 7: France; 10: no nationality
    assert result.rejections == [
        Rejection(5, "no CAMEO code for ACLED event type 'Strategic developments: Other'"),
        Rejection(6, "bad date '31 Foo 2025'"),
        Rejection(8, "expected 31 columns, found 4"),
    ]
    assert con.execute(
        "SELECT line, date, actor1, actor2, event_code, num_sources, location, original_id "
        "FROM events ORDER BY line"
    ).fetchall() == [
        (2, date(2025, 5, 16), "RUS", "UKR", "193", 2, "Pokrovsk, Donetsk, Ukraine", "UKR1001"),
        (3, date(2025, 5, 16), "AZE", None, "141", 1, "Baku, Baku, Azerbaijan", "AZE1002"),
        (4, date(2025, 5, 17), "UKR", "RUS", "195", 1, "Belgorod, Belgorod, Russia", "RUS1003"),
        (9, date(2025, 5, 19), "ARM", "ARM", "145", 3, "Yerevan, Yerevan, Armenia", "ARM1008"),
        # line 10: an unidentified group and civilians, of no stated nationality, are not taken
        # to be Georgian: outside the region
    ]


def test_native(con: duckdb.DuckDBPyConnection) -> None:
    assert detect_format(NATIVE) == "native"
    result = import_events(con, NATIVE)
    assert result.as_dict() == {
        "file": str(NATIVE),
        "format": "native",
        "read": 10,
        "imported": 3,
        "duplicate": 1,
        "outside_region": 2,
        "rejected": 4,
    }
    assert result.rejections == [
        Rejection(4, "bad date '2025-02-30'"),
        Rejection(5, "bad event code 'X63'"),
        Rejection(6, "expected 7 columns, found 5"),
        Rejection(11, "bad number of sources 'two'"),
    ]
    assert con.execute(
        "SELECT line, actor1, actor2, event_code, num_sources, source_url, duplicates "
        "FROM events ORDER BY line"
    ).fetchall() == [
        (2, "RUS", "AZE", "163", 2, "https://example.org/sanctions", 1),
        (3, "RUS", "AZE", "1663", 1, "https://example.org/expel", 0),
        (7, "AZE", "RUS", "0874", 3, "https://example.org/a,b", 0),
    ]


def test_crlf_and_stray_carriage_returns_keep_lines(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    crlf = tmp_path / "crlf.csv"
    crlf.write_bytes(NATIVE.read_bytes().replace(b"\n", b"\r\n"))
    assert import_events(con, crlf).rejections == import_events(con, NATIVE).rejections
    lines = GDELT2.read_bytes().split(b"\n")
    lines[5] = lines[5].replace(b"\t", b"\r\t", 1)  # a CR inside a row: not a line end
    stray = tmp_path / "stray.tsv"
    stray.write_bytes(b"\n".join(lines))
    result = import_events(con, stray)
    assert result.read == len(raw_rows(GDELT2)) and balanced(result)


def test_bytes_that_are_not_utf8_only_touch_their_row(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    lines = GDELT2.read_bytes().split(b"\n")
    russian = next(i for i, line in enumerate(lines) if line.split(b"\t")[7] == b"RUS")
    fields = lines[russian].split(b"\t")
    fields[26] = b"19\xff"  # EventCode with a byte that is not UTF-8
    lines[russian] = b"\t".join(fields)
    path = tmp_path / "latin.tsv"
    path.write_bytes(b"\n".join(lines))
    result = import_events(con, path)
    assert result.rejections == [Rejection(russian + 1, "bad event code '19\ufffd'")]
    assert result.read == len(lines) - 1  # the file ends with a line feed


# --------------------------------------------------------------------------- compressed inputs


def test_gzip_and_zip_are_the_same_content(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    packed = tmp_path / "20191024143000.export.CSV.gz"
    packed.write_bytes(gzip.compress(GDELT2.read_bytes()))
    zipped = tmp_path / "20191024143000.export.CSV.zip"
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(GDELT2, "20191024143000.export.CSV")
    assert detect_format(packed) == detect_format(zipped) == "gdelt2"
    plain = import_events(con, GDELT2)
    for path in (packed, zipped):
        again = import_events(con, path)  # same content: every row already counted
        assert (again.read, again.imported) == (plain.read, 0)
        assert again.duplicate == plain.imported + plain.duplicate
    fresh = open_store(tmp_path / "fresh.duckdb")
    assert import_events(fresh, zipped).as_dict() | {"file": ""} == plain.as_dict() | {"file": ""}
    assert not [p for p in tmp_path.rglob("*") if "forecast-import" in str(p)]  # cleaned up


def test_a_zip_of_several_files_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "two.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.write(GDELT1, "a.tsv")
        archive.write(GDELT2, "b.tsv")
    with pytest.raises(EventFormatError) as error:
        detect_format(path)
    assert str(error.value) == f"{path}: expected a zip archive of one event file, found 2 files"


def test_a_corrupt_gzip(tmp_path: Path) -> None:
    path = tmp_path / "events.tsv.gz"
    path.write_bytes(gzip.compress(GDELT2.read_bytes())[:200])
    with pytest.raises(EventFormatError, match=r"expected gzip data, found"):
        import_events(open_store(tmp_path / "store.duckdb"), path)


# --------------------------------------------------------------------------- queries


def test_filter_sql_matches_codes_by_prefix(con: duckdb.DuckDBPyConnection) -> None:
    codes = ["190", "193", "1631", "163", "16", "042", "1900"]
    con.execute(
        "CREATE TEMP TABLE e (event_code VARCHAR, actor1 VARCHAR, actor2 VARCHAR, "
        "num_sources INTEGER, folded_into VARCHAR)"
    )
    con.executemany("INSERT INTO e VALUES (?, 'RUS', 'AZE', 2, NULL)", [[c] for c in codes])

    def matching(**kwargs: object) -> list[str]:
        where, params = filter_sql(**kwargs)  # type: ignore[arg-type]
        rows = con.execute(f"SELECT event_code FROM e WHERE {where} ORDER BY 1", params)
        return [r[0] for r in rows.fetchall()]

    assert matching(codes=["19"]) == ["190", "1900", "193"]
    assert matching(codes=["163"]) == ["163", "1631"]
    assert matching(codes=["163", "04"]) == ["042", "163", "1631"]
    assert matching(codes=["16"], actor1=["AZE"]) == []
    assert matching(codes=["16"], actor2=["AZE", "IRN"]) == ["16", "163", "1631"]
    assert matching(min_sources=3) == []
    with pytest.raises(ValueError, match="expected 1 to 4 digits"):
        filter_sql(codes=["19x"])


def test_list_events(con: duckdb.DuckDBPyConnection) -> None:
    import_events(con, NATIVE)
    listed = list_events(con, since=date(2025, 5, 17))
    assert [(e["date"], e["event_code"]) for e in listed] == [
        (date(2025, 5, 17), "1663"),
        (date(2025, 5, 19), "0874"),
    ]
    assert [e["event_code"] for e in list_events(con, codes=["16"])] == ["163", "1663"]
    assert [e["event_code"] for e in list_events(con, until=date(2025, 5, 16))] == ["163"]
    assert [e["event_code"] for e in list_events(con, min_sources=2)] == ["163", "0874"]
    assert len(list_events(con, limit=1)) == 1
    assert set(listed[0]) == {
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
    }


def test_event_stats(con: duckdb.DuckDBPyConnection) -> None:
    import_events(con, NATIVE)  # events on Fri 16, Sat 17 and Mon 19 May 2025
    import_events(con, ICEWS)
    stats = event_stats(con)
    assert (stats["events"], stats["source_rows"]) == (7, 9)
    assert stats["by_week"] == [
        {"week": date(2019, 10, 21), "events": 3, "source_rows": 4},  # 24-26 Oct 2019
        {"week": date(2019, 10, 28), "events": 1, "source_rows": 1},  # Mon 28 Oct
        {"week": date(2025, 5, 12), "events": 2, "source_rows": 3},
        {"week": date(2025, 5, 19), "events": 1, "source_rows": 1},
    ]
    assert stats["by_actor_pair"][0] == {
        "actor1": "RUS",
        "actor2": "AZE",
        "events": 3,
        "source_rows": 5,
    }
    assert stats["by_format"] == [
        {"source_format": "icews", "events": 4, "source_rows": 5},
        {"source_format": "native", "events": 3, "source_rows": 4},
    ]


# --------------------------------------------------------------------------- properties


@cache
def shared_store() -> duckdb.DuckDBPyConnection:
    """One in-memory store for the property tests, holding events from the start."""
    con = open_store(Path(":memory:"))
    import_events(con, NATIVE)
    return con


def line_count(data: bytes) -> int:
    return data.count(b"\n") + (not data.endswith(b"\n") and data != b"")


def check_import(data: bytes, fmt: str) -> ImportResult | None:
    """Import `data`; it must succeed with balanced counts or fail cleanly, store unchanged."""
    con = shared_store()
    before = snapshot(con)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events"
        path.write_bytes(data)
        try:
            result = import_events(con, path, fmt=fmt)  # type: ignore[arg-type]
        except EventFormatError as error:
            assert str(error).startswith(f"{path}: expected ") and "\n" not in str(error)
            assert snapshot(con) == before
            return None
    assert balanced(result)
    lines = line_count(data) - (result.format in ("icews", "acled", "native"))
    if result.format in ("acled", "native") and b'"' in data:
        # a quoted line feed joins lines into one CSV record (`forecast.events._Records`)
        assert 1 <= result.read <= lines or result.read == lines == 0
    else:
        assert result.read == lines
    assert all(1 <= r.line <= line_count(data) for r in result.rejections)
    return result


FORMATS = st.sampled_from(["auto", "gdelt1", "gdelt2", "icews", "acled", "native"])
PROPERTY = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(data=st.binary(max_size=2000), fmt=FORMATS)
def test_arbitrary_bytes(data: bytes, fmt: str) -> None:
    check_import(data, fmt)


HEADERS = st.sampled_from(
    [
        "",
        NATIVE_HEADER + "\n",
        ICEWS.read_text().splitlines()[0] + "\n",
        ACLED.read_text().splitlines()[0] + "\n",
    ]
)
TEXT = st.text(alphabet='\t,"\r\n\x1f\x00 RUSAZE0123456789-x\u00e9', max_size=300)


@PROPERTY
@given(header=HEADERS, body=TEXT, fmt=FORMATS)
def test_arbitrary_text_under_a_header(header: str, body: str, fmt: str) -> None:
    check_import((header + body).encode(), fmt)


GDELT2_LINES = GDELT2.read_bytes().splitlines()
NOISE = st.binary(max_size=12).map(lambda b: b.replace(b"\n", b""))  # one row stays one line
MUTATIONS = st.sampled_from(["truncate", "drop", "extra", "date", "code", "bytes", "cr", "blank"])


@PROPERTY
@given(
    picks=st.lists(
        st.tuples(st.integers(0, len(GDELT2_LINES) - 1), MUTATIONS, NOISE),
        min_size=1,
        max_size=12,
    ),
    fmt=st.sampled_from(["auto", "gdelt2"]),
)
def test_mangled_gdelt_rows(picks: list[tuple[int, str, bytes]], fmt: str) -> None:
    lines, mangled = [], set()
    for index, mutation, noise in picks:
        fields = GDELT2_LINES[index].split(b"\t")
        if len(lines) % 2:  # keep every other row intact
            mangled.add(len(lines) + 1)
            if mutation == "truncate":
                fields = GDELT2_LINES[index][: len(noise) * 20].split(b"\t")
            elif mutation == "drop":
                del fields[len(noise) % 61]
            elif mutation == "extra":
                fields.insert(len(noise) % 61, noise)
            elif mutation in ("date", "code"):
                fields[1 if mutation == "date" else 26] = noise
            elif mutation == "bytes":
                fields[len(noise) % 61] += noise
            elif mutation == "cr":
                fields[len(noise) % 61] += b"\r"
            else:
                fields = [b""]
        lines.append(b"\t".join(fields))
    result = check_import(b"\n".join(lines) + b"\n", fmt)
    if result is not None:
        # A row left intact is never rejected.
        assert {r.line for r in result.rejections} <= mangled


DAYS = st.one_of(
    st.dates(date(1970, 1, 1), date.today() + timedelta(days=800)).map(str),
    st.text("0123456789-/ ", max_size=12),
)
CODES = st.one_of(
    st.sampled_from(["010", "042", "163", "1663", "19", "20", "0874"]),
    st.text("0123456789x", max_size=5),
)
ACTORS = st.one_of(st.sampled_from(["RUS", "AZE", "USA", "FRA", ""]), st.text("ABCrus", max_size=4))
SOURCES = st.one_of(st.integers(-1, 20).map(str), st.sampled_from(["", "two", "1.5"]))


@PROPERTY
@given(rows=st.lists(st.tuples(DAYS, ACTORS, ACTORS, CODES, SOURCES), min_size=1, max_size=15))
def test_native_rows_are_checked_one_by_one(rows: list[tuple[str, str, str, str, str]]) -> None:
    text = (
        NATIVE_HEADER
        + "\n"
        + "".join(f"{','.join(row)},http://x/{i},\n" for i, row in enumerate(rows))
    )
    result = check_import(text.encode(), "native")

    def valid(day: str, actor1: str, actor2: str, code: str, sources: str) -> bool:
        """The documented rules, written independently of the importer's SQL."""
        try:
            parsed = date.fromisoformat(day) if len(day) == 10 else None
        except ValueError:
            parsed = None
        return (
            parsed is not None
            and date(1979, 1, 1) <= parsed <= date.today() + timedelta(days=365)
            and len(actor1) == 3
            and actor1.isupper()
            and actor1.isalpha()
            and (actor2 == "" or (len(actor2) == 3 and actor2.isupper() and actor2.isalpha()))
            and code.isdigit()
            and 2 <= len(code) <= 4
            and 1 <= int(code[:2]) <= 20
            and sources.isdigit()
            and int(sources) >= 1
        )

    # A row is rejected exactly when it breaks a rule: native rows are all checked, in the region
    # or not, so that a typo such as "rus" is rejected rather than skipped.
    expected = {i + 2 for i, row in enumerate(rows) if not valid(*row)}
    if result is None:  # a file whose every row is rejected is refused whole
        assert expected == set(range(2, len(rows) + 2))
    else:
        assert {r.line for r in result.rejections} == expected


def test_the_scratch_copy_goes_next_to_the_store(tmp_path: Path, monkeypatch) -> None:
    store_dir = tmp_path / "ws"
    store_dir.mkdir()
    con = open_store(store_dir / "store.duckdb")
    zipped = tmp_path / "x.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.write(GDELT1, "x.tsv")
    real, dirs = tempfile.TemporaryDirectory, []

    def recording(*args: object, **kwargs: object) -> tempfile.TemporaryDirectory:
        dirs.append(kwargs.get("dir"))
        return real(*args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr("forecast.events.tempfile.TemporaryDirectory", recording)
    assert import_events(con, zipped).read == len(raw_rows(GDELT1))
    assert dirs == [str(store_dir)]  # not a RAM-backed /tmp
    assert not list(store_dir.glob("forecast-import-*"))


# --------------------------------------------------------------------------- streams and junk


def _stored(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    """The stored events without the file they came from."""
    return con.execute("SELECT * EXCLUDE (file) FROM events ORDER BY ALL").fetchall()


def test_a_fifo_is_read_once_and_imported_whole(tmp_path: Path) -> None:
    """A FIFO (or a pipe, `<(...)`) was opened several times: the import exited 0 having stored
    nothing or part of the file."""
    import os
    import threading

    direct = open_store(tmp_path / "direct.duckdb")
    expected = import_events(direct, GDELT1)
    fifo = tmp_path / "events.fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(GDELT1.read_bytes()))
    writer.start()
    piped = open_store(tmp_path / "piped.duckdb")
    result = import_events(piped, fifo)
    writer.join()
    assert {**result.as_dict(), "file": ""} == {**expected.as_dict(), "file": ""}
    assert result.imported > 0 and _stored(piped) == _stored(direct)
    assert piped.execute("SELECT DISTINCT file FROM events").fetchall() == [(str(fifo),)]
    direct.close()
    piped.close()


def test_standard_input_imports_like_the_file(runner, workspace, tmp_path: Path) -> None:
    from cli import main

    other = tmp_path / "other"
    assert runner.invoke(main, ["--workspace", str(other), "init"]).exit_code == 0
    piped = runner.invoke(main, ["--workspace", str(workspace.root), "events", "import", "-",
                                 "--json"], input=NATIVE.read_bytes())
    direct = runner.invoke(main, ["--workspace", str(other), "events", "import", str(NATIVE),
                                  "--json"])
    assert piped.exit_code == direct.exit_code == 0, piped.output
    assert piped.stdout.replace('"-"', f'"{NATIVE}"') == direct.stdout
    assert "-:4: rejected: bad date '2025-02-30'" in piped.stderr
    stores = [open_store(root / "store.duckdb", read_only=True) for root in (workspace.root, other)]
    assert _stored(stores[0]) == _stored(stores[1])
    for con in stores:
        con.close()


def test_rejected_rows_are_counted_not_kept(runner, workspace, tmp_path: Path) -> None:
    """20 M blank lines took 8.4 GB: every rejection was fetched into Python. Now only the first
    MAX_REJECTIONS are, the rest are counted in SQL."""
    from cli import main

    path = tmp_path / "junk.csv"
    path.write_text(NATIVE_HEADER + "\n2026-03-04,RUS,AZE,163,2,u,ok\n" + "junk\n" * 100)
    con = open_store(tmp_path / "store.duckdb")
    result = import_events(con, path)
    con.close()
    assert (result.rejected, len(result.rejections), result.imported) == (100, MAX_REJECTIONS, 1)
    assert [r.line for r in result.rejections] == list(range(3, 3 + MAX_REJECTIONS))
    shown = runner.invoke(main, ["--workspace", str(workspace.root), "events", "import",
                                 str(path)])
    assert shown.stderr.count("rejected: ") == MAX_REJECTIONS
    assert f"{path}: ... and 80 more rejected rows" in shown.stderr


def test_an_acled_export_as_written_in_2020(con: duckdb.DuckDBPyConnection) -> None:
    """A real 2020 export (31 columns of then, dates like 9-May-20, CRLF) imported 0 of its
    in-region events (every date was bad); an upper-case header was refused; two distinct
    events (different event_id_cnty, same town and day) were merged; unidentified forces striking
    Iranian forces in Syria were stored SYR -> IRN."""
    path = DATA / "acled-2020-export.csv"
    with path.open(newline="") as f:  # the expected rows, read with Python's csv module
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and b"\r\n" in path.read_bytes()
    assert detect_format(path) == "acled"
    result = import_events(con, path)
    assert (result.read, result.imported, result.duplicate, result.rejected) == (4, 4, 0, 0)
    stored = con.execute("SELECT original_id, date, actor1, actor2 FROM events ORDER BY line")
    assert stored.fetchall() == [
        ("AZE301", date(2020, 5, 9), "AZE", None),
        ("AZE302", date(2020, 5, 9), "AZE", None),  # the same day and town, another event
        ("SYR5001", date(2020, 5, 12), None, "IRN"),  # the striking forces are not Syrian
        ("ARM201", date(2020, 5, 15), "ARM", "ARM"),
    ]
    assert [r["EVENT_ID_CNTY"] for r in rows] == ["AZE301", "AZE302", "SYR5001", "ARM201"]


def test_icews_na_is_missing(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    """ICEWS writes a missing value as NA; it was stored as text ("NA, NA, Russian Federation")."""
    lines = ICEWS.read_text().splitlines()
    header = lines[0].split("\t")
    row = lines[1].split("\t")
    for name in ("City", "Province"):
        row[header.index(name)] = "NA"
    path = tmp_path / "icews-na.tsv"
    path.write_text("\n".join([lines[0], "\t".join(row)]) + "\n")
    import_events(con, path)
    ((location,),) = con.execute("SELECT location FROM events").fetchall()
    assert "NA" not in (location or "").split(", ")


def test_every_country_name_of_the_samples_maps() -> None:
    """Of 149 country names in a real ICEWS sample, 112 were missing from the hand-written
    table and stored NULL. Names now come from ISO 3166 (pycountry), with aliases for former and
    short names."""
    from forecast.events import _normal, country_names

    names = set()
    with ICEWS.open(newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            names |= {row["Source Country"], row["Target Country"], row["Country"]}
    for path in (ACLED, DATA / "acled-2020-export.csv"):
        with path.open(newline="") as f:
            names |= {{k.lower(): v for k, v in row.items()}["country"]
                      for row in csv.DictReader(f)}
    names = {n for n in names if n} - {"NA", "Atlantis"}  # Atlantis: a deliberate non-country
    written = {"Brazil": "BRA", "South Africa": "ZAF", "Occupied Palestinian Territory": "PSE",
               "Democratic Republic of Congo": "COD", "South Korea": "KOR", "Türkiye": "TUR",
               "Turkey": "TUR", "Côte d'Ivoire": "CIV", "Bosnia and Herzegovina": "BIH",
               "Kosovo": "XKX", "United States": "USA", "Iran": "IRN", "Syria": "SYR"}
    missing = {n for n in names | set(written) if _normal(n) not in country_names()}
    assert not missing
    assert all(country_names()[_normal(n)] == code for n, code in written.items())


def test_icews_events_of_different_countries_are_not_merged(con, tmp_path: Path) -> None:
    """Brazil -> Russia and South Africa -> Russia on the same day and code became one event:
    both source countries were NULL in the duplicate key."""
    lines = ICEWS.read_text().splitlines()
    header = lines[0].split("\t")
    rows = []
    for i, country in enumerate(("Brazil", "South Africa")):
        row = lines[1].split("\t")
        row[header.index("Event ID")] = str(9000 + i)
        row[header.index("Source Country")] = country
        rows.append("\t".join(row))
    path = tmp_path / "icews.tsv"
    path.write_text("\n".join([lines[0], *rows]) + "\n")
    result = import_events(con, path, region=None)
    assert (result.imported, result.duplicate) == (2, 0)
    assert con.execute("SELECT actor1 FROM events ORDER BY actor1").fetchall() == [
        ("BRA",), ("ZAF",)]


def test_a_quoted_line_feed_keeps_its_event(con: duckdb.DuckDBPyConnection,
                                            tmp_path: Path) -> None:
    """A valid CSV note holding a quoted line feed lost its event: the continuation line was
    counted as another row. Rows after it keep their line numbers in rejections."""
    text = ACLED.read_text()
    lines = text.splitlines()
    lines[1] = lines[1].replace('"On 16 May 2025, forces clashed near Pokrovsk,',
                                '"On 16 May 2025,\nforces clashed near Pokrovsk,')
    path = tmp_path / "acled-multiline.csv"
    path.write_text("\n".join(lines) + "\n")
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))  # Python's csv: the same rows as the original
    assert len(rows) == len(lines) - 1 and "\n" in rows[0]["notes"]
    before = import_events(con, ACLED, region=None)
    con.execute("DELETE FROM events; DELETE FROM event_sources; DELETE FROM imports")
    result = import_events(con, path, region=None)
    assert result.read == before.read == len(rows) - 0
    assert (result.imported, result.rejected) == (before.imported, before.rejected)
    # the rows after the joined one are named by their lines in the file (one more)
    assert [r.line for r in result.rejections] == [r.line + 1 for r in before.rejections]
    assert con.execute("SELECT original_id FROM events WHERE line = 2").fetchall() == [
        ("UKR1001",)]


def test_a_quote_open_at_the_end_of_the_file_does_not_swallow_the_rows_after_it(
        con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    """A quote that never closes before the end of the file joined every line after it into
    one bad record (found by `test_arbitrary_text_under_a_header`): its line is rejected alone
    and the rows after it are read as rows."""
    path = tmp_path / "events.csv"
    path.write_text(f"{NATIVE_HEADER}\n2025-05-16,RUS,AZE,163,1,\"https://x.org/open,note\n"
                    "2025-05-17,RUS,AZE,163,1,https://x.org/after,\n")
    result = import_events(con, path)
    assert (result.read, result.imported, result.rejected) == (2, 1, 1)
    assert [r.line for r in result.rejections] == [2]
    assert con.execute("SELECT source_url FROM events").fetchall() == [("https://x.org/after",)]


def test_an_icews_tab_file_as_dataverse_publishes_it(con: duckdb.DuckDBPyConnection,
                                                    tmp_path: Path) -> None:
    """Dataverse's .tab quotes every text field ("Event ID" ... "Russian Federation"): it was
    refused. It imports as the unquoted file does."""
    quoted = []
    for line in ICEWS.read_text().splitlines():
        quoted.append("\t".join(f'"{v}"' if v and not v.replace(".", "").isdigit() else v
                                for v in line.split("\t")))
    path = tmp_path / "events.2019.tab"
    path.write_text("\n".join(quoted) + "\n")
    plain = import_events(con, ICEWS)
    stored = _stored(con)
    con.execute("DELETE FROM events; DELETE FROM event_sources; DELETE FROM imports")
    result = import_events(con, path)
    assert {**result.as_dict(), "file": ""} == {**plain.as_dict(), "file": ""}
    assert _stored(con) == stored


@pytest.mark.parametrize("days", [(None, None), (date(2019, 10, 1), date(2019, 10, 23))])
def test_the_warehouse_query_selects_what_the_importer_keeps(con, days) -> None:
    """`forecast events sql`'s query, run by DuckDB over the real GDELT 2.0 export loaded as a
    table of GDELT's schema, selects exactly the rows the importer keeps."""
    from forecast.events import GDELT2_COLUMNS, warehouse_sql

    types = {c: "BIGINT" if c == "SQLDATE" else "VARCHAR" for c in GDELT2_COLUMNS}
    con.execute(f"CREATE TEMP TABLE gdelt AS SELECT * FROM read_csv('{GDELT2}', delim='\\t', "
                f"header=false, quote='', auto_detect=false, columns={types})")
    since, until = days
    sql = warehouse_sql(DEFAULT_REGION, since=since, until=until, table="gdelt")
    selected = {row[0] for row in con.execute(sql).fetchall()}
    result = import_events(con, GDELT2)
    kept = {row[0] for row in raw_rows(GDELT2)
            if (row[7] in DEFAULT_REGION or row[17] in DEFAULT_REGION)
            and (since is None or since <= date.fromisoformat(
                f"{row[1][:4]}-{row[1][4:6]}-{row[1][6:]}") <= until)}
    assert selected == kept and kept
    if since is None:
        assert len(selected) == result.imported + result.duplicate
        stored = {r for (r,) in con.execute("SELECT original_id FROM events").fetchall()}
        assert stored <= selected


def test_merge_feeds_folds_a_gdelt_report_into_the_curated_event(runner, workspace,
                                                                  tmp_path: Path) -> None:
    from cli import main

    native = tmp_path / "hand.csv"
    native.write_text(f"{NATIVE_HEADER}\n2026-03-04,RUS,AZE,163,2,https://example.org/ban,ban\n")
    template = raw_rows(GDELT2)[0]

    def gdelt(n: int, day: str, a1: str, a2: str, code: str) -> str:
        row = [*template]
        row[0], row[1], row[7], row[17], row[59] = str(n), day, a1, a2, day + "120000"
        row[26], row[27], row[28], row[60] = code, code[:3], code[:2], f"https://news.example/{n}"
        return "\t".join(row)

    machine = tmp_path / "gdelt.export.tsv"
    machine.write_text("\n".join([
        gdelt(1, "20260305", "RUS", "AZE", "1631"),  # the next day, a finer code of root 16
        gdelt(2, "20260304", "RUS", "AZE", "163"),   # the same day: both fold into the one
        gdelt(3, "20260307", "RUS", "AZE", "163"),   # three days later: only with --days 3
        gdelt(4, "20260304", "RUS", "AZE", "190"),   # another root
        gdelt(5, "20260304", "AZE", "RUS", "163"),   # the other way round
    ]) + "\n")
    ws = ["--workspace", str(workspace.root)]
    for path in (native, machine):
        assert runner.invoke(main, [*ws, "events", "import", str(path)]).exit_code == 0

    def stored() -> list[tuple]:
        with workspace.store(read_only=True) as con:
            return con.execute("SELECT source_format, original_id, duplicates, folded_into "
                               "FROM events ORDER BY source_format, original_id").fetchall()

    def counted() -> tuple[int, int, int]:
        with workspace.store(read_only=True) as con:
            stats = event_stats(con)
            rule = filter_sql(codes=["16"])
            (n,) = con.execute(f"SELECT count(*) FROM events WHERE {rule[0]}", rule[1]).fetchone()
        return stats["events"], stats["folded"], n

    before = stored()
    assert counted() == (6, 0, 5)
    dry = runner.invoke(main, [*ws, "events", "merge-feeds", "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    assert [(p["feed"], p["line"], p["into_feed"]) for p in json.loads(dry.stdout)] == [
        ("gdelt2", 2, "native"), ("gdelt2", 1, "native")]
    assert stored() == before
    merged = runner.invoke(main, [*ws, "events", "merge-feeds"])
    assert merged.exit_code == 0, merged.output
    assert "folded 2 machine-coded event(s)" in merged.stderr
    into = f"{native}:2"
    assert stored() == [("gdelt2", "1", 0, into), ("gdelt2", "2", 0, into),
                        ("gdelt2", "3", 0, None), ("gdelt2", "4", 0, None),
                        ("gdelt2", "5", 0, None), ("native", None, 0, None)]
    assert counted() == (4, 2, 3)  # the embargo is counted once, from the hand-coded row
    # importing the file again changes nothing; a wider window folds the third report too
    again = runner.invoke(main, [*ws, "events", "import", str(machine), "--json"])
    assert json.loads(again.stdout)["imported"] == 0
    wider = runner.invoke(main, [*ws, "events", "merge-feeds", "--days", "3"])
    assert "folded 1 machine-coded event(s)" in wider.stderr
    assert counted() == (3, 3, 2)
    assert runner.invoke(main, [*ws, "events", "merge-feeds"]).stderr.startswith("folded 0")
