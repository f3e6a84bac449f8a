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
import dataclasses
import datetime as dt
import importlib.resources
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import filelock

from forecast.errors import (
    ConfigError,
    PosteriorError,
    StoreDamagedError,
    WorkspaceBusyError,
    WorkspaceError,
    first_line,
)
from forecast.events import DEFAULT_REGION
from forecast.judgment import Aggregation
from forecast.platforms import Platforms, example_platforms_toml, parse_platforms
from forecast.schema import COUNTRY_CODE, Table, inside, read_toml, show_value

if TYPE_CHECKING:
    import xarray as xr

CONFIG_FILE = "forecast.toml"
DEFAULT_LOCK_TIMEOUT = 30.0
DEFAULT_HISTORY_WEEKS = 156
DEFAULT_MAX_AGE_DAYS = 7
EXAMPLE_MAX_AGE_DAYS = 36500  # the example's simulated data are frozen in 2026
_MAX_WEEKS = 5200  # 100 years: more is a typo, and would overflow date arithmetic
_CONFIG_KEYS = ("version", "created", "example", "priors", "region", "lock_timeout",
                "history_weeks")


@dataclass(frozen=True)
class Config:
    """The `[workspace]` table of forecast.toml."""

    created: dt.date
    example: bool
    priors: str
    region: tuple[str, ...]
    lock_timeout: float
    history_weeks: int = DEFAULT_HISTORY_WEEKS
    max_age_days: int = DEFAULT_MAX_AGE_DAYS  # [submit]
    aggregation: Aggregation = Aggregation()
    platforms: Platforms = Platforms()

    def to_toml(self) -> str:
        region = ", ".join(f'"{r}"' for r in self.region)
        return (
            "# A forecast workspace (see the README). Edit the priors in the folder named below,\n"
            "# then run `forecast priors check`.\n"
            "[workspace]\n"
            "version = 1\n"
            f"created = {self.created.isoformat()}\n"
            f"example = {'true' if self.example else 'false'}  # simulated example data\n"
            f'priors = "{self.priors}"  # folder inside the workspace\n'
            f"region = [{region}]  # CAMEO codes of the region's actors\n"
            f"lock_timeout = {self.lock_timeout:g}  # seconds a second writer waits\n"
            f"history_weeks = {self.history_weeks}  # weeks of events the model is fitted to\n"
            "\n[submit]\n"
            f"max_age_days = {self.max_age_days}  # refuse to submit older forecasts "
            "(--force overrides)\n"
            "\n[aggregation]  # the pool of model and judgment that is submitted\n"
            f"model_weight = {self.aggregation.model_weight:g}\n"
            f"judgment_weight = {self.aggregation.judgment_weight:g}\n"
            f"extremize = {self.aggregation.extremize:g}  # a >= 1 in logit p = a * mean logit; "
            "1 leaves the pool as is\n"
        )


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

    @contextlib.contextmanager
    def lock(self, *, housekeeping: bool = True) -> Iterator[None]:
        """Hold the workspace's write lock, waiting at most `lock_timeout` seconds for it.

        With `housekeeping`, the temporary files and folders of killed commands are removed on
        taking it, and the store is copied to its backup on releasing it if it changed
        (`backup_store`), also when the block failed (a damaged store keeps the old backup).
        A store that is gone while its backup is there is not made anew: that would start the
        history again.

        Raises
        ------
        WorkspaceBusyError
            Another command held the lock for `lock_timeout` seconds.
        StoreDamagedError
            The store is gone but its backup is there, or the store is damaged on release.
        """
        lock = filelock.FileLock(self.root / ".lock", timeout=self.config.lock_timeout)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise WorkspaceBusyError(
                f"workspace {self.root} is busy: another forecast command is writing to it "
                f"(waited {self.config.lock_timeout:g} s); try again when it has finished"
            ) from None
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
                backup_store(self)
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
    return Workspace(root, _read_config(config_path, root))


