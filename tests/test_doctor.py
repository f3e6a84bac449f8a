"""`forecast doctor` and the store's backup: damaged files are named with the way out, and the
repair keeps all intact history (no MCMC: the run and its posterior are made up)."""

import datetime as dt
import os
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

from cli import main
from forecast import history
from forecast.doctor import doctor
from forecast.files import atomic_file
from forecast.store import open_store, transaction
from forecast.workspace import init_workspace, open_workspace
from tests.conftest import events_csv

ROOT = Path(__file__).resolve().parent.parent
NATIVE = ROOT / "tests" / "data" / "native-sample.csv"
JUDGED = "hybrid-retaliation-by-2026-12-31"
ANNULLED = "proxy-strikes-by-2026-12-31"
RUN = {"run_id": "0123456789abcdef", "inputs_hash": "i", "as_of": dt.date(2026, 5, 31),
       "seed": 7, "draws": 100, "tune": 200, "chains": 2, "data_hash": "d", "priors_hash": "p",
       "code_version": "0+test", "posterior_file": "posteriors/0123456789abcdef.nc",
       "r_hat_max": 1.2, "ess_bulk_min": 50.0, "divergences": 0, "worst": "beta[0]",
       "converged": False, "allow_unconverged": True, "simulated": False}
FORECASTS = [{"question": JUDGED, "scenario": "hybrid-retaliation",
              "deadline": dt.date(2026, 12, 31), "probability": 0.4, "interval": [0.2, 0.6],
              "status": "open"}]
GONE = 4_194_305  # a process id above the highest Linux allows: no process has it
REFIT = ("`forecast update --as-of 2026-05-31 --seed 7 --draws 100 --tune 200 --chains 2 "
         "--allow-unconverged`")


def invoke(runner, root: Path, *args: str, code: int = 0):
    result = runner.invoke(main, ["--workspace", str(root), *map(str, args)])
    assert result.exit_code == code, (args, result.output)
    return result


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A workspace with rows in every history table, and the run's posterior."""
    runner, tmp_path = CliRunner(), tmp_path_factory.mktemp("doctor")
    root = tmp_path / "ws"
    ws = init_workspace(root)
    invoke(runner, root, "events", "import", NATIVE)
    invoke(runner, root, "events", "import", events_csv(tmp_path / "many.csv", 20000))
    invoke(runner, root, "judge", JUDGED, "0.3", "--note", "my read")
    invoke(runner, root, "resolve", ANNULLED, "annulled", "--date", "2026-03-01")
    with ws.lock():
        con = open_store(ws.store_path)
        try:
            history.ensure_schema(con)
            with transaction(con):
                history.record_run(con, RUN, FORECASTS)
                fields = ("platform", "destination", *history.SUBMISSION_FIELDS)
                con.execute(f"INSERT INTO submissions ({', '.join(fields)}) VALUES "
                            f"({', '.join('?' * len(fields))})",
                            ["csv", "out.csv", JUDGED, 0.35, 0.4, 0.3, 1.0, 1.0, 1.0,
                             RUN["run_id"], RUN["as_of"], False])
        finally:
            con.close()
    posterior(root / RUN["posterior_file"])
    return root


@pytest.fixture(scope="module")
def small_template(tmp_path_factory) -> Path:
    """A workspace with a few events and a judgment: every table of the store, little data."""
    runner, root = CliRunner(), tmp_path_factory.mktemp("small") / "ws"
    init_workspace(root)
    invoke(runner, root, "events", "import", NATIVE)
    invoke(runner, root, "judge", JUDGED, "0.3")
    return root


@pytest.fixture
def small(small_template, tmp_path) -> Path:
    """A copy of `small_template`."""
    return Path(shutil.copytree(small_template, tmp_path / "ws"))


@pytest.fixture
def kept(template, tmp_path) -> Path:
    """A copy of `template` (times kept: its backup is as new as its store)."""
    return Path(shutil.copytree(template, tmp_path / "ws"))


def posterior(path: Path) -> None:
    rng = np.random.default_rng(0)
    tree = xr.DataTree.from_dict({
        "posterior": xr.Dataset({"beta": (("chain", "draw"), rng.normal(size=(2, 100)))}),
        "constant_data": xr.Dataset({"volume": ("week", np.ones(20))})})
    tree.attrs = {k: RUN[k] for k in ("run_id", "data_hash")}  # the run it belongs to
    atomic_file(path, lambda tmp: tree.to_netcdf(tmp, engine="h5netcdf"))


