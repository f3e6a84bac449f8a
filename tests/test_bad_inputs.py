"""The bad-input corpus (`tests/data/bad/MANIFEST.toml`) through the real command line.

Every case must exit with status 1 and print one line, `Error: <file>: ...`, naming the file and
what is wrong; print nothing on stdout and no traceback; and leave the store's events, their
sources and the import log exactly as they were.
"""

import gzip
import hashlib
import shutil
import tomllib
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from cli import main

DATA = Path(__file__).parent / "data"
BAD = DATA / "bad"
CASES = tomllib.loads((BAD / "MANIFEST.toml").read_text(encoding="utf-8"))["case"]
NATIVE_HEADER = "date,actor1,actor2,event_code,num_sources,source_url,note"
TEN_MB = 10 << 20


def _gdelt2_row_with_url(url: str) -> bytes:
    lines = (DATA / "gdelt2-20191024143000.export.tsv").read_text(encoding="utf-8").splitlines()
    fields = next(line.split("\t") for line in lines if line.split("\t")[7] == "RUS")
    return (lines[0] + "\n" + "\t".join([*fields[:60], url]) + "\n").encode()


def _native_row(note: str) -> bytes:
    return f"{NATIVE_HEADER}\n2025-05-16,RUS,AZE,163,1,https://example.org/a,{note}\n".encode()


#: Files too big to commit, written at test time.
GENERATORS: dict[str, Callable[[], bytes]] = {
    "native_row_with_a_10_mb_note": lambda: _native_row("x" * TEN_MB),
    "gdelt2_row_with_a_10_mb_url": lambda: _gdelt2_row_with_url("https://x.org/" + "a" * TEN_MB),
    "ten_mb_without_a_line_feed": lambda: b"A" * TEN_MB,
    "gzip_of_a_10_mb_line": lambda: gzip.compress(_native_row("x" * TEN_MB), mtime=0),
    "toml_nested_20000_deep": lambda: (BAD / "claims" / "claims-unknown-key.toml").read_bytes()
    + b"note = " + b"[" * 20000 + b"]" * 20000 + b"\n",
}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace holding the native sample's events, copied by each case."""
    root = tmp_path_factory.mktemp("bad") / "ws"
    runner = CliRunner()
    assert runner.invoke(main, ["--workspace", str(root), "init"]).exit_code == 0
    imported = runner.invoke(main, ["--workspace", str(root), "events", "import",
                                    str(DATA / "native-sample.csv")])
    assert imported.exit_code == 0, imported.output
    return root


def store_digest(root: Path) -> str:
    """A hash of every row of the tables an import writes."""
    digest = hashlib.sha256()
    with duckdb.connect(str(root / "store.duckdb"), read_only=True) as con:
        for table in ("events", "event_sources", "imports"):
            rows = con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()
            digest.update(f"{table}: {rows!r}".encode())
    return digest.hexdigest()


def test_the_corpus_is_listed_whole() -> None:
    files = {str(p.relative_to(BAD)) for p in BAD.rglob("*") if p.is_file()} - {"MANIFEST.toml"}
    listed = [c["file"] for c in CASES if "generate" not in c]
    assert sorted(listed) == sorted(files)
    assert {c["generate"] for c in CASES if "generate" in c} == set(GENERATORS)
    assert len(CASES) >= 50
    assert sum(p.stat().st_size for p in BAD.rglob("*")) < 300_000


@pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
def test_a_bad_input_is_one_error_line_and_changes_nothing(
    case: dict, base: Path, tmp_path: Path
) -> None:
    root = tmp_path / "ws"
    shutil.copytree(base, root)
    source = BAD / case["file"]
    if "generate" in case:
        source = tmp_path / case["file"]
        source.write_bytes(GENERATORS[case["generate"]]())
    target = source
    if "install" in case:
        target = root / case["install"]
        if case["install"].endswith("/"):
            target = target / source.name
        shutil.copyfile(source, target)
    before = store_digest(root)

    args = [arg.replace("{file}", str(target)) for arg in case["run"]]
    result = CliRunner().invoke(main, ["--workspace", str(root), *args])

    assert isinstance(result.exception, SystemExit), result.exception  # not a crash
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr.endswith("\n") and len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"Error: {target}: ")
    assert case["error"] in result.stderr
    assert store_digest(root) == before
    assert not list(root.glob("forecast-import-*"))  # no scratch copy left behind
