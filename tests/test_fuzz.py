"""Fuzzing the parsers of untrusted input: the event importers and the TOML specs.

The property, for every input: it is read, or it is refused with the project's own error
(`ForecastError`) whose message is one line naming the file, and a refused event file leaves the
store as it was. Any other exception is a bug. Inputs are valid files broken on purpose (columns
dropped, duplicated or swapped, fields replaced with random text, values of the wrong type, keys
added or removed, the bytes truncated or flipped, compressed files damaged) and arbitrary bytes.
`tests/test_events.py` has the importers' row-level properties; this file adds the other formats,
the containers and the specs. Examples are derandomized, so CI runs the same inputs every time.
"""

import datetime as dt
import gzip
import io
import json
import shutil
import tempfile
import tomllib
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forecast.claims import load_claims
from forecast.errors import EventFormatError, ForecastError
from forecast.events import import_events
from forecast.example import init_example
from forecast.priors import load_priors
from forecast.scenarios import load_scenarios
from forecast.store import open_store
from forecast.workspace import CONFIG_FILE, bundled_priors, open_workspace
from tests.test_events import balanced, snapshot

DATA = Path(__file__).parent / "data"


def fuzz(examples: int) -> settings:
    """Deterministic settings, sized so that this file runs in about 20 s on one core."""
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# --------------------------------------------------------------------------- byte mutations


