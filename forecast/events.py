"""Event importers (GDELT 1.0/2.0, ICEWS, ACLED, native CSV) and queries over the event store.

Every format is mapped to one event record (see :mod:`forecast.store`): date, actor1 and actor2 as
CAMEO three-letter country codes, CAMEO event code (a string: "042" keeps its zero), Goldstein
value, number of sources, source URL, action location, GDELT's IsRootEvent, and the source row's
file, line and original id.

How a file is read
------------------
DuckDB reads the file as lines of text (one VARCHAR per physical line, gzip decompressed by DuckDB)
into a temporary table in the file's order, keeping the text only of the lines that can concern
the region, then numbers them. Line numbers are 1-based physical lines, split at line feeds only
(a header is line 1). The kept lines are then split and validated in SQL; only the valid rows
are stored in a temporary table, the rejected ones are counted (a second pass finds the first 20
when there are any), so memory stays bounded (DuckDB spills to the scratch folder) whatever the
file's size and nothing is loaded into Python.

Rows are classified in this order; the counts always satisfy
``read = imported + duplicate + outside_region + rejected`` with ``read`` the file's number of
lines minus its header:

1. *outside_region*: the raw line cannot concern the region: for GDELT, neither its 8th nor its
   18th tab-separated field (Actor1CountryCode, Actor2CountryCode) is a region code; for ICEWS
   and ACLED, it contains none of the region's country names. This test runs on the raw line
   before it is split; it is what makes a GDELT import fast, and it means that a malformed line
   that cannot concern the region is counted as outside the region, not rejected. Native CSV
   (hand-coded, so small, and where a typo such as "rus" or "RU" must not pass unseen) and any
   import with ``region=None`` skip this test: every line is validated.
2. *rejected*, with line and reason: empty line, wrong number of columns, bad quoting, a date that
   does not parse or lies outside 1979-01-01 .. today + 1 year, an actor code that is not three
   capital letters, an event code that is not a CAMEO code (2-4 digits, root 01-20), a number of
   sources that is not a positive integer, a Goldstein value outside [-10, 10], an ACLED event type
   without a CAMEO equivalent.
3. *outside_region*: neither actor's country is in the region. An event is in the region when
   **either** actor is: "events among the region's actors" include those where the other side is
   e.g. USA or UKR (a Russian strike in Ukraine, US sanctions on Iran).
4. *imported* or *duplicate*: see :func:`forecast.store.add_events` (deduplication on date, actors,
   code, location and URL; a source row already counted, identified by the SHA-256 of the file's
   content and its line, counts as a duplicate and changes nothing).

A file that is not of the declared format (most sampled lines with the wrong number of columns, a
missing header, binary data, UTF-16 or mostly non-UTF-8 text, a line longer than DuckDB reads, an
empty file, a header and no rows, rows that are all rejected, or undetectable with
``fmt="auto"``) raises :class:`~forecast.errors.EventFormatError` with one line
``<file>: expected ..., found ...`` and imports nothing. A file with a few broken rows is imported
with those rows rejected.

Text that DuckDB cannot split reliably (carriage returns, bytes that are not UTF-8, the unit
separator used as a non-delimiter) is first copied to a normalised temporary file: CRLF becomes
LF, a lone CR and the unit separator become spaces, bad bytes become U+FFFD (so the row is kept or
rejected on its merits). Zip archives (GDELT's ``*.export.CSV.zip``) are streamed to such a file
too. The temporary file sits next to the store (not in a RAM-backed /tmp) and is deleted.

Speed: the read and the region's line test run on every core, while a Python thread hashes the
content (hashlib and DuckDB release the GIL); the lines are numbered after the read, from the
table's order (DuckDB keeps the insertion order of a parallel read; the import sets
``preserve_insertion_order`` so, and a test reads an 80 MB file on two threads and checks every
stored row's line against its id). Numbering them during the read (``row_number() OVER ()``)
held the read and the test to one thread: 1.44 s against 1.05 s for a million GDELT rows.
``bench/import_bench.py`` measures it.

Beyond one machine, the same region filter runs as SQL where GDELT is hosted (e.g. BigQuery's
``gdelt-bq.gdeltv2.events``: ``WHERE Actor1CountryCode IN (...) OR Actor2CountryCode IN (...)``);
its result, exported as GDELT 2.0 rows, imports here like any export.
"""

from __future__ import annotations

import codecs
import csv
import errno
import gzip
import hashlib
import re
import shutil
import stat
import sys
import tempfile
import unicodedata
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from functools import cache, partial
from io import BufferedIOBase
from pathlib import Path
from typing import IO, Any, Literal

import duckdb

from forecast import store
from forecast.config import DEFAULT_REGION
from forecast.errors import EventFormatError
from forecast.files import naming
from forecast.schema import COUNTRY_CODE, EVENT_CODE_PATTERN

Format = Literal["auto", "gdelt1", "gdelt2", "icews", "acled", "native"]
FORMATS = ("gdelt1", "gdelt2", "icews", "acled", "native")

#: Country names used by ICEWS (country columns) and ACLED (actor names, ``country``) mapped to
#: CAMEO codes. A name not listed maps to NULL: such an actor is never in the region.
#: Country names the feeds write that ISO 3166 (pycountry) does not hold: former and short names,
#: and entities outside it, with the codes the CAMEO coding uses for them.
NAME_ALIASES: dict[str, str] = {
    "Russia": "RUS",
    "Turkey": "TUR",
    "Macedonia": "MKD",
    "Ivory Coast": "CIV",
    "Burma": "MMR",
    "Swaziland": "SWZ",
    "Cape Verde": "CPV",
    "East Timor": "TLS",
    "Vatican City": "VAT",
    "Micronesia": "FSM",
    "Brunei": "BRN",
    "Palestine": "PSE",
    "Occupied Palestinian Territory": "PSE",
    "Democratic Republic of Congo": "COD",
    "Republic of Congo": "COG",
    "Kosovo": "XKX",
    "Serbia and Montenegro": "SCG",
    "Yugoslavia": "YUG",
    "Soviet Union": "SUN",
}


def _normal(name: str) -> str:
    """A country name as compared: without accents, in lower case, spaces collapsed (the SQL
    twin is `_normal_sql`)."""
    decomposed = unicodedata.normalize("NFKD", name)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(bare.lower().split())


def _normal_sql(expr: str) -> str:
    return f"lower(trim(regexp_replace(strip_accents({expr}), '\\s+', ' ', 'g')))"


@cache
def country_names() -> dict[str, str]:
    """Every country name a feed may write (normalised by `_normal`) -> its CAMEO country code,
    which for a country is its ISO 3166 alpha-3 code: the names, official names and common
    names of pycountry's ISO 3166 table, and `NAME_ALIASES`."""
    import pycountry

    names = {}
    for country in pycountry.countries:
        for attr in ("name", "official_name", "common_name"):
            if text := getattr(country, attr, None):
                names[_normal(text)] = country.alpha_3
    return names | {_normal(name): code for name, code in NAME_ALIASES.items()}


