"""`forecast doctor`: check a workspace, and repair what can be repaired without losing history.

What is checked
---------------
- The event store (``store.duckdb``) reads whole: every table and every block (DuckDB checks
  each block's checksum), and it holds no fewer rows than its backup (rows are only ever added).
- Its backup (``store.backup.duckdb``) reads whole and is as new as the store.
- Every recorded run's posterior file is there, and every NetCDF file in ``posteriors/`` reads
  whole (run posteriors, the claims-only fits cached by `forecast priors check`, and posteriors
  of fits killed before they were recorded).
- No temporary files or import scratch folders of killed commands are left behind.

What ``--repair`` does
----------------------
Nothing the user may need is deleted: a damaged file is moved to ``broken/<time>/`` under its
path in the workspace.

- A damaged store, or one with fewer rows than its backup, is moved aside and the backup copied
  in its place. Without a usable backup, every table that still reads whole is copied from the
  damaged file into a new store, and the others are reported lost.
- A damaged posterior is moved aside. Its run stays in the history (its forecasts are rows of
  the store, so `show` and `history` are unaffected); the finding gives the command that fits it
  again, which `report`, `submit` and `explain` need for that run.
- Temporary files of killed commands are deleted: each is a partial copy of a file that is whole
  elsewhere, or of nothing.
- A missing, stale or damaged backup is made anew.

The backup, and its trade-off
-----------------------------
Whenever a writing command releases the workspace lock and the store has changed, the store is
copied, the copy read whole, and it replaces the backup atomically, but never with fewer rows in
a table (`forecast.workspace.backup_store`). It costs one copy and one read of the store per
writing command that changed it (about 0.1 s for the example's 5 MB store; linear in its
size), twice the store's disk space, and nothing for commands that change nothing: the
no-new-data `update` compares two ``stat`` results. What can be lost: the changes of a command
that was killed after committing them but before its backup, if the store then breaks before
the next writing command (whose backup would hold them); the damaged file is kept either way.
A journal of history rows appended after each transaction would cost less for a large store,
but an import merges events in place (duplicates are counted on the stored event), so replaying
it means replaying the importer; a copy of the file restores exactly what was there.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import duckdb

from forecast import history
from forecast.errors import PosteriorError, StoreDamagedError, WorkspaceError, first_line
from forecast.files import atomic_file, remove
from forecast.posterior import posterior_path, read_posterior, refit_command
from forecast.store import journal, open_store, row_counts, tables, transaction, verify
from forecast.workspace import Workspace, backup_store, stray_temp_files

#: damaged: `--repair` fixes it; repaired: fixed by this run; note: nothing for `--repair` to do
State = Literal["damaged", "repaired", "note"]


@dataclass(frozen=True)
class Finding:
    path: str  # relative to the workspace
    state: State
    problem: str
    remedy: str  # what `--repair` does or did, or what the user can do


def doctor(ws: Workspace, *, repair: bool = False) -> list[Finding]:
    """Check the workspace (holding its lock, unless it is on a read-only file system, where
    nobody writes) and, with `repair`, repair it; see the module's documentation. Returns what
    was found, damaged files first."""
    with ws.lock(housekeeping=False, unless_read_only=not repair):
        aside = _Aside(ws)
        findings = _temp_files(ws, repair) + _store(ws, aside, repair)
        if not any(f.state == "damaged" for f in findings):
            findings += _backup(ws, aside, repair)
        findings += _posteriors(ws, aside, repair)
    return sorted(findings, key=lambda f: f.state == "note")


class _Aside:
    """Moves damaged files to ``broken/<time>/`` under their path in the workspace."""

    def __init__(self, ws: Workspace):
        self.ws = ws
        self.folder: Path | None = None

    def move(self, path: Path) -> str:
        if self.folder is None:
            stamp = dt.datetime.now().strftime("%Y-%m-%dT%H-%M-%S")
            self.folder = self.ws.root / "broken" / stamp
            n = 1
            while self.folder.exists():
                n += 1
                self.folder = self.ws.root / "broken" / f"{stamp}-{n}"
        target = self.folder / path.relative_to(self.ws.root)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
        return _rel(self.ws, target)


def _rel(ws: Workspace, path: Path) -> str:
    return path.relative_to(ws.root).as_posix()


def _temp_files(ws: Workspace, repair: bool) -> list[Finding]:
    findings = []
    for path in stray_temp_files(ws):
        if repair:
            remove(path)
        findings.append(Finding(_rel(ws, path), "repaired" if repair else "damaged",
                                "left behind by a killed command (an incomplete copy)",
                                "deleted" if repair else "--repair deletes it"))
    return findings


def _store(ws: Workspace, aside: _Aside, repair: bool) -> list[Finding]:
    store, backup = ws.store_path, ws.backup_path
    problem: str | None
    if store.is_file():
        try:
            rows = verify(store)
        except StoreDamagedError as exc:
            problem = _problem(exc, store)
        else:
            problem = _fewer_rows(rows, backup)
    else:
        problem = "missing, and its backup is there" if backup.is_file() else None
    if problem is None:
        return []
    usable = _usable(backup)
    plan = (f"moves it to broken/ and restores the backup of {_when(backup)}" if usable else
            "moves it to broken/ and copies the tables that still read into a new store")
    if not repair:
        return [Finding(_rel(ws, store), "damaged", problem, f"--repair {plan}")]
    moved = [aside.move(p) for p in (store, journal(store)) if p.exists()]
    where = f"moved to {moved[0]}; " if moved else ""
    if usable:
        atomic_file(store, lambda tmp: shutil.copy2(backup, tmp))
        remedy = f"{where}restored the backup of {_when(backup)}"
    else:
        lost = _salvage(ws.root / moved[0], store) if moved else ["every table"]
        remedy = where + (f"copied the tables that still read into a new store; lost: "
                          f"{', '.join(lost)}" if lost else "copied every table into a new store")
    return [Finding(_rel(ws, store), "repaired", problem, remedy)]


def _fewer_rows(rows: dict[str, int], backup: Path) -> str | None:
    try:
        before = row_counts(backup) if backup.is_file() else {}
    except WorkspaceError:
        return None  # a damaged backup: see `_backup`
    fewer = [f"{t} ({rows.get(t, 0)} < {n})" for t, n in sorted(before.items())
             if rows.get(t, 0) < n]
    return f"fewer rows than its backup in {', '.join(fewer)}" if fewer else None


def _usable(backup: Path) -> bool:
    try:
        verify(backup)
    except WorkspaceError:
        return False
    return True


def _when(path: Path) -> str:
    return dt.datetime.fromtimestamp(path.stat().st_mtime).isoformat(sep=" ", timespec="seconds")


def _salvage(damaged: Path, target: Path) -> list[str]:
    """Copy every table of the `damaged` store that reads whole into a new store at `target`;
    returns the tables that could not be read, each with the reason."""
    lost: list[str] = []

    def build(tmp: str) -> None:
        os.unlink(tmp)  # DuckDB makes the file
        con = open_store(Path(tmp))
        try:
            history.ensure_schema(con)
            mine = set(tables(con))
            try:
                con.execute(f"ATTACH '{_sql_text(damaged)}' AS damaged (READ_ONLY)")
                theirs = [r[0] for r in con.execute(
                    "SELECT table_name FROM duckdb_tables() WHERE database_name = 'damaged' "
                    "ORDER BY table_name").fetchall()]
            except duckdb.Error as exc:
                lost.append(f"every table (the file does not open: {first_line(exc)})")
                return
            for table in theirs:
                try:
                    with transaction(con):
                        if table in mine:  # the new store's only rows: its schema version
                            con.execute(f'DELETE FROM main."{table}"')
                            con.execute(f'INSERT INTO main."{table}" BY NAME '
                                        f'SELECT * FROM damaged."{table}"')
                        else:
                            con.execute(f'CREATE TABLE main."{table}" AS '
                                        f'SELECT * FROM damaged."{table}"')
                except duckdb.Error as exc:
                    lost.append(f"{table} ({first_line(exc)})")
        finally:
            con.close()

    atomic_file(target, build)
    return lost


def _sql_text(path: Path) -> str:
    return str(path).replace("'", "''")


def _backup(ws: Workspace, aside: _Aside, repair: bool) -> list[Finding]:
    store, backup = ws.store_path, ws.backup_path
    if not store.is_file():
        return []
    if not backup.is_file():
        state, problem = "note", "no backup of the store yet"
    elif not _usable(backup):
        state, problem = "damaged", "the backup of the store cannot be read whole"
    elif backup.stat().st_mtime_ns != store.stat().st_mtime_ns:
        state, problem = "note", "the backup is older than the store (a command was killed)"
    else:
        return []
    name = _rel(ws, backup)
    if not repair:
        return [Finding(name, state, problem,  # type: ignore[arg-type]
                        "--repair (or the next writing command) makes it anew")]
    moved = f"moved the old one to {aside.move(backup)}; " if state == "damaged" else ""
    if journal(store).exists():
        open_store(store).close()  # replays a killed writer's journal into the store
    backup_store(ws)
    return [Finding(name, "repaired", problem, f"{moved}made it anew")]


#: Posterior files no run owns: the fits of the claims alone and of the broad priors
#: (`forecast.prior_check`).
_CACHES = ("claims-only-", "no-claims-")


def _posteriors(ws: Workspace, aside: _Aside, repair: bool) -> list[Finding]:
    runs: dict[Path, dict[str, Any]] = {}
    findings = []
    recorded = _runs(ws)
    for run in recorded or []:
        try:
            path = posterior_path(ws, run["posterior_file"])
        except WorkspaceError as exc:
            findings.append(Finding(run["posterior_file"], "note",
                                    _problem(exc, ws.store_path), "none"))
            continue
        runs[path] = run
        if not path.is_file():
            findings.append(Finding(
                run["posterior_file"], "note", f"the posterior of the update as of "
                f"{run['as_of']} is missing (`show` and `history` do not need it; `report`, "
                "`submit` and `explain` of this update do)",
                f"{refit_command(run)} fits it again"))
    for path in sorted(ws.posteriors_dir.glob("*.nc")):
        owner, cache = runs.get(path.resolve()), path.name.startswith(_CACHES)
        state: State
        try:
            read_posterior(path, "", owner)
            if owner is not None or cache or recorded is None:
                continue
            problem, after, state = ("no recorded update uses it (left by an update that failed "
                                     "to record its forecasts, or copied here)", "", "note")
        except PosteriorError as exc:
            problem, state = _problem(exc, path), "damaged"
            after = ("; " + (f"then {refit_command(owner)} fits it again" if owner else
                             "it is sampled again when needed" if cache else
                             "no recorded update uses it"))
        done = f"moved to {aside.move(path)}" if repair else "--repair moves it to broken/"
        findings.append(Finding(_rel(ws, path), "repaired" if repair else state, problem,
                                done + after))
    return findings


def _runs(ws: Workspace) -> list[dict[str, Any]] | None:
    """The recorded runs; None if the store is missing or damaged (reported by `_store`)."""
    if not ws.store_path.is_file():
        return None
    try:
        con = open_store(ws.store_path, read_only=True)
    except StoreDamagedError:
        return None
    try:
        return history.runs(con)
    except duckdb.Error:
        return None
    finally:
        con.close()


def _problem(exc: Exception, path: Path) -> str:
    """The error's message less the file it starts with and the recovery it points to: a
    finding says both."""
    return str(exc).removeprefix(f"{path}: ").split("; run `forecast doctor", 1)[0]