@st.composite
def damaged(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` cut at a random byte, with a few bytes flipped or inserted."""
    data = bytearray(data[: draw(st.integers(0, len(data)))] if draw(st.booleans()) else data)
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(data)))
        if draw(st.booleans()) and at < len(data):
            data[at] ^= draw(st.integers(1, 255))
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
    return bytes(data)


# --------------------------------------------------------------------------- event files

#: A few rows of each format's sample (headers kept), small enough to import quickly.
SAMPLES = {
    "gdelt2": ("gdelt2-20191024143000.export.tsv", "\t", 40),
    "gdelt1": ("gdelt1-sample.tsv", "\t", 40),
    "icews": ("icews-sample.tsv", "\t", 11),
    "acled": ("acled-sample.csv", ",", 10),
    "native": ("native-sample.csv", ",", 11),
}
FIELD_TEXT = st.text(alphabet='\t,;"\r\n\x00\x1f RUSAZE0123456789-/x\u00e9\ufeff', max_size=12)


@st.composite
def mangled_rows(draw: st.DrawFn, fmt: str) -> bytes:
    """A sample of `fmt` with some rows' columns dropped, duplicated, swapped or replaced."""
    name, sep, count = SAMPLES[fmt]
    lines = (DATA / name).read_text(encoding="utf-8").splitlines()[:count]
    first = 1 if fmt in ("icews", "acled", "native") else 0  # the header survives, mostly
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(first if draw(st.integers(0, 9)) else 0, len(lines) - 1))
        fields = lines[i].split(sep)
        j, k = (draw(st.integers(0, len(fields) - 1)) for _ in range(2))
        match draw(st.sampled_from(["drop", "duplicate", "swap", "replace", "row"])):
            case "drop":
                del fields[j]
            case "duplicate":
                fields.insert(k, fields[j])
            case "swap":
                fields[j], fields[k] = fields[k], fields[j]
            case "replace":
                fields[j] = draw(FIELD_TEXT)
            case "row":
                lines.insert(k % len(lines), lines[i])
        lines[i] = sep.join(fields)
    return ("\n".join(lines) + "\n").encode()


def packed(data: bytes, container: str) -> bytes:
    if container == "gzip":
        return gzip.compress(data, mtime=0)
    if container == "zip":
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("events.export.CSV", data)
        return out.getvalue()
    return data


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[duckdb.DuckDBPyConnection]:
    """One store for every import, holding events from the start."""
    con = open_store(tmp_path_factory.mktemp("fuzz") / "store.duckdb")
    import_events(con, DATA / "native-sample.csv")
    yield con
    con.close()


def import_or_refuse(con: duckdb.DuckDBPyConnection, data: bytes, fmt: str) -> None:
    """Import `data`: balanced counts, or one `EventFormatError` line and the store unchanged."""
    before = snapshot(con)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.dat"
        path.write_bytes(data)
        try:
            result = import_events(con, path, fmt=fmt)  # type: ignore[arg-type]
        except EventFormatError as error:
            assert str(error).startswith(f"{path}: ") and len(str(error).splitlines()) == 1
            assert snapshot(con) == before
            return
    assert balanced(result)


FORMATS = st.sampled_from(sorted(SAMPLES))


@fuzz(100)
@given(data=st.data(), fmt=FORMATS, declared=st.booleans(),
       container=st.sampled_from(["none", "gzip", "zip"]))
def test_mangled_event_files(store: duckdb.DuckDBPyConnection, data: st.DataObject, fmt: str,
                             declared: bool, container: str) -> None:
    content = packed(data.draw(mangled_rows(fmt)), container)
    import_or_refuse(store, content, fmt if declared else "auto")


@fuzz(100)
@given(data=st.data(), fmt=FORMATS, container=st.sampled_from(["none", "gzip", "zip"]))
def test_damaged_event_files(store: duckdb.DuckDBPyConnection, data: st.DataObject, fmt: str,
                             container: str) -> None:
    name, _, count = SAMPLES[fmt]
    sample = b"\n".join((DATA / name).read_bytes().splitlines()[:count]) + b"\n"
    declared = data.draw(st.sampled_from(["auto", fmt]))
    import_or_refuse(store, data.draw(damaged(packed(sample, container))), declared)


# --------------------------------------------------------------------------- TOML specs


def toml_text(document: dict) -> str:
    """TOML for a parsed document: `key = value` lines, tables written inline."""
    return "".join(f"{_key(k)} = {_value(v)}\n" for k, v in document.items())


def _key(key: str) -> str:
    return _value(key)


class Raw(str):
    """TOML text written as it is (huge integers: Python neither prints nor reprs them)."""


def _value(value: Any) -> str:
    if isinstance(value, Raw):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(str(value), repr(value))
    if isinstance(value, str):
        return json.dumps(value).replace("\x7f", "\\u007f")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(map(_value, value)) + "]"
    return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + "}"


SCALARS = st.one_of(
    st.text(max_size=12),
    st.integers(),
    st.sampled_from([0, 1, 7, -1, 2**64, 0.5, 1.5, Raw("0x" + "f" * 4000), Raw("9" * 5000)]),
    st.floats(),
    st.booleans(),
    st.dates(),
    st.datetimes(),
    st.times(),
)
TOML_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=5,
)


def _slots(node: Any) -> list[tuple[Any, Any]]:
    """Every (container, key or index) in a parsed document, depth first."""
    keys = range(len(node)) if isinstance(node, list) else node if isinstance(node, dict) else ()
    return [(node, k) for k in keys] + [s for k in keys for s in _slots(node[k])]


@st.composite
def mutated_toml(draw: st.DrawFn, text: str) -> str:
    """`text` parsed, then values replaced with others of any type, keys dropped or added,
    entries duplicated or swapped, and written back."""
    document = tomllib.loads(text)
    for _ in range(draw(st.integers(1, 4))):
        slots = _slots(document)
        if not slots:
            break
        node, key = draw(st.sampled_from(slots))
        match draw(st.sampled_from(["replace", "drop", "add", "duplicate", "swap"])):
            case "replace":
                node[key] = draw(TOML_VALUES)
            case "drop":
                del node[key]
            case "add" if isinstance(node[key], dict):
                node[key][draw(st.text(max_size=10))] = draw(TOML_VALUES)
            case "duplicate" if isinstance(node, list):
                node.insert(key, node[key])
            case "swap":
                other_node, other = draw(st.sampled_from(slots))
                if other_node is not node or other != key:
                    node[key], other_node[other] = other_node[other], node[key]
    try:
        return toml_text(document)
    except RecursionError:  # a swap made a cycle
        return text


def refused_in_one_line(read: Callable[[], object], path: Path) -> None:
    """`read()` succeeds, or raises `ForecastError` with one line that names `path`."""
    try:
        read()
    except ForecastError as error:
        assert len(str(error).splitlines()) == 1 and str(path) in str(error), str(error)


@pytest.fixture(scope="module")
def priors(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A writable copy of the bundled priors."""
    target = tmp_path_factory.mktemp("fuzz") / "priors"
    shutil.copytree(bundled_priors(), target, ignore=shutil.ignore_patterns("__*"))
    return target


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace whose forecast.toml has every table, [platforms] included."""
    return init_example(tmp_path_factory.mktemp("fuzz") / "ws").root


CLAIMS = "claims/allies-to-adversaries.toml"
SCENARIO = "scenarios/proxy-strikes.toml"


@fuzz(200)
@given(data=st.data(), spec=st.sampled_from([CLAIMS, SCENARIO]))
def test_mutated_priors(priors: Path, data: st.DataObject, spec: str) -> None:
    path = priors / spec
    good = (bundled_priors() / spec).read_text(encoding="utf-8")
    path.write_text(data.draw(mutated_toml(good)), encoding="utf-8")
    try:
        if spec == CLAIMS:
            refused_in_one_line(lambda: load_claims(path, None, root=priors), path)
        else:  # a cross-file problem may be reported for another scenario file
            refused_in_one_line(lambda: load_scenarios(path.parent), path.parent)
    finally:
        path.write_text(good, encoding="utf-8")


@fuzz(200)
@given(data=st.data(), spec=st.sampled_from([CLAIMS, SCENARIO]), raw=st.booleans())
def test_damaged_priors(priors: Path, data: st.DataObject, spec: str, raw: bool) -> None:
    path = priors / spec
    good = (bundled_priors() / spec).read_bytes()
    path.write_bytes(data.draw(st.binary(max_size=300) if raw else damaged(good)))
    try:
        refused_in_one_line(lambda: load_priors(priors), priors)
    finally:
        path.write_bytes(good)


@fuzz(200)
@given(data=st.data(), raw=st.booleans(), mutate=st.booleans())
def test_damaged_or_mutated_forecast_toml(workspace: Path, data: st.DataObject, raw: bool,
                                          mutate: bool) -> None:
    path = workspace / CONFIG_FILE
    good = path.read_bytes()
    if mutate:
        content = data.draw(mutated_toml(good.decode())).encode()
    else:
        content = data.draw(st.binary(max_size=300) if raw else damaged(good))
    path.write_bytes(content)
    try:
        refused_in_one_line(lambda: open_workspace(workspace), path)
    finally:
        path.write_bytes(good)


def test_the_toml_writer_round_trips(workspace: Path) -> None:
    for path in (bundled_priors() / CLAIMS, bundled_priors() / SCENARIO, workspace / CONFIG_FILE):
        document = tomllib.loads(path.read_text(encoding="utf-8"))
        assert tomllib.loads(toml_text(document)) == document