#: ACLED (event_type, sub_event_type) -> CAMEO code, the nearest CAMEO event form. ACLED types
#: missing here (Strategic developments: Change to group/activity, Headquarters or base
#: established, Other) have no CAMEO equivalent and their rows are rejected with that reason.
ACLED_CAMEO: dict[tuple[str, str], str] = {
    ("Battles", "Armed clash"): "193",  # fight with small arms and light weapons
    ("Battles", "Government regains territory"): "192",  # occupy territory
    ("Battles", "Non-state actor overtakes territory"): "192",
    ("Explosions/Remote violence", "Air/drone strike"): "195",  # employ aerial weapons
    ("Explosions/Remote violence", "Shelling/artillery/missile attack"): "194",  # artillery
    ("Explosions/Remote violence", "Remote explosive/landmine/IED"): "183",  # non-military bombing
    ("Explosions/Remote violence", "Grenade"): "183",
    ("Explosions/Remote violence", "Suicide bomb"): "1831",  # suicide bombing
    ("Explosions/Remote violence", "Chemical weapon"): "2041",  # chemical/biological weapons
    ("Violence against civilians", "Attack"): "180",  # unconventional violence
    ("Violence against civilians", "Sexual violence"): "1821",  # sexually assault
    ("Violence against civilians", "Abduction/forced disappearance"): "181",  # abduct
    ("Protests", "Peaceful protest"): "141",  # demonstrate or rally
    ("Protests", "Protest with intervention"): "141",
    ("Protests", "Excessive force against protesters"): "175",  # violent repression
    ("Riots", "Violent demonstration"): "145",  # protest violently, riot
    ("Riots", "Mob violence"): "145",
    ("Strategic developments", "Agreement"): "057",  # sign formal agreement
    ("Strategic developments", "Arrests"): "173",  # arrest, detain
    ("Strategic developments", "Looting/property destruction"): "171",  # seize or damage property
    ("Strategic developments", "Disrupted weapons use"): "190",  # conventional military force
    ("Strategic developments", "Non-violent transfer of territory"): "192",  # occupy territory
}

_NATIVE_COLUMNS = ("date", "actor1", "actor2", "event_code", "num_sources", "source_url")
_ACLED_COLUMNS = (
    "event_id_cnty",
    "event_date",
    "event_type",
    "sub_event_type",
    "actor1",
    "actor2",
    "country",
    "admin1",
    "location",
    "source",
)
_ICEWS_COLUMNS = (
    "Event ID",
    "Event Date",
    "Source Country",
    "CAMEO Code",
    "Intensity",
    "Target Country",
    "City",
    "Province",
    "Country",
)
_EXPECTED = {
    "gdelt2": "GDELT 2.0 rows of 61 tab-separated columns",
    "gdelt1": "GDELT 1.0 rows of 57 or 58 tab-separated columns",
    "icews": "an ICEWS header row (tab-separated: " + ", ".join(_ICEWS_COLUMNS[:4]) + ", ...)",
    "acled": "an ACLED CSV header (" + ", ".join(_ACLED_COLUMNS[:5]) + ", ...)",
    "native": "the native CSV header 'date,actor1,actor2,event_code,num_sources,source_url,note'",
    "auto": "GDELT 1.0/2.0 rows, or an ICEWS, ACLED or native CSV header",
}
_TAB_COLUMNS = {"gdelt2": (61,), "gdelt1": (57, 58)}

_HEAD_BYTES = 1 << 16  # what format detection looks at
_CHUNK = 1 << 20
#: Rejected rows listed by line in an `ImportResult` (all are counted).
MAX_REJECTIONS = 20
#: DuckDB's memory while importing (`bench/import_bench.py` measures the peak).
IMPORT_MEMORY = "200MB"
_SAMPLE_LINES = 100
_NO_DELIMITER = "\x1f"  # DuckDB must see one column per line; files with this byte are normalised
_JOINED = "\x1e"  # a line joined to the CSV record above it (`_Records`); not a row
_MAX_RECORD_LINES = 50  # lines one CSV record may span (a quoted field with line feeds)
_FIRST_DATE = date(1979, 1, 1)
_CSV_FIELD = r',("(?:[^"]|"")*"|[^,]*)'  # one field after a comma; the line gets a leading comma


@dataclass(frozen=True)
class Rejection:
    """A source row that was not imported: its 1-based physical line and why."""

    line: int
    reason: str


@dataclass(frozen=True)
class ImportResult:
    """What importing one file did; ``read = imported + duplicate + outside_region + rejected``."""

    file: str
    format: str
    read: int
    imported: int
    duplicate: int
    outside_region: int
    rejected: int
    rejections: list[Rejection] = field(default_factory=list)  # the first MAX_REJECTIONS

    def as_dict(self) -> dict[str, Any]:
        """The counts as JSON-ready data (the rejections are not included)."""
        keys = ("file", "format", "read", "imported", "duplicate", "outside_region", "rejected")
        return {k: getattr(self, k) for k in keys}


# --------------------------------------------------------------------------- public functions


def detect_format(path: Path | str) -> str:
    """Detect an event file's format from its (decompressed) content, not its name.

    Parameters
    ----------
    path
        A plain, gzip or single-member zip file.

    Returns
    -------
    str
        One of ``gdelt1``, ``gdelt2``, ``icews``, ``acled``, ``native``.

    Raises
    ------
    EventFormatError
        The file is missing, empty, binary, or of no known format.
    """
    path = Path(path)
    return _layout(path, _head(path, _compression(path)), "auto").fmt


