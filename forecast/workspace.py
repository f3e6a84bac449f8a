"""The workspace: one folder holding a forecaster's priors, event store, posteriors and history.

Layout::

    forecast.toml        configuration (written last by `init`: its presence marks a workspace)
    priors/              the claims and scenarios in use (a copy of the bundled ones, to edit)
    store.duckdb         events and forecast history
    store.backup.duckdb  a copy of the store, made when a writer releases the lock
    posteriors/          fitted posteriors (ArviZ DataTree, NetCDF)
    .lock                the write lock
    broken/              files `forecast doctor --repair` moved aside

Every file is written atomically (temporary file in the same folder, then rename). Commands that
write hold the workspace lock; a second writer waits `lock_timeout` seconds, then is refused.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import importlib.resources
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import filelock

from forecast.config import (
    CONFIG_FILE,
    DEFAULT_LOCK_TIMEOUT,
    DEFAULT_MAX_AGE_DAYS,
    DEFAULT_REGION,
    EXAMPLE_MAX_AGE_DAYS,
    Config,
    read_config,
)
from forecast.errors import (
    OutputError,
    StoreDamagedError,
    WorkspaceBusyError,
    WorkspaceError,
    os_error_line,
)
from forecast.files import atomic_file, atomic_write, is_stray_temp, remove
from forecast.schema import inside

if TYPE_CHECKING:
    import duckdb


@dataclass(frozen=True)
class Workspace:
    root: Path
    config: Config

    @property
    def priors_dir(self) -> Path:
        return self.root / self.config.priors

    @property
    def store_path(self) -> Path:
        return self.root / "store.duckdb"

    @property
    def posteriors_dir(self) -> Path:
        return self.root / "posteriors"

    @property
    def backup_path(self) -> Path:
        return self.root / "store.backup.duckdb"

    def own_files(self) -> list[Path]:
        """The workspace's own files and folders (everything in its layout but nothing else)."""
        files = [self.root / CONFIG_FILE, self.store_path, self.backup_path, self.root / ".lock"]
        return files + [f.with_name(f.name + ".wal") for f in files[1:3]] + [
            self.priors_dir, self.posteriors_dir, self.root / "broken"]

    def check_output(self, path: Path) -> Path:
        """`path` if a command may write its output there (`forecast.files.write_output`):
        ``-``, or a file outside the workspace's own files whose folder exists; else raise
        `OutputError` saying why. Checked before the command's work, not after it."""
        if str(path) == "-":
            return path
        real = self.refuse_own(path)
        if real.is_dir():
            raise OutputError(f"{path} is a folder; name a file")
        if not real.parent.is_dir():
            raise OutputError(f"{path}: the folder {real.parent} does not exist; create it "
                              "first or name another")
        return path

    def refuse_own(self, path: Path) -> Path:
        """Where `path` leads, unless that is one of the workspace's own files or inside one of
        its own folders (`own_files`): then raise `OutputError`."""
        for own in self.own_files():
            if inside(own, path) is not None:
                raise OutputError(f"{path}: that is the workspace's own {own.name}; "
                                  "write the output elsewhere")
        return Path(os.path.realpath(path))

    @contextlib.contextmanager
    def store(self, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """The workspace's store with the history tables, open only for the block."""
        from forecast import history
        from forecast.store import open_store

        con = open_store(self.store_path, read_only=read_only)
        try:
            if not read_only:
                history.ensure_schema(con)
            yield con
        finally:
            con.close()

    @contextlib.contextmanager
    def writing(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Hold the write lock, open the store (with the history tables) and a transaction for
        the block: what the block writes is committed together, or not at all."""
        from forecast.store import transaction

        with self.lock(), self.store() as con, transaction(con):
            yield con

    @contextlib.contextmanager
    def lock(self, *, housekeeping: bool = True,
             unless_read_only: bool = False) -> Iterator[None]:
        """Hold the workspace's write lock, waiting at most `lock_timeout` seconds for it.

        With `housekeeping`, the temporary files and folders of killed commands are removed on
        taking it, and the store is copied to its backup on releasing it if it changed
        (`backup_store`), also when the block failed (a damaged store keeps the old backup).
        A store that is gone while its backup is there is not made anew: that would start the
        history again. With `unless_read_only`, a workspace on a read-only file system (no lock
        file can be made there, and nobody can write) runs the block without the lock.

        Raises
        ------
        WorkspaceBusyError
            Another command held the lock for `lock_timeout` seconds.
        StoreDamagedError
            The store is gone but its backup is there, or the store is damaged on release.
        """
        lock = filelock.FileLock(self.root / ".lock", timeout=self.config.lock_timeout)
        held = True
        try:
            lock.acquire()
        except filelock.Timeout:
            raise WorkspaceBusyError(
                f"workspace {self.root} is busy: another forecast command is writing to it "
                f"(waited {self.config.lock_timeout:g} s); try again when it has finished"
            ) from None
        except OSError as exc:
            if not (unless_read_only and exc.errno == errno.EROFS):
                raise
            held = False
        if not held:  # a read-only file system: nobody writes
            yield
            return
        try:
            if housekeeping:
                _check_not_gone(self)
                for path in stray_temp_files(self):
                    remove(path)
            try:
                yield
            except BaseException:
                if housekeeping:
                    with contextlib.suppress(Exception):
                        backup_store(self)
                raise
            if housekeeping:
                try:
                    backup_store(self)
                except OSError as exc:  # a full disk: the block's work is in the store
                    raise WorkspaceError(
                        f"the command's changes are stored, but the store's backup could not be "
                        f"made ({os_error_line(exc)}); the next writing command or `forecast "
                        "doctor --repair` makes it") from None
        finally:
            lock.release()


def open_workspace(root: Path) -> Workspace:
    """Open an existing workspace; raises `WorkspaceError` saying how to create a missing one."""
    config_path = root / CONFIG_FILE
    if not config_path.is_file():
        raise WorkspaceError(
            f"no workspace at {root}: create one with `forecast init {root}` "
            "(or choose another with --workspace DIR / FORECAST_WORKSPACE)"
        )
    ws = Workspace(root, read_config(config_path, root))
    if ws.posteriors_dir.exists() and inside(root, ws.posteriors_dir) is None:
        raise WorkspaceError(f"{ws.posteriors_dir} leads outside the workspace (to "
                             f"{ws.posteriors_dir.resolve()}); fits are read and written only "
                             "inside it: make it a folder of the workspace")
    return ws


def bundled_priors() -> Path:
    """The claims and scenarios shipped with the toolkit (the `priors` package's folder)."""
    return Path(str(importlib.resources.files("priors")))


#: forecast.toml's `[platforms]` section in a new workspace: a commented template.
PLATFORMS_TEMPLATE = (
    "# Tournament platforms for `forecast submit`: map your question ids to theirs.\n"
    "# [platforms.metaculus.questions]\n"
    '# "hybrid-retaliation-by-2026-12-31" = 12345  # a question id\n'
    '# "proxy-strikes-by-2026-12-31" = { post = 41234 }  # or the post id in its address\n'
    "# [platforms.forecastbench]  # organization, model, model_organization,\n"
    '#                            # question_set ("<due date>-llm.json"), forecast_due_date,\n'
    "#                            # [..questions]\n")


def init_workspace(root: Path, *, example: bool = False,
                   region: tuple[str, ...] = DEFAULT_REGION,
                   platforms: str = PLATFORMS_TEMPLATE) -> Workspace:
    """Create a workspace at `root` with a copy of the bundled priors; `platforms` is the
    `[platforms]` section of its forecast.toml (`forecast.example.init_example` maps the
    example's questions to fake ids).

    Raises `WorkspaceError` if `root` already is a workspace, or holds priors files that differ
    from the bundled ones (edited claims: never overwritten). forecast.toml is written last, so
    an interrupted init leaves no workspace and can simply be run again.
    """
    if (root / CONFIG_FILE).exists():
        raise WorkspaceError(f"{root} is already a workspace ({CONFIG_FILE} exists)")
    if root.exists() and not root.is_dir():
        raise WorkspaceError(f"cannot create a workspace at {root}: it is a file")
    bundled, priors = bundled_priors(), root / "priors"
    ignore = shutil.ignore_patterns("__pycache__", "__init__.py")
    edited = sorted(str(target) for source in bundled.rglob("*")
                    if source.is_file() and not ignore(str(source.parent), [source.name])
                    and (target := priors / source.relative_to(bundled)).exists()
                    and target.read_bytes() != source.read_bytes())
    if edited:  # an earlier init interrupted leaves copies equal to the bundled ones: fine
        raise WorkspaceError(f"{root} holds priors files init would overwrite ({', '.join(edited)}"
                             "): init never overwrites a file; move them away, or init elsewhere")
    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(bundled, priors, dirs_exist_ok=True, ignore=ignore)
    (root / "posteriors").mkdir(exist_ok=True)
    config = Config(dt.date.today(), example, "priors", region, DEFAULT_LOCK_TIMEOUT,
                    max_age_days=EXAMPLE_MAX_AGE_DAYS if example else DEFAULT_MAX_AGE_DAYS)
    atomic_write(root / CONFIG_FILE, config.to_toml() + "\n" + platforms)
    return open_workspace(root)


#: The scratch folders of `forecast.events.import_events` (made beside the store).
_IMPORT_SCRATCH = "forecast-import-*"


def stray_temp_files(ws: Workspace) -> list[Path]:
    """What killed commands left behind: temporary files of `atomic_file` in the workspace and
    its posteriors folder whose process is gone, and import scratch folders. Only meaningful
    while holding the workspace lock (imports hold it)."""
    found = []
    for folder in (ws.root, ws.posteriors_dir):
        if not folder.is_dir():
            continue
        found += [path for path in folder.iterdir() if is_stray_temp(path)]
    return sorted(found) + sorted(p for p in ws.root.glob(_IMPORT_SCRATCH) if p.is_dir())


def backup_store(ws: Workspace) -> bool:
    """Copy the store to `ws.backup_path` if it changed since the last copy; returns whether it
    copied. Call holding the workspace lock.

    The copy is read whole before it replaces the old backup (`forecast.store.verify`), and it
    must hold at least as many rows in every table as the old one (rows are only ever added), so
    a damaged store, or a new one made where the store had gone, never replaces a good backup.
    The copy keeps the store's modification time, which is how "changed" is told: the
    no-new-data `update` costs two `stat` calls. Skipped while the journal of a killed writer
    waits to be replayed (the next writer replays it).

    Raises
    ------
    StoreDamagedError
        The store cannot be read whole, or has fewer rows than its backup.
    """
    from forecast.store import RECOVERY, journal, row_counts, verify

    store, backup = ws.store_path, ws.backup_path
    if not store.is_file() or journal(store).exists():
        return False
    if backup.is_file() and _stamp(backup) == _stamp(store):
        return False
    try:
        before = row_counts(backup) if backup.is_file() else {}
    except WorkspaceError:  # a damaged backup: replaced
        before = {}

    def copy(tmp: str) -> None:
        shutil.copy2(store, tmp)
        try:
            after = verify(Path(tmp))
        except StoreDamagedError as exc:  # the copy holds the store's bytes: name the store
            raise StoreDamagedError(str(exc).replace(tmp, str(store))) from None
        lost = [f"{t} ({n} < {before[t]})" for t, n in after.items() if n < before.get(t, 0)]
        lost += [f"{t} (missing)" for t in before.keys() - after.keys()]
        if lost:
            raise StoreDamagedError(f"{store}: the event store has fewer rows than its backup "
                                    f"{backup.name} in {', '.join(sorted(lost))}; {RECOVERY}")

    atomic_file(backup, copy)
    return True


def _check_not_gone(ws: Workspace) -> None:
    if ws.backup_path.is_file() and not ws.store_path.exists():
        raise StoreDamagedError(f"{ws.store_path}: the event store is gone, but its backup "
                                f"{ws.backup_path.name} is there; run `forecast doctor "
                                "--repair` to restore it")


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size