def _read_config(path: Path, root: Path) -> Config:
    problems: list[str] = []
    top = Table(read_toml(path, ConfigError), "", problems, ("workspace", "submit",
                                                                "aggregation", "platforms"))
    t = top.table("workspace", _CONFIG_KEYS)
    if t is None:
        raise ConfigError(path, problems)
    max_age, aggregation = _read_submit(top, problems)
    platforms = parse_platforms(top.table("platforms", ("metaculus", "forecastbench"),
                                          required=False))
    version = t.get("version", int, what="the integer 1")
    if version is not None and version != 1:
        t.problem("version",
                  f"expected 1 (the only version this toolkit reads), got {show_value(version)}")
    created, example = t.date("created"), t.get("example", bool, what="true or false")
    priors = t.text("priors")
    if priors is not None and not _inside(root, root / priors):
        t.problem("priors", f"must be a folder inside the workspace, got {show_value(priors)}")
    region = t.strings("region")
    if region is not None and not all(COUNTRY_CODE.fullmatch(r) for r in region):
        t.problem("region", f"expected CAMEO country codes like 'RUS', got {show_value(region)}")
    timeout = t.number("lock_timeout", required=False)
    if timeout is not None and not 0 <= timeout < math.inf:
        t.problem("lock_timeout", f"expected a number of seconds >= 0, got {timeout:g}")
    weeks = t.get("history_weeks", int, required=False, what=f"an integer from 8 to {_MAX_WEEKS}")
    if weeks is not None and not 8 <= weeks <= _MAX_WEEKS:
        t.problem("history_weeks",
                  f"expected an integer from 8 to {_MAX_WEEKS}, got {show_value(weeks)}")
    if problems:
        raise ConfigError(path, problems)
    return Config(created, example, priors, tuple(region),  # type: ignore[arg-type]
                  DEFAULT_LOCK_TIMEOUT if timeout is None else timeout,
                  weeks or DEFAULT_HISTORY_WEEKS, max_age, aggregation, platforms)


def _read_submit(top: Table, problems: list[str]) -> tuple[int, Aggregation]:
    """The `[submit]` and `[aggregation]` tables (both optional, with defaults)."""
    max_age = DEFAULT_MAX_AGE_DAYS
    submit = top.table("submit", ("max_age_days",), required=False)
    if submit is not None:
        what = f"an integer from 0 to {EXAMPLE_MAX_AGE_DAYS}"
        value = submit.get("max_age_days", int, required=False, what=what)
        if value is not None and not 0 <= value <= EXAMPLE_MAX_AGE_DAYS:
            submit.problem("max_age_days", f"expected {what}, got {show_value(value)}")
        elif value is not None:
            max_age = value
    agg = top.table("aggregation", ("model_weight", "judgment_weight", "extremize"),
                    required=False)
    values = {f.name: getattr(Aggregation(), f.name) for f in dataclasses.fields(Aggregation)}
    for key in values:
        value = agg.number(key, required=False) if agg is not None else None
        low = 1.0 if key == "extremize" else 0.0
        if agg is not None and value is not None and not (value >= low
                                                          and math.isfinite(value)):
            agg.problem(key, f"expected a number >= {low:g}, got {value:g}")
        elif value is not None:
            values[key] = value
    if values["model_weight"] + values["judgment_weight"] <= 0:
        problems.append("aggregation: the weights must not both be 0")
    return max_age, Aggregation(**values)


def _inside(root: Path, path: Path) -> bool:
    return inside(root, path) is not None


def posterior_path(ws: Workspace, name: str) -> Path:
    """The posterior file a run row names (relative to the workspace), refused unless it lies
    inside the workspace's `posteriors/` folder (symlinks followed): the store is data, and a
    path in it must not make us read files elsewhere."""
    path = inside(ws.posteriors_dir, ws.root / name)
    if path is None:
        raise WorkspaceError(f"{ws.store_path}: the posterior file {show_value(name)} of a run "
                             f"is not inside {ws.posteriors_dir}; refusing to read it")
    return path


def bundled_priors() -> Path:
    """The claims and scenarios shipped with the toolkit (the `priors` package's folder)."""
    return Path(str(importlib.resources.files("priors")))