def import_events(
    con: duckdb.DuckDBPyConnection,
    path: Path | str,
    *,
    fmt: Format = "auto",
    region: Sequence[str] | None = DEFAULT_REGION,
    name: str | None = None,
) -> ImportResult:
    """Import one event file into the store, in one transaction.

    Parameters
    ----------
    con
        The store (:func:`forecast.store.open_store`).
    path
        The file: GDELT 1.0/2.0 export, ICEWS, ACLED or native CSV; plain, ``.gz`` or ``.zip``.
    fmt
        The declared format, or ``"auto"`` to detect it from the content.
    region
        CAMEO country codes; a row is kept when either actor is one of them. ``None`` (or empty)
        keeps every valid row.
    name
        What the store and the messages call the file (a fetched file's address); `path` by
        default.

    Returns
    -------
    ImportResult
        Counts and the rejected rows (line, reason), by line.

    Raises
    ------
    EventFormatError
        The file is not of the declared (or any known) format; the store is unchanged.
    ValueError
        `fmt` or a region code is invalid (a programming error, not a bad file).

    Notes
    -----
    Call it outside a transaction: it commits its own. It uses the temporary tables ``_lines``,
    ``_staged``, ``_candidates``, ``_fresh`` and ``_groups`` of the connection.
    """
    path = Path(path)
    if fmt != "auto" and fmt not in FORMATS:
        raise ValueError(f"unknown event format {fmt!r}; expected one of {', '.join(FORMATS)}")
    codes = _region(region)
    # a bounded memory: a file of junk stages as many rows as it has lines, and DuckDB spills
    # what does not fit to its temporary folder; `_staging_sql` numbers lines after the read
    con.execute(f"SET memory_limit = '{IMPORT_MEMORY}'; SET enable_progress_bar = false; "
                "SET preserve_insertion_order = true")
    try:
        with tempfile.TemporaryDirectory(prefix="forecast-import-", dir=_scratch(con)) as tmp:
            source = _readable(path, Path(tmp))
            try:
                kind = _compression(source)
                head = _head(source, kind)
                layout = _layout(source, head, fmt)
                scan, found = _stage(con, source, kind, head, layout, codes, Path(tmp))
                if scan.nul_line is not None:  # past the first bytes that `_layout` checked
                    raise EventFormatError(f"{source}: expected lines of text, found binary data "
                                           f"(a NUL byte on line {scan.nul_line}); nothing was "
                                           "imported")
            except EventFormatError as exc:  # name the file the user gave, not the copy
                raise EventFormatError(str(exc).replace(str(source), name or str(path))) from exc
            return _merge(con, name or str(path), layout, codes, scan, found)
    finally:
        con.execute("DROP VIEW IF EXISTS _candidates; DROP TABLE IF EXISTS _staged; "
                    "DROP TABLE IF EXISTS _lines; RESET memory_limit; "
                    "RESET preserve_insertion_order")


def _readable(path: Path, tmp: Path) -> Path:
    """`path` if it is a regular file; a pipe, FIFO, `-` (standard input) or device is read once,
    in chunks, into a file in `tmp` (it could not be read again), and that file is returned."""
    if str(path) != "-":
        try:
            if stat.S_ISREG(path.stat().st_mode):
                return path
        except OSError as exc:
            raise EventFormatError(
                f"{path}: expected an event file, found {_oserror(exc)}") from exc
    copy = tmp / "stream"
    try:
        with (nullcontext(sys.stdin.buffer) if str(path) == "-" else path.open("rb")) as src, \
                copy.open("wb") as out:
            shutil.copyfileobj(src, out, _CHUNK)
    except OSError as exc:
        raise EventFormatError(f"{path}: could not read it whole ({_oserror(exc)})") from exc
    return copy


#: GDELT 2.0's event columns in the order of its exports (the public BigQuery table has the same).
GDELT2_COLUMNS = (
    "GLOBALEVENTID", "SQLDATE", "MonthYear", "Year", "FractionDate",
    *(f"Actor{a}{c}" for a in (1, 2) for c in (
        "Code", "Name", "CountryCode", "KnownGroupCode", "EthnicCode", "Religion1Code",
        "Religion2Code", "Type1Code", "Type2Code", "Type3Code")),
    "IsRootEvent", "EventCode", "EventBaseCode", "EventRootCode", "QuadClass", "GoldsteinScale",
    "NumMentions", "NumSources", "NumArticles", "AvgTone",
    *(f"{g}Geo_{c}" for g in ("Actor1", "Actor2", "Action") for c in (
        "Type", "FullName", "CountryCode", "ADM1Code", "ADM2Code", "Lat", "Long", "FeatureID")),
    "DATEADDED", "SOURCEURL",
)
BIGQUERY_TABLE = "`gdelt-bq.gdeltv2.events`"


def warehouse_sql(region: Sequence[str], *, since: date | None = None,
                  until: date | None = None, table: str = BIGQUERY_TABLE) -> str:
    """The query that selects the region's GDELT 2.0 events from a warehouse table of GDELT's
    schema (BigQuery's public `gdelt-bq.gdeltv2.events` by default), with the importer's region
    rule (either actor's country code) and its columns in export order, so that the result,
    exported tab-separated without a header, imports as ``gdelt2``. `since` and `until` bound
    SQLDATE (the event's day), inclusive."""
    codes = ", ".join(_sql_str(c) for c in _region(region))
    where = [f"(Actor1CountryCode IN ({codes}) OR Actor2CountryCode IN ({codes}))"]
    if since is not None:
        where.append(f"SQLDATE >= {since:%Y%m%d}")
    if until is not None:
        where.append(f"SQLDATE <= {until:%Y%m%d}")
    return (f"SELECT {', '.join(GDELT2_COLUMNS)}\nFROM {table}\nWHERE "
            + "\n  AND ".join(where) + "\nORDER BY DATEADDED, GLOBALEVENTID")


def filter_sql(
    actor1: Sequence[str] | None = None,
    actor2: Sequence[str] | None = None,
    codes: Sequence[str] | None = None,
    min_sources: int = 1,
) -> tuple[str, list[Any]]:
    """Build the WHERE condition of an event filter over the ``events`` table (events folded into
    another feed's are never counted: `merge_feeds`).

    Parameters
    ----------
    actor1, actor2
        CAMEO country codes the actor must be one of; ``None`` for any.
    codes
        CAMEO codes matched by prefix, following the CAMEO hierarchy: ``"19"`` matches 190-196 and
        their sub-codes, ``"163"`` matches 163 and 1631...; ``None`` for any.
    min_sources
        Minimum ``num_sources`` of the event.

    Returns
    -------
    tuple[str, list]
        A condition with ``?`` placeholders and its parameters, in order.
    """
    for code in codes or ():
        if not (code.isdigit() and 1 <= len(code) <= 4):
            raise ValueError(f"CAMEO code {code!r}: expected 1 to 4 digits")
    clauses: list[str] = ["folded_into IS NULL", "num_sources >= ?"]
    params: list[Any] = [min_sources]
    for column, allowed in (("actor1", actor1), ("actor2", actor2)):
        if allowed is not None:
            clauses.append(f"list_contains(?, {column})")
            params.append(list(allowed))
    if codes is not None:
        clauses.append("list_has_any(?, [event_code[1:i] FOR i IN range(1, 5)])")
        params.append(list(codes))
    return " AND ".join(clauses), params


