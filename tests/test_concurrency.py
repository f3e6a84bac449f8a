"""Commands on one workspace at once, as real processes: readers proceed while a command writes;
a second writer waits up to `lock_timeout`, then is refused with one line; writers that wait
long enough all get their records in. DuckDB lets one process write to the store file, or any
number read it: a command that meets the other kind waits briefly for it."""

import contextlib
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main
from forecast.store import open_store
from forecast.workspace import init_workspace

pytestmark = pytest.mark.slow

FORECAST = Path(sys.executable).with_name("forecast")
DATA = Path(__file__).resolve().parent / "data"
JUDGED = "hybrid-retaliation-by-2026-12-31"
# resolved by hand while others judge: another question, since a resolved one refuses judgments
RESOLVED = "proxy-strikes-by-2026-12-31"
ENV = {k: v for k, v in os.environ.items() if k != "FORECAST_WORKSPACE"}


@pytest.fixture
def root(tmp_path) -> Path:
    """A workspace with events and a judgment, its writers waiting `lock_timeout` = 0.5 s."""
    ws = init_workspace(tmp_path / "ws")
    runner = CliRunner()
    for args in (["events", "import", DATA / "native-sample.csv"], ["judge", JUDGED, "0.2"]):
        result = runner.invoke(main, ["--workspace", str(ws.root), *map(str, args)])
        assert result.exit_code == 0, result.output
    config = ws.root / "forecast.toml"
    config.write_text(config.read_text().replace("lock_timeout = 30", "lock_timeout = 0.5"))
    return ws.root


def start(root: Path, *args: object) -> subprocess.Popen:
    return subprocess.Popen([str(FORECAST), "--workspace", str(root), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)


def finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


@contextlib.contextmanager
def holding(root: Path, what: str, seconds: float) -> Iterator[subprocess.Popen]:
    """A process that holds the workspace lock (`what` = "lock"), or the store file open for
    writing ("write") or reading ("read"), for `seconds` or until the block ends."""
    take = {"lock": "ws.lock()",
            "write": "contextlib.closing(open_store(ws.store_path))",
            "read": "contextlib.closing(open_store(ws.store_path, read_only=True))"}[what]
    code = textwrap.dedent(f"""
        import contextlib, time
        from pathlib import Path
        from forecast.store import open_store
        from forecast.workspace import open_workspace
        ws = open_workspace(Path({str(root)!r}))
        with {take}:
            print("holding", flush=True)
            time.sleep({seconds})
        """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "holding"
        yield proc
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def judgments(root: Path) -> int:
    con = open_store(root / "store.duckdb", read_only=True)
    try:
        return con.execute("SELECT count(*) FROM judgments").fetchone()[0]
    finally:
        con.close()


def test_readers_proceed_and_a_second_writer_is_refused_while_one_writes(root):
    with holding(root, "lock", 60) as holder:
        t0 = time.monotonic()
        readers = [start(root, *args) for args in (["show", "--json"], ["history", "--json"],
                                                   ["events", "list"], ["events", "stats"])]
        writers = [start(root, *args) for args in (
            ["events", "import", DATA / "gdelt1-sample.tsv"],
            ["resolve", RESOLVED, "annulled", "--date", "2026-03-01"],
            ["judge", JUDGED, "0.4"],
            ["update", "--as-of", "2026-11-15", "--draws", "100", "--tune", "200"])]
        for proc in readers:
            code, _, err = finish(proc)
            assert code == 0, err
        busy = (f"Error: workspace {root} is busy: another forecast command is writing to it "
                "(waited 0.5 s); try again when it has finished\n")
        for proc in writers:
            assert finish(proc) == (1, "", busy)
        assert time.monotonic() - t0 < 30  # bounded: not the holder's 60 s
        assert holder.poll() is None
    assert judgments(root) == 1
    code, _, err = finish(start(root, "judge", JUDGED, "0.4"))  # free again
    assert code == 0 and judgments(root) == 2, err


def test_writers_that_wait_long_enough_all_get_their_records_in(root):
    config = root / "forecast.toml"
    config.write_text(config.read_text().replace("lock_timeout = 0.5", "lock_timeout = 60"))
    writers = [start(root, "judge", JUDGED, f"0.{i}") for i in range(1, 5)]
    writers += [start(root, "resolve", RESOLVED, "annulled", "--date", "2026-03-01"),
                start(root, "events", "import", DATA / "gdelt1-sample.tsv")]
    readers = [start(root, *args) for args in (["show", "--json"], ["history", "--json"],
                                               ["events", "stats", "--json"])]
    for proc in writers + readers:
        code, _, err = finish(proc)
        assert code == 0, err
    con = open_store(root / "store.duckdb", read_only=True)
    try:
        judged = con.execute("SELECT probability FROM judgments ORDER BY 1").fetchall()
        assert [p for (p,) in judged] == [0.1, 0.2, 0.2, 0.3, 0.4]
        assert con.execute("SELECT count(*) FROM resolutions WHERE method = 'manual'"
                           ).fetchone() == (1,)
        assert con.execute("SELECT count(*) FROM imports").fetchone() == (2,)
    finally:
        con.close()
    backup = open_store(root / "store.backup.duckdb", read_only=True)  # the last write's copy
    try:
        assert backup.execute("SELECT count(*) FROM judgments").fetchone() == (5,)
    finally:
        backup.close()


@pytest.mark.parametrize("holder, command", [
    ("write", ["show", "--json"]),  # a reader meets a writer's open store
    ("write", ["events", "list"]),
    ("read", ["judge", JUDGED, "0.6"]),  # a writer meets a reader's (not the workspace lock)
])
def test_a_command_waits_briefly_for_the_store_file(root, holder, command):
    with holding(root, holder, 2.0):
        t0 = time.monotonic()
        code, _, err = finish(start(root, *command))
    assert code == 0, err
    assert time.monotonic() - t0 >= 1.9  # it waited for the holder