def init_workspace(root: Path, *, example: bool = False,
                   region: tuple[str, ...] = DEFAULT_REGION) -> Workspace:
    """Create a workspace at `root` with a copy of the bundled priors.

    Raises `WorkspaceError` if `root` already is a workspace. forecast.toml is written last, so an
    interrupted init leaves no workspace and can simply be run again.
    """
    if (root / CONFIG_FILE).exists():
        raise WorkspaceError(f"{root} is already a workspace ({CONFIG_FILE} exists)")
    if root.exists() and not root.is_dir():
        raise WorkspaceError(f"cannot create a workspace at {root}: it is a file")
    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(bundled_priors(), root / "priors", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", "__init__.py"))
    (root / "posteriors").mkdir(exist_ok=True)
    config = Config(dt.date.today(), example, "priors", region, DEFAULT_LOCK_TIMEOUT,
                    max_age_days=EXAMPLE_MAX_AGE_DAYS if example else DEFAULT_MAX_AGE_DAYS)
    atomic_write(root / CONFIG_FILE, config.to_toml() + "\n" + _platforms_toml(root, example))
    return open_workspace(root)


def _platforms_toml(root: Path, example: bool) -> str:
    """The example's platform mapping (fake ids), or a commented template."""
    from forecast.example import EXAMPLE_AS_OF
    from forecast.scenarios import load_scenarios

    if example:
        questions = [q.id for s in load_scenarios(root / "priors" / "scenarios").values()
                     for q in s.questions]
        return example_platforms_toml(questions, due=EXAMPLE_AS_OF)
    return ("# Tournament platforms for `forecast submit`: map your question ids to theirs.\n"
            "# [platforms.metaculus.questions]\n"
            '# "hybrid-retaliation-by-2026-12-31" = 12345  # the question id, not the post id\n'
            "# [platforms.forecastbench]  # organization, model, model_organization,\n"
            "#                            # question_set, forecast_due_date, [..questions]\n")


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never a part."""
    raw = data.encode() if isinstance(data, str) else data
    atomic_file(path, lambda tmp: Path(tmp).write_bytes(raw))


def atomic_file(path: Path, write: Callable[[str], object]) -> None:
    """Call `write(temporary path)`, then rename the file over `path` (same folder, so the rename
    is atomic): a command killed at any moment leaves the old file or the new one, whole. The
    file is flushed to disk before the rename and gets the usual permissions (mkstemp's are
    owner-only). The temporary file is ``.<name>.<pid>.<random>.tmp``; a killed command's stays
    behind and is removed by the next writer or `forecast doctor` (see `stray_temp_files`)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.",
                               suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        _fsync(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # the rename itself, where folders can be synced
        _fsync(path.parent)


def _fsync(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_TEMP_NAME = re.compile(r"\.(?P<name>.+?)(\.(?P<pid>\d+))?\.[a-z0-9_]+\.tmp")
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
        for path in folder.iterdir():
            match = _TEMP_NAME.fullmatch(path.name)
            if match and path.is_file() and not _running(match["pid"]):
                found.append(path)
    return sorted(found) + sorted(p for p in ws.root.glob(_IMPORT_SCRATCH) if p.is_dir())


def _running(pid: str | None) -> bool:
    """Whether the process named in a temporary file's name runs (None: a name without one)."""
    if pid is None:
        return False
    try:
        os.kill(int(pid), 0)  # signal 0 only asks whether the process is there
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # another user's
        return True
    return True


def remove(path: Path) -> None:
    """Delete a file or a folder with its content, if it is there."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


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


def read_posterior(path: Path, then: str) -> xr.DataTree:
    """A posterior NetCDF file (ArviZ DataTree with ``posterior`` and ``constant_data``), read
    whole into memory and closed.

    Raises
    ------
    PosteriorError
        The file cannot be read (truncated, overwritten): names it and the recovery,
        `forecast doctor --repair` moving it aside and `then` saying what follows.
    """
    import xarray as xr

    try:
        with xr.open_datatree(path, engine="h5netcdf") as tree:
            missing = {"posterior", "constant_data"} - set(tree.children)
            if missing:
                raise ValueError(f"no {' or '.join(sorted(missing))} group")
            return tree.load()
    except FileNotFoundError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise PosteriorError(f"{path}: cannot read this posterior file ({first_line(exc)}); run "
                             f"`forecast doctor --repair` to move it aside, {then}") from exc