def list_events(
    con: duckdb.DuckDBPyConnection,
    *,
    since: date | None = None,
    until: date | None = None,
    actor1: Sequence[str] | None = None,
    actor2: Sequence[str] | None = None,
    codes: Sequence[str] | None = None,
    min_sources: int = 1,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """The stored events matching a filter (see :func:`filter_sql`), by date.

    `since` and `until` are inclusive. Each event is a dict of the ``events`` columns.
    """
    where, params = filter_sql(actor1, actor2, codes, min_sources)
    if since is not None:
        where, params = f"{where} AND date >= ?", [*params, since]
    if until is not None:
        where, params = f"{where} AND date <= ?", [*params, until]
    sql = f"SELECT * EXCLUDE (folded_into) FROM events WHERE {where} ORDER BY date, file, line"
    if limit is not None:
        sql, params = f"{sql} LIMIT ?", [*params, limit]
    return _dicts(con, sql, params)


def event_stats(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """Counts of stored events: in total, by ISO week (starting Monday), actor pair and format.

    Each count gives ``events`` (distinct events, not those folded into another feed's) and
    ``source_rows`` (every source row behind them, those of folded events included); in total
    also ``folded`` (events folded into another feed's, `merge_feeds`).
    """
    counts = ("count(*) FILTER (WHERE folded_into IS NULL) AS events, "
              "coalesce(sum(1 + duplicates), 0)::BIGINT AS source_rows")
    return {
        **_dicts(con, f"SELECT {counts}, count(folded_into) AS folded FROM events")[0],
        "by_week": _dicts(
            con,
            f"SELECT date_trunc('week', date)::DATE AS week, {counts} FROM events "
            "GROUP BY week ORDER BY week",
        ),
        "by_actor_pair": _dicts(
            con,
            f"SELECT actor1, actor2, {counts} FROM events GROUP BY actor1, actor2 "
            "ORDER BY events DESC, actor1 NULLS LAST, actor2 NULLS LAST",
        ),
        "by_format": _dicts(
            con,
            f"SELECT source_format, {counts} FROM events GROUP BY source_format "
            "ORDER BY source_format",
        ),
    }


#: Feeds coded by people from what happened, and feeds coded by machines from the news.
CURATED_FORMATS = ("acled", "native")
MACHINE_FORMATS = ("gdelt1", "gdelt2", "icews")


def merge_feeds(con: duckdb.DuckDBPyConnection, *, days: int = 1, apply: bool = True
                ) -> list[dict[str, Any]]:
    """Fold each machine-coded event (GDELT, ICEWS) into the curated event (ACLED, hand-coded)
    that reports the same thing, so that one happening is not counted once per feed; call inside
    a transaction. An optional step (``forecast events merge-feeds``): importing never does it.

    The same happening: the same actor1 and the same actor2 (an unknown actor matches only an
    unknown one, and not both may be unknown), the same CAMEO root (the code's first two digits:
    ACLED's event types map to roots, not to GDELT's finer codes) and dates at most `days` apart
    (GDELT dates an event by the news of it, ACLED by when it happened). A machine-coded event
    matching several curated ones goes to the nearest in date, then the first by file and line.
    The machine-coded event is marked ``folded_into`` the curated one (``file:line``): it no longer
    counts as an event of its own (`filter_sql`, `event_stats`), while its rows stay in the store
    (rows are only ever added) and still show the days its feed covers. A row of a later file
    with its key counts as its duplicate, so it stays folded.

    Returns the pairs, by date: each machine-coded event (date, actors, code, feed, file, line,
    source rows) and the curated one it joins (``into_``: date, code, feed, file, line). With
    `apply` false nothing changes.
    """
    if days < 0:
        raise ValueError(f"days must be 0 or more, not {days}")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _merges AS
        SELECT * EXCLUDE (nearest) FROM (
            SELECT m.date, m.actor1, m.actor2, m.event_code, m.source_format AS feed, m.file,
                m.line, 1 + m.duplicates AS source_rows, c.date AS into_date,
                c.event_code AS into_code, c.source_format AS into_feed, c.file AS into_file,
                c.line AS into_line,
                row_number() OVER (PARTITION BY m.file, m.line
                                   ORDER BY abs(datediff('day', c.date, m.date)), c.file, c.line
                                   ) AS nearest
            FROM events m JOIN events c
              ON m.actor1 IS NOT DISTINCT FROM c.actor1 AND m.actor2 IS NOT DISTINCT FROM c.actor2
             AND m.event_code[1:2] = c.event_code[1:2]
             AND abs(datediff('day', c.date, m.date)) <= {int(days)}
            WHERE m.source_format IN {MACHINE_FORMATS} AND c.source_format IN {CURATED_FORMATS}
              AND m.folded_into IS NULL AND (m.actor1 IS NOT NULL OR m.actor2 IS NOT NULL))
        WHERE nearest = 1""")
    pairs = _dicts(con, "SELECT * FROM _merges ORDER BY date, file, line")
    if apply:
        con.execute("""UPDATE events e SET folded_into = m.into_file || ':' || m.into_line
                        FROM _merges m WHERE e.file = m.file AND e.line = m.line""")
    con.execute("DROP TABLE _merges")
    return pairs


# --------------------------------------------------------------------------- reading bytes


def _compression(path: Path) -> str:
    """``gzip``, ``zip`` or ``none``, from the file's first bytes."""
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise EventFormatError(f"{path}: expected an event file, found {_oserror(exc)}") from exc
    if magic[:2] == b"\x1f\x8b":
        return "gzip"
    if magic == b"PK\x03\x04":
        return "zip"
    return "none"


#: Errors of the file system the import writes to, never of the file it reads.
_DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


@contextmanager
def _open_bytes(path: Path, kind: str) -> Iterator[BufferedIOBase]:
    """The decompressed content; archive errors become EventFormatError."""
    try:
        if kind == "zip":
            with zipfile.ZipFile(path) as archive:
                members = [m for m in archive.infolist() if not m.is_dir()]
                if len(members) != 1:
                    raise EventFormatError(
                        f"{path}: expected a zip archive of one event file, "
                        f"found {len(members)} files"
                    )
                try:
                    member = archive.open(members[0])
                except (NotImplementedError, RuntimeError) as exc:  # encrypted, or a new method
                    raise EventFormatError(
                        f"{path}: expected a zip archive of one event file, found "
                        f"{members[0].filename!r}, encrypted or compressed by an unsupported "
                        "method"
                    ) from exc
                with member:
                    yield member  # type: ignore[misc]  # a ZipExtFile: a BufferedIOBase
        else:
            with gzip.open(path, "rb") if kind == "gzip" else path.open("rb") as f:
                yield f  # type: ignore[misc]  # GzipFile is a binary IO
    except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as exc:
        if isinstance(exc, OSError) and exc.errno in _DISK_ERRORS:
            raise  # writing the decompressed copy, not reading the file: not its fault
        expected = {"gzip": "gzip data", "zip": "a zip archive"}.get(kind, "a readable file")
        raise EventFormatError(f"{path}: expected {expected}, found {_oserror(exc)}") from exc


def _head(path: Path, kind: str) -> bytes:
    with _open_bytes(path, kind) as f:
        return f.read(_HEAD_BYTES)


@dataclass(frozen=True)
class _Scan:
    """One pass over the content: its hash, its number of lines, and whether DuckDB can read it."""

    sha256: str
    lines: int  # 0 when only hashed: DuckDB counts the lines it read (`_stage`)
    clean: bool
    joined: int = 0  # lines joined to the CSV record above them (`_Records`)
    nul_line: int | None = None  # the line of the first NUL byte: binary data, not text


def _scan(src: BufferedIOBase, out: IO[bytes] | None = None, *,
          csv_records: bool = False) -> _Scan:
    """Hash `src`; without `out`, only check that DuckDB splits it into lines as we do (no CR,
    NUL, unit or record separator: `clean`); with `out`, count its lines and write its normalised
    text there.

    Lines end at line feeds; a last line without one counts. Normalising: CRLF -> LF, a lone CR and
    the unit separator -> space, bytes that are not UTF-8 -> U+FFFD; the line structure is kept,
    except that with `csv_records` the lines of a record split by a quoted line feed are joined
    (`_Records`).
    """
    digest = hashlib.sha256()
    if out is None:  # stops at the first byte DuckDB would split otherwise: read it again
        unclean = (b"\r", b"\0", _NO_DELIMITER.encode(), _JOINED.encode())
        buffer = bytearray(_CHUNK)  # one buffer read into: 5% faster than a new chunk each time
        while n := src.readinto(buffer):
            digest.update(memoryview(buffer)[:n])
            if any(buffer.find(c, 0, n) >= 0 for c in unclean):
                return _Scan("", 0, False)
        return _Scan(digest.hexdigest(), 0, True)
    lines, last, nul_line = 0, b"\n", None
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    records = _Records() if csv_records else None
    carry_cr = False  # a CR ending a chunk may start a CRLF
    for chunk in iter(partial(src.read, _CHUNK), b""):
        digest.update(chunk)
        if nul_line is None and (at := chunk.find(b"\0")) >= 0:
            nul_line = lines + chunk.count(b"\n", 0, at) + 1
        lines += chunk.count(b"\n")
        last = chunk[-1:]
        text = ("\r" if carry_cr else "") + decoder.decode(chunk)
        carry_cr = text.endswith("\r")
        text = _normalise(text[:-1] if carry_cr else text)
        out.write((records.feed(text) if records else text).encode())
    text = _normalise(decoder.decode(b"", final=True) + ("\r" if carry_cr else ""))
    out.write((records.feed(text) + records.end() if records else text).encode())
    return _Scan(digest.hexdigest(), lines + (last != b"\n"), True,  # the copy is clean
                 records.joined if records else 0, nul_line)


class _Records:
    """Joins the lines of a CSV record that quoted line feeds split (RFC 4180: a field in quotes
    may hold one), with a space for each line feed. Each joined line is written as a `_JOINED`
    line after its record, so every other line keeps its number for the rejections. A line whose
    quotes do not close within `_MAX_RECORD_LINES` lines stays alone (and is rejected for its
    quoting)."""

    def __init__(self) -> None:
        self.partial = ""  # a line not ended yet
        self.record: list[str] = []  # the lines of an open record
        self.joined = 0

    def feed(self, text: str) -> str:
        lines = (self.partial + text).split("\n")
        self.partial = lines.pop()
        return "".join(self._line(line) for line in lines)

    def end(self) -> str:
        out = self._line(self.partial) if self.partial else ""
        self.partial = ""
        while self.record:  # quotes still open at the end
            out += self._first_alone()
        return out

    def _line(self, line: str) -> str:
        self.record.append(line)
        if sum(part.count('"') for part in self.record) % 2 == 0:
            return self._flush(len(self.record))
        if len(self.record) < _MAX_RECORD_LINES:
            return ""
        return self._first_alone()

    def _first_alone(self) -> str:
        """The open record's first line alone (its quotes never close), the rest read again."""
        first = self._flush(1)
        rest, self.record = self.record, []
        return first + "".join(self._line(line) for line in rest)

    def _flush(self, n: int) -> str:
        """The first `n` open lines as one record, and a `_JOINED` line for each joined one."""
        if not n:
            return ""
        head, self.record = self.record[:n], self.record[n:]
        self.joined += n - 1
        return " ".join(head) + "\n" + (_JOINED + "\n") * (n - 1)


def _normalise(text: str) -> str:
    return (text.replace("\r\n", "\n").replace("\r", " ").replace(_NO_DELIMITER, " ")
            .replace(_JOINED, " "))


def _scan_file(path: Path, kind: str) -> _Scan:
    with _open_bytes(path, kind) as src:
        return _scan(src)


# --------------------------------------------------------------------------- formats


@dataclass(frozen=True)
class _Layout:
    """How to split one format's lines: header or not, accepted column counts, named columns."""

    fmt: str
    header: bool
    columns: tuple[int, ...]
    names: dict[str, int] = field(default_factory=dict)  # header name -> 1-based index


def _layout(path: Path, head: bytes, fmt: str) -> _Layout:
    """Detect (``fmt="auto"``) or check the format from the first bytes; raise if it is wrong."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise EventFormatError(f"{path}: expected {_EXPECTED[fmt]}, found UTF-16 text "
                               "(a byte-order mark); save the file as UTF-8")
    text = head.decode("utf-8", "replace")
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise EventFormatError(
            f"{path}: expected {_EXPECTED[fmt]}, found binary data (a NUL byte on line {line})"
        )
    if text.count("\ufffd") > len(text) // 100:
        line = text[: text.index("\ufffd")].count("\n") + 1
        raise EventFormatError(
            f"{path}: expected {_EXPECTED[fmt]}, found bytes that are not UTF-8 text "
            f"(from line {line})"
        )
    lines = _normalise(text).split("\n")  # the lines DuckDB will see
    if len(lines) > 1 and (len(head) == _HEAD_BYTES or lines[-1] == ""):
        lines.pop()  # a partial last line, or the empty string after the final line feed
    sample = [(i, line) for i, line in enumerate(lines[: _SAMPLE_LINES * 2], 1) if line.strip()]
    if not sample:
        raise EventFormatError(f"{path}: expected {_EXPECTED[fmt]}, found an empty file")
    first = lines[0].removeprefix("\ufeff")
    # header names in any case (an export opened and saved by a spreadsheet may upper-case them)
    csv_header = [name.strip().lower() for name in next(csv.reader([first]))]
    tsv_header = [name.strip().strip('"').lower() for name in first.split("\t")]
    headers = {"native": csv_header, "acled": csv_header, "icews": tsv_header}
    required = {"native": _NATIVE_COLUMNS, "acled": _ACLED_COLUMNS, "icews": _ICEWS_COLUMNS}
    counts = [(i, len(line.split("\t"))) for i, line in sample[:_SAMPLE_LINES]]

    def fits(candidate: str) -> bool:
        if candidate in headers:
            return {c.lower() for c in required[candidate]} <= set(headers[candidate])
        good = sum(n in _TAB_COLUMNS[candidate] for _, n in counts)
        return 2 * good >= len(counts)

    if fmt == "auto":
        fmt = next((f for f in ("native", "acled", "icews", "gdelt2", "gdelt1") if fits(f)), "auto")
        if fmt == "auto":
            found = f"{_quote(first)} on line 1"
            raise EventFormatError(f"{path}: expected {_EXPECTED['auto']}, found {found}")
    elif not fits(fmt):
        if fmt in headers:
            found = f"{_quote(first)} on line 1"
        else:
            i, n = next((i, n) for i, n in counts if n not in _TAB_COLUMNS[fmt])
            found = f"{n} tab-separated column{'s' * (n != 1)} on line {i}"
        raise EventFormatError(f"{path}: expected {_EXPECTED[fmt]}, found {found}")
    if fmt in headers:
        names = {name: i for i, name in enumerate(headers[fmt], 1)}
        return _Layout(fmt, True, (len(headers[fmt]),), names)
    return _Layout(fmt, False, _TAB_COLUMNS[fmt])


class _Columns(dict):
    """Header names to fields, looked up in any case."""

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())


def _fields(layout: _Layout) -> dict[str, str]:
    """SQL for the raw fields of one row, over ``f`` (its fields, 1-based) and ``n`` (their count).

    Keys: ``oid``, ``d`` (date text), ``a1``/``a2`` (CAMEO country codes or NULL), ``root``,
    ``code``, ``gold``, ``ns`` (text), ``loc``, ``url``, ``pre`` (a format-specific rejection
    reason, checked after the column count) and ``added`` (the day the feed coded the row, as
    YYYYMMDD, where the feed says).
    """
    col = _Columns({name: f"f[{i}]" for name, i in layout.names.items()})
    none = "NULL::VARCHAR"
    if layout.fmt in ("gdelt1", "gdelt2"):
        gdelt2 = layout.fmt == "gdelt2"
        return {
            "oid": "nullif(f[1], '')",
            "d": "f[2]",
            "a1": "nullif(f[8], '')",
            "a2": "nullif(f[18], '')",
            "root": "f[26]",
            "code": "f[27]",
            "gold": "f[31]",
            "ns": "f[33]",
            "loc": "nullif(f[53], '')" if gdelt2 else "nullif(f[51], '')",
            # GDELT 1.0 backfile rows (57 columns, before April 2013) have no SOURCEURL.
            "url": "nullif(f[61], '')" if gdelt2 else "CASE WHEN n = 58 THEN nullif(f[58], '') END",
            "pre": none,
            # DATEADDED: the day GDELT coded the row, which is what a file covers
            "added": "left(f[60], 8)" if gdelt2 else "f[57]",
        }
    if layout.fmt == "icews":
        # ICEWS writes a missing value as NA
        place = ", ".join(f"nullif(nullif({col[c]}, ''), 'NA')"
                          for c in ("City", "Province", "Country"))
        return {
            "oid": col["Event ID"],
            "d": col["Event Date"],
            "a1": _country(col["Source Country"]),
            "a2": _country(col["Target Country"]),
            "root": none,
            "code": col["CAMEO Code"],
            "gold": col["Intensity"],
            "ns": "'1'",  # one row per story sentence; repeated reports become duplicates
            "loc": f"nullif(concat_ws(', ', {place}), '')",
            "url": none,
            "pre": none,
            "added": none,
        }
    if layout.fmt == "acled":
        kind = f"{col['event_type']} || ': ' || {col['sub_event_type']}"
        place = ", ".join(f"nullif({col[c]}, '')" for c in ("location", "admin1", "country"))
        sources = f"list_filter(string_split({col['source']}, ';'), lambda s: trim(s) <> '')"
        return {
            "oid": f"nullif({col['event_id_cnty']}, '')",
            "d": col["event_date"],
            "a1": _acled_actor(col["actor1"]),
            "a2": _acled_actor(col["actor2"]),
            "root": none,
            "code": f"{_ACLED_MAP}[{kind}]",
            "gold": none,  # ACLED has no Goldstein value
            "ns": f"greatest(len({sources}), 1)::VARCHAR",
            "loc": f"nullif(concat_ws(', ', {place}), '')",
            "url": none,
            "pre": f"CASE WHEN {_ACLED_MAP}[{kind}] IS NULL "
            f"THEN 'no CAMEO code for ACLED event type ' || {_quoted_sql(kind)} END",
            "added": none,
        }
    return {  # native
        "oid": none,
        "d": col["date"],
        "a1": f"nullif({col['actor1']}, '')",
        "a2": f"nullif({col['actor2']}, '')",
        "root": none,
        "code": col["event_code"],
        "gold": none,
        "ns": col["num_sources"],
        "loc": none,
        "url": f"nullif({col['source_url']}, '')",
        "pre": f"CASE WHEN {col['actor1']} = '' THEN 'missing actor1 code' END",
        "added": none,
    }


def _country(name: str) -> str:
    """SQL: the CAMEO country code of a country's name as a feed writes it (NULL if none)."""
    return f"{_country_map()}[{_normal_sql(name)}]"


def _acled_actor(actor: str) -> str:
    """An ACLED actor's country: the first country named in the actor's name ("Military Forces of
    Russia (2000-)", "Protesters (Azerbaijan)"), else unknown (NULL): never the country where
    the event took place (unidentified forces striking Iranian forces in Syria are not Syrian)."""
    named = f"regexp_extract({_normal_sql(actor)}, {_sql_str(_names_regex(country_names()))}, 1)"
    return f"{_country_map()}[{named}]"


def _dates(fmt: str) -> str:
    """SQL parsing ``d`` strictly: DuckDB's strptime alone accepts e.g. '2019102' or ' 2019-1-5'."""
    iso = ("[0-9]{4}-[0-9]{2}-[0-9]{2}", "'%Y-%m-%d'")
    forms = {
        "gdelt1": [("[0-9]{8}", "'%Y%m%d'")],
        "gdelt2": [("[0-9]{8}", "'%Y%m%d'")],
        "icews": [iso],
        "native": [iso],
        "acled": [iso, ("[0-9]{1,2} [A-Za-z]+ [0-9]{4}", "['%d %B %Y', '%d %b %Y']"),
                  ("[0-9]{1,2}-[A-Za-z]+-[0-9]{4}", "['%d-%B-%Y', '%d-%b-%Y']"),
                  ("[0-9]{1,2}-[A-Za-z]{3}-[0-9]{2}", "'%d-%b-%y'")],  # 9-May-20
    }[fmt]
    cases = " ".join(
        f"WHEN regexp_full_match(d, '{pattern}') THEN try_strptime(d, {form})"
        for pattern, form in forms
    )
    return f"(CASE {cases} END)::DATE"


def _prefilter(layout: _Layout, region: tuple[str, ...]) -> str:
    """SQL true for every raw line that can concern the region (a superset; see the module doc)."""
    if not region or layout.fmt == "native":
        return "TRUE"
    codes = f"(?:{'|'.join(region)})"
    if layout.fmt in ("gdelt1", "gdelt2"):
        # Actor1CountryCode and Actor2CountryCode are fields 8 and 18; anchoring the pattern lets
        # the regex stop there instead of reading the whole line.
        field = "[^\t]*\t"
        return f"regexp_matches(text, '^(?:{field}){{7}}{codes}\t|^(?:{field}){{17}}{codes}\t')"
    names = {name: code for name, code in country_names().items() if code in region}
    return (f"regexp_matches({_normal_sql('text')}, {_sql_str(_names_regex(names))})" if names
            else "FALSE")


def _staging_sql(source: Path, gzipped: bool, layout: _Layout, region: tuple[str, ...]
                 ) -> tuple[str, str]:
    """The statement that reads the file into ``_lines`` (keep, text) and the query that numbers,
    splits, maps and validates its kept lines (line, event columns, reason, in_region).

    Two steps, so that reading the file runs on every core: numbering the lines as they are read
    (``row_number() OVER ()``) would hold the read and the region's filter to one thread. So the
    file is read and filtered in parallel into ``_lines``, one row per line in the file's order
    (DuckDB keeps the insertion order), the text only of the lines the filter keeps; the
    numbering is a quick pass over that table.
    """
    reader = (
        f"read_csv({_sql_str(str(source))}, columns={{'text': 'VARCHAR'}}, header=false, "
        f"delim={_sql_str(_NO_DELIMITER)}, quote='', escape='', auto_detect=false, "
        f"strict_mode=false, compression={'gzip' if gzipped else 'none'})"
    )
    csv_format = layout.fmt in ("acled", "native")
    if csv_format:
        split = f"regexp_extract_all(',' || text, {_sql_str(_CSV_FIELD)}, 1)"
        fields = (
            "list_transform(fr, lambda x: CASE WHEN starts_with(x, '\"') "
            "THEN replace(x[2:-2], '\"\"', '\"') ELSE x END)"
        )
        # A field the pattern skipped over, or a quote that does not close, is bad quoting.
        bad_quoting = (
            "list_sum(list_transform(fr, lambda x: length(x) + 1)) <> length(text) + 1 OR "
            "list_bool_or(list_transform(fr, lambda x: starts_with(x, '\"') "
            "AND (length(x) < 2 OR NOT ends_with(x, '\"'))))"
        )
    elif layout.fmt == "icews":  # Dataverse's .tab quotes its text fields; older files do not
        split, bad_quoting = "string_split(text, '\t')", "FALSE"
        fields = ("list_transform(fr, lambda x: CASE WHEN length(x) >= 2 AND starts_with(x, '\"')"
                  " AND ends_with(x, '\"') THEN replace(x[2:-2], '\"\"', '\"') ELSE x END)")
    else:
        split, fields, bad_quoting = "string_split(text, '\t')", "fr", "FALSE"
    raw = ",\n                ".join(f"{sql} AS {name}" for name, sql in _fields(layout).items())
    last_date = date.today() + timedelta(days=365)
    in_region = (
        f"coalesce(list_contains({list(region)}, a1) OR list_contains({list(region)}, a2), FALSE)"
        if region
        else "TRUE"
    )
    expected = " or ".join(map(str, layout.columns))
    lines = f"""
        CREATE OR REPLACE TEMP TABLE _lines AS
            SELECT (text IS NULL OR {_prefilter(layout, region)})
                    AND text IS DISTINCT FROM '{_JOINED}' AS keep,
                CASE WHEN keep THEN text END AS text
            FROM {reader}"""
    return lines, f"""
        WITH kept AS (
            SELECT line, text, {split} AS fr
            FROM (SELECT row_number() OVER () AS line, keep, text FROM _lines)
            WHERE keep AND line > {int(layout.header)}
        ), split AS (
            SELECT line, len(fr) AS n, {fields} AS f, {bad_quoting} AS bad_quoting FROM kept
        ), raw AS (
            SELECT line, n, bad_quoting,
                {raw}
            FROM split
        ), typed AS (
            SELECT *, {_dates(layout.fmt)} AS date,
                CASE WHEN regexp_full_match(ns, '[0-9]{{1,9}}')
                    THEN nullif(try_cast(ns AS INTEGER), 0) END AS num_sources,
                CASE WHEN gold <> '' THEN try_cast(gold AS DOUBLE) END AS goldstein
            FROM raw
        )
        SELECT line, date,
            coalesce(CASE WHEN regexp_full_match(added, '[0-9]{{8}}')
                THEN try_strptime(added, '%Y%m%d')::DATE END, date) AS covers,
            a1 AS actor1, a2 AS actor2, code AS event_code, goldstein,
            num_sources, url AS source_url, loc AS location,
            CASE root WHEN '1' THEN TRUE WHEN '0' THEN FALSE END AS is_root, oid AS original_id,
            CASE
                WHEN n IS NULL THEN 'empty line'
                WHEN bad_quoting THEN 'malformed CSV quoting'
                WHEN NOT list_contains({list(layout.columns)}, n)
                    THEN 'expected {expected} columns, found ' || n
                WHEN pre IS NOT NULL THEN pre
                WHEN date IS NULL THEN 'bad date ' || {_quoted_sql("d")}
                WHEN date NOT BETWEEN DATE '{_FIRST_DATE}' AND DATE '{last_date}'
                    THEN 'date ' || date || ' outside {_FIRST_DATE}..{last_date}'
                WHEN NOT coalesce(regexp_full_match(a1, '{COUNTRY_CODE.pattern}'), TRUE)
                    THEN 'bad actor1 code ' || {_quoted_sql("a1")}
                WHEN NOT coalesce(regexp_full_match(a2, '{COUNTRY_CODE.pattern}'), TRUE)
                    THEN 'bad actor2 code ' || {_quoted_sql("a2")}
                WHEN NOT coalesce(regexp_full_match(code, '{EVENT_CODE_PATTERN}'), FALSE)
                    THEN 'bad event code ' || {_quoted_sql("code")}
                WHEN num_sources IS NULL THEN 'bad number of sources ' || {_quoted_sql("ns")}
                WHEN gold <> '' AND NOT coalesce(goldstein BETWEEN -10 AND 10, FALSE)
                    THEN 'bad Goldstein value ' || {_quoted_sql("gold")}
                WHEN root IS NOT NULL AND root NOT IN ('0', '1')
                    THEN 'bad IsRootEvent ' || {_quoted_sql("root")}
            END AS reason,
            {in_region} AS in_region
        FROM typed
    """


# --------------------------------------------------------------------------- importing


@dataclass(frozen=True)
class _Validated:
    """What validating the lines found: DuckDB's count of them, the rows it validated (those that
    can concern the region, after the header), and the rejected ones (all counted, the first
    `MAX_REJECTIONS` by line listed)."""

    lines: int
    validated: int
    rejected: int
    rejections: list[Rejection]
    malformed: int  # rejected for their CSV quoting


def _stage(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    kind: str,
    head: bytes,
    layout: _Layout,
    region: tuple[str, ...],
    tmp: Path,
) -> tuple[_Scan, _Validated]:
    """Fill ``_staged`` with the file's valid rows; return its hash and line count, and what
    validating it found.

    Fast path: DuckDB reads the file (or its gzip) and counts its lines while a thread hashes it on
    another core. If the thread finds text DuckDB would split differently, or DuckDB fails, or a
    CSV row's quoting does not close on its line (a quoted line feed, or a broken row), the file
    is normalised into `tmp` (CSV records joined) and read again.
    """
    csv_format = layout.fmt in ("acled", "native")
    if kind != "zip" and b"\r" not in head:
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(_scan_file, path, kind)
            try:
                found = _validate(con, path, kind == "gzip", layout, region)
            except (duckdb.InvalidInputException, duckdb.IOException):
                found = None
            scan = pending.result()
        if scan.clean and found and not (csv_format and found.malformed):
            return replace(scan, lines=found.lines), found
    text = tmp / "events.txt"
    with naming(text), _open_bytes(path, kind) as src, text.open("wb") as out:
        scan = _scan(src, out, csv_records=csv_format)
    try:
        return scan, _validate(con, text, False, layout, region)
    except (duckdb.InvalidInputException, duckdb.IOException) as exc:
        raise EventFormatError(f"{path}: expected lines of text, found {_unreadable(exc)}") from exc


def _validate(con: duckdb.DuckDBPyConnection, source: Path, gzipped: bool, layout: _Layout,
              region: tuple[str, ...]) -> _Validated:
    """Read `source` into ``_lines`` and its valid rows into ``_staged``. The rejected rows are
    counted, not kept (a file of junk would fill the disk and the memory with them): when there
    are any, a second pass over the kept lines finds the first ones, in constant memory."""
    read, validated = _staging_sql(source, gzipped, layout, region)
    con.execute(read)
    con.execute("CREATE OR REPLACE TEMP TABLE _staged AS "
                f"SELECT * EXCLUDE (reason) FROM ({validated}) WHERE reason IS NULL")
    lines, kept = con.execute("SELECT count(*), count(*) FILTER (WHERE keep) FROM _lines"
                              ).fetchone() or (0, 0)
    if layout.header and lines:  # line 1, the first row of the table
        kept -= store.count(con, "SELECT keep::INTEGER FROM _lines LIMIT 1")
    rejected = kept - store.count(con, "SELECT count(*) FROM _staged")
    malformed, first = 0, []
    if rejected:
        malformed, at, reasons = con.execute(
            "SELECT count(*) FILTER (WHERE reason = 'malformed CSV quoting'), "
            f"arg_min(line, line, {MAX_REJECTIONS}), arg_min(reason, line, {MAX_REJECTIONS}) "
            f"FROM ({validated}) WHERE reason IS NOT NULL").fetchone() or (0, [], [])
        first = [Rejection(int(line), _printable(reason))
                 for line, reason in sorted(zip(at, reasons, strict=True))]
    con.execute("DROP TABLE _lines")
    return _Validated(lines, kept, rejected, first, malformed)


def _unreadable(exc: duckdb.Error) -> str:
    """What DuckDB could not read, on one line (its message runs over many)."""
    message = str(exc)
    size = re.search(r"Maximum line size of (\d+) bytes exceeded", message)
    line = re.search(r"CSV Error on Line: (\d+)", message)
    if size:
        where = f" on line {line[1]}" if line else ""
        return f"a line longer than {int(size[1]):,} bytes{where}"
    return message.strip().splitlines()[0]


def _merge(
    con: duckdb.DuckDBPyConnection,
    path: str,
    layout: _Layout,
    region: tuple[str, ...],
    scan: _Scan,
    found: _Validated,
) -> ImportResult:
    """Count the rows and merge the valid in-region ones into the store."""
    read = max(scan.lines - layout.header - scan.joined, 0)
    rejected, rejections = found.rejected, found.rejections
    (outside,) = con.execute("SELECT count(*) FILTER (WHERE NOT in_region) FROM _staged"
                             ).fetchone() or (0,)
    if layout.header and read == 0:
        raise EventFormatError(f"{path}: expected rows under the header, found only the header")
    if rejected and rejected == read:  # nothing in the file is usable: refuse it whole
        first = rejections[0]
        more = f", and {rejected - 1} more" if rejected > 1 else ""
        raise EventFormatError(f"{path}: expected at least one valid row, found only rejected "
                               f"rows (line {first.line}: {first.reason}{more})")
    con.execute(
        f"""CREATE OR REPLACE TEMP VIEW _candidates AS
            SELECT *, '{layout.fmt}' AS source_format, {_sql_str(str(path))} AS file
            FROM _staged WHERE in_region"""
    )
    with store.transaction(con):
        imported, duplicate = store.add_events(con, "_candidates", sha256=scan.sha256)
        result = ImportResult(
            file=str(path),
            format=layout.fmt,
            read=read,
            imported=imported,
            duplicate=duplicate,
            outside_region=read - found.validated + outside,
            rejected=rejected,
            rejections=rejections,
        )
        store.log_import(
            con,
            file=str(path),
            sha256=scan.sha256,
            fmt=layout.fmt,
            region=",".join(region) or None,
            counts=result.as_dict(),
            span=con.execute("SELECT min(covers), max(covers) FROM _staged"
                             ).fetchone() or (None, None),
        )
    return result


# --------------------------------------------------------------------------- helpers


def _region(region: Sequence[str] | None) -> tuple[str, ...]:
    codes = tuple(region or ())
    for code in codes:
        if not COUNTRY_CODE.fullmatch(code):
            raise ValueError(f"region code {code!r}: expected a CAMEO country code such as 'RUS'")
    return codes


def _scratch(con: duckdb.DuckDBPyConnection) -> str | None:
    """The store's directory for temporary files (None, the system's, for an in-memory store)."""
    row = con.execute(
        "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchone()
    return str(Path(row[0]).parent) if row and row[0] else None


def _dicts(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> list[dict]:
    cursor = con.execute(sql, params or [])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _sql_map(mapping: dict[str, str]) -> str:
    return "MAP {" + ", ".join(f"{_sql_str(k)}: {_sql_str(v)}" for k, v in mapping.items()) + "}"


def _names_regex(names: dict[str, str]) -> str:
    """A regex matching any of the names as whole words, longest first ("Russian Federation"
    before "Russia")."""
    escaped = ("".join("\\" + c if c in r"\.^$|?*+()[]{}" else c for c in n) for n in names)
    return r"\b(" + "|".join(sorted(escaped, key=len, reverse=True)) + r")\b"


def _quoted_sql(expr: str) -> str:
    """SQL quoting a value for a rejection reason, cut to 40 characters."""
    return f"'''' || left(coalesce({expr}, ''), 40) || ''''"


def _printable(text: str) -> str:
    """`text` with control and other unprintable characters escaped, so it stays one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _quote(line: str) -> str:
    return repr(line[:60] + ("..." if len(line) > 60 else ""))


def _oserror(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError):
        return "no such file"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__




@cache
def _country_map() -> str:
    return _sql_map(country_names())


_ACLED_MAP = _sql_map({f"{kind}: {sub}": code for (kind, sub), code in ACLED_CAMEO.items()})