def contents(path: Path) -> dict[str, list[tuple]]:
    """Every row of every table of a store."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        names = [r[0] for r in con.execute("SHOW TABLES").fetchall()]
        return {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in names}
    finally:
        con.close()


def test_a_whole_workspace_has_nothing_to_repair(runner, kept):
    assert doctor(open_workspace(kept)) == []
    result = invoke(runner, kept, "doctor")
    assert result.stdout == f"{kept}: no problems found.\n"
    tables = contents(kept / "store.duckdb")
    assert all(tables[t] for t in ("events", "event_sources", "imports", "runs", "forecasts",
                                   "resolutions", "judgments", "submissions"))


def test_the_backup_follows_each_change_and_only_a_change(runner, kept):
    ws = open_workspace(kept)
    stamp = ws.backup_path.stat().st_mtime_ns
    assert stamp == ws.store_path.stat().st_mtime_ns
    assert contents(ws.backup_path) == contents(ws.store_path)
    with ws.lock():  # a writer that changes nothing copies nothing
        pass
    invoke(runner, kept, "show")
    assert ws.backup_path.stat().st_mtime_ns == stamp
    invoke(runner, kept, "judge", JUDGED, "0.35")
    assert len(contents(ws.backup_path)["judgments"]) == 2
    assert ws.backup_path.stat().st_mtime_ns == ws.store_path.stat().st_mtime_ns


def test_a_truncated_store_is_named_and_restored_from_its_backup(runner, kept):
    store = kept / "store.duckdb"
    before = contents(store)
    os.truncate(store, store.stat().st_size // 2)
    damaged = store.read_bytes()
    for command in (["show"], ["events", "stats"], ["history"], ["judge", JUDGED, "0.5"],
                    ["events", "import", NATIVE], ["resolve", JUDGED, "yes"]):
        result = invoke(runner, kept, *command, code=1)
        assert result.stderr.startswith(f"Error: {store}: the event store is damaged (truncated:")
        assert result.stderr.endswith("; run `forecast doctor --repair` to restore it from its "
                                      "backup (the damaged file is kept)\n")
    assert store.read_bytes() == damaged  # no writer touched it
    result = invoke(runner, kept, "doctor", code=1)
    assert result.stdout.startswith("store.duckdb: damaged: the event store is damaged (trunc")
    assert result.stderr == "Error: 1 problem(s) found: `forecast doctor --repair` repairs them\n"

    result = invoke(runner, kept, "doctor", "--repair")
    assert "restored the backup of" in result.stdout
    [moved] = (kept / "broken").glob("*/store.duckdb")
    assert moved.read_bytes() == damaged
    assert contents(store) == before
    invoke(runner, kept, "show")
    assert doctor(open_workspace(kept)) == []


def damage_events(store: Path) -> None:
    """Overwrite part of a block that holds only events: the store opens, the events do not
    read."""
    con = duckdb.connect(str(store), read_only=True)
    block_size = con.execute("SELECT block_size FROM pragma_database_size()").fetchone()[0]
    blocks = {t: {b for (b,) in con.execute(
        f"SELECT DISTINCT block_id FROM pragma_storage_info('{t}') WHERE block_id >= 0")
        .fetchall()} for (t,) in con.execute("SHOW TABLES").fetchall()}
    con.close()
    shared = set().union(*(b for t, b in blocks.items() if t != "events"))
    block = min(blocks["events"] - shared)
    with open(store, "r+b") as f:
        f.seek(3 * 4096 + block * block_size + 1000)  # past the file's three header pages
        f.write(b"\xff" * 1000)


def test_a_damaged_store_never_replaces_its_backup(runner, kept):
    store, backup = kept / "store.duckdb", kept / "store.backup.duckdb"
    saved = backup.read_bytes()
    damage_events(store)
    result = invoke(runner, kept, "judge", JUDGED, "0.5", code=1)  # it does not read events
    assert result.stderr.startswith(f"Error: {store}: the event store is damaged (table events: "
                                    "Corrupt database file: computed checksum")
    assert backup.read_bytes() == saved
    assert not list(kept.glob(".*.tmp"))


@pytest.mark.parametrize(("change", "named"), [
    ("ALTER TABLE events DROP COLUMN goldstein", "column events.goldstein is missing"),
    ("ALTER TABLE runs DROP COLUMN seed", "column runs.seed is missing"),
    ("ALTER TABLE judgments ALTER probability TYPE VARCHAR",
     "column judgments.probability is VARCHAR, not DOUBLE"),
    ("DROP TABLE event_sources", "table event_sources is missing"),
])
def test_a_store_changed_by_another_program_is_one_line_and_keeps_its_backup(
        runner, small, change, named):
    """Another DuckDB client changed the tables: every command says so in one line, the backup
    is never replaced by the changed store, and the repair restores it."""
    kept = small
    store, backup = kept / "store.duckdb", kept / "store.backup.duckdb"
    saved, rows = backup.read_bytes(), contents(store)
    con = duckdb.connect(str(store))
    con.execute(change)
    con.close()
    line = (f"Error: {store}: the event store's {named} (changed by another program?); run "
            "`forecast doctor --repair` to restore it from its backup (the damaged file is "
            "kept)\n")
    for args in (["show"], ["judge", JUDGED, "0.5"]):  # a reader, a writer
        assert invoke(runner, kept, *args, code=1).stderr == line
    assert backup.read_bytes() == saved
    assert f"the event store's {named}" in invoke(runner, kept, "doctor", code=1).stdout
    invoke(runner, kept, "doctor", "--repair")
    assert contents(store) == rows and backup.read_bytes() == saved


def test_without_a_backup_every_table_that_still_reads_is_saved(runner, kept):
    store = kept / "store.duckdb"
    before = contents(store)
    (kept / "store.backup.duckdb").unlink()
    damage_events(store)

    result = invoke(runner, kept, "events", "list", code=1)
    assert result.stderr.startswith(f"Error: {store}: the event store is damaged (Corrupt "
                                    "database file: computed checksum")
    invoke(runner, kept, "show")  # what does not read the damaged block still works

    result = invoke(runner, kept, "doctor", "--repair")
    assert "copied the tables that still read into a new store; lost: events (" in result.stdout
    after = contents(store)
    assert after["events"] == []
    assert {t: rows for t, rows in after.items() if t != "events"} == {
        t: rows for t, rows in before.items() if t != "events"}
    assert (kept / "store.backup.duckdb").is_file()
    assert len(list((kept / "broken").glob("*/store.duckdb"))) == 1


def test_a_gone_store_is_not_started_again_while_its_backup_is_there(runner, kept):
    store = kept / "store.duckdb"
    before = contents(store)
    store.unlink()
    result = invoke(runner, kept, "judge", JUDGED, "0.5", code=1)
    assert result.stderr == (f"Error: {store}: the event store is gone, but its backup "
                             "store.backup.duckdb is there; run `forecast doctor --repair` to "
                             "restore it\n")
    assert not store.exists()
    invoke(runner, kept, "doctor", "--repair")
    assert contents(store) == before


def test_a_store_with_fewer_rows_than_its_backup_does_not_replace_it(runner, kept, tmp_path):
    store, backup = kept / "store.duckdb", kept / "store.backup.duckdb"
    shutil.copy(store, tmp_path / "old.duckdb")
    invoke(runner, kept, "events", "import", events_csv(tmp_path / "more.csv", 50))
    newer = contents(backup)
    shutil.copy(tmp_path / "old.duckdb", store)  # e.g. an old copy put back by hand
    result = invoke(runner, kept, "judge", JUDGED, "0.5", code=1)
    assert result.stderr.startswith(f"Error: {store}: the event store has fewer rows than its "
                                    "backup store.backup.duckdb in imports (")
    assert contents(backup) == newer
    invoke(runner, kept, "doctor", "--repair")
    assert contents(store) == newer
    [moved] = (kept / "broken").glob("*/store.duckdb")
    assert len(contents(moved)["judgments"]) == 2  # the judgment made meanwhile is kept there


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_damaged_posterior_is_named_and_moved_aside(runner, kept, damage):
    path = kept / RUN["posterior_file"]
    if damage == "truncated":
        os.truncate(path, path.stat().st_size // 2)
    else:
        path.write_bytes(np.random.default_rng(1).bytes(5000))
    result = invoke(runner, kept, "report", "--out", kept / "report", code=1)
    assert result.stderr.startswith(f"Error: {path}: cannot read this posterior file (Unable to ")
    assert result.stderr.endswith(f"); run `forecast doctor --repair` to move it aside, then "
                                  f"{REFIT} fits it again\n")
    invoke(runner, kept, "show")  # the forecasts are rows of the store

    [finding] = doctor(open_workspace(kept))
    assert (finding.path, finding.state) == (RUN["posterior_file"], "damaged")
    assert finding.remedy == f"--repair moves it to broken/; then {REFIT} fits it again"
    result = invoke(runner, kept, "doctor", "--repair", "--json")
    assert '"ok": true' in result.stdout
    assert not path.exists()
    assert len(list((kept / "broken").glob("*/posteriors/*.nc"))) == 1

    result = invoke(runner, kept, "report", "--out", kept / "report", code=1)
    assert result.stderr == (f"Error: {path}: the posterior of the update as of 2026-05-31 is "
                             f"missing; {REFIT} fits it again\n")
    [finding] = doctor(open_workspace(kept))
    assert finding.state == "note" and finding.remedy == f"{REFIT} fits it again"
    invoke(runner, kept, "doctor")  # a note is not a problem: exit 0


def test_a_posterior_no_run_uses_is_a_note_and_moved_aside(runner, kept):
    """An update that failed to record its forecasts (a full disk at the commit) leaves its
    posterior behind; the fits of the claims alone are caches, not orphans."""
    orphan = kept / "posteriors" / "fedcba9876543210.nc"
    shutil.copyfile(kept / RUN["posterior_file"], orphan)
    shutil.copyfile(orphan, kept / "posteriors" / "claims-only-0-0.nc")
    [finding] = doctor(open_workspace(kept))
    assert (finding.path, finding.state) == ("posteriors/fedcba9876543210.nc", "note")
    assert finding.problem.startswith("no recorded update uses it")
    invoke(runner, kept, "doctor")  # a note: exit 0
    invoke(runner, kept, "doctor", "--repair")
    assert not orphan.exists() and (kept / "posteriors" / "claims-only-0-0.nc").exists()
    assert len(list((kept / "broken").glob("*/posteriors/fedcba9876543210.nc"))) == 1


def test_a_run_fitted_again_keeps_its_place_in_the_history(kept):
    ws = open_workspace(kept)
    (kept / RUN["posterior_file"]).unlink()  # lost; the same inputs are fitted again
    con = open_store(ws.store_path)
    try:
        before = history.query(con, "SELECT * FROM runs", [])
        with transaction(con):
            history.record_run(con, {**RUN, "inputs_hash": "j"}, FORECASTS)
        after = history.query(con, "SELECT * FROM runs", [])
        # same row and creation time; asked for again, so it is the current run
        assert after == [{**before[0], "inputs_hash": "j", "current_at": after[0]["current_at"]}]
        assert after[0]["current_at"] is not None
        assert con.execute("SELECT count(*) FROM forecasts").fetchone() == (1,)
    finally:
        con.close()


def test_a_relative_workspace_is_checked_too(runner, kept, monkeypatch):
    monkeypatch.chdir(kept.parent)
    (kept / RUN["posterior_file"]).unlink()
    result = invoke(runner, Path(kept.name), "doctor")
    assert result.stdout.startswith(f"{RUN['posterior_file']}: note: the posterior of the "
                                    "update as of 2026-05-31 is missing")


def test_files_of_killed_commands_are_removed_and_live_ones_kept(runner, kept):
    stray = [kept / f".store.backup.duckdb.{GONE}.abc_1234.tmp",
             kept / "posteriors" / f".0123456789abcdef.nc.{GONE}.x7y8z9q0.tmp",
             kept / ".report.md.k2j3h4g5.tmp",  # made before temporary names held the pid
             kept / "forecast-import-q1w2e3r4"]
    live = kept / "posteriors" / f".claims-only-x.nc.{os.getpid()}.a1b2c3d4.tmp"
    for path in [*stray[:3], live]:
        path.write_bytes(b"part")
    stray[3].mkdir()
    (stray[3] / "staged.csv").write_text("part")

    findings = doctor(open_workspace(kept))
    assert sorted(f.path for f in findings) == sorted(
        p.relative_to(kept).as_posix() for p in stray)
    assert {(f.state, f.remedy) for f in findings} == {("damaged", "--repair deletes it")}
    invoke(runner, kept, "doctor", code=1)
    invoke(runner, kept, "doctor", "--repair")
    assert not any(p.exists() for p in stray)
    assert live.exists()


def test_the_next_writer_removes_the_files_of_killed_commands(runner, kept):
    stray = kept / f".store.backup.duckdb.{GONE}.abc_1234.tmp"
    stray.write_bytes(b"part")
    invoke(runner, kept, "show")  # readers leave them
    assert stray.exists()
    invoke(runner, kept, "judge", JUDGED, "0.5")
    assert not stray.exists()
