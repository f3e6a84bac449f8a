"""The workspace: one folder holding a forecaster's priors, event store, posteriors and history.

Layout::

    forecast.toml      configuration (written last by `init`: its presence marks a workspace)
    priors/            the claims and scenarios in use (a copy of the bundled ones, to edit)
    store.duckdb       events and forecast history
    posteriors/        fitted posteriors (ArviZ DataTree, NetCDF)
    .lock              the write lock

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
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import filelock

from forecast.errors import ConfigError, WorkspaceBusyError, WorkspaceError
from forecast.events import DEFAULT_REGION
from forecast.judgment import Aggregation
from forecast.platforms import Platforms, example_platforms_toml, parse_platforms
from forecast.schema import Table, read_toml

CONFIG_FILE = "forecast.toml"
DEFAULT_LOCK_TIMEOUT = 30.0
DEFAULT_HISTORY_WEEKS = 156
DEFAULT_MAX_AGE_DAYS = 7
EXAMPLE_MAX_AGE_DAYS = 36500  # the example's simulated data are frozen in 2026
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

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the workspace's write lock, waiting at most `lock_timeout` seconds for it."""
        lock = filelock.FileLock(self.root / ".lock", timeout=self.config.lock_timeout)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise WorkspaceBusyError(
                f"workspace {self.root} is busy: another forecast command is writing to it "
                f"(waited {self.config.lock_timeout:g} s); try again when it has finished"
            ) from None
        try:
            yield
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
        t.problem("version", f"expected 1 (the only version this toolkit reads), got {version}")
    created, example = t.date("created"), t.get("example", bool, what="true or false")
    priors = t.text("priors")
    if priors is not None and not _inside(root, root / priors):
        t.problem("priors", f"must be a folder inside the workspace, got {priors!r}")
    region = t.strings("region")
    if region is not None and not all(len(r) == 3 and r.isalpha() and r.isupper() for r in region):
        t.problem("region", f"expected CAMEO country codes like 'RUS', got {region!r}")
    timeout = t.number("lock_timeout", required=False)
    if timeout is not None and timeout < 0:
        t.problem("lock_timeout", f"expected a number of seconds >= 0, got {timeout:g}")
    weeks = t.get("history_weeks", int, required=False, what="an integer >= 8")
    if weeks is not None and weeks < 8:
        t.problem("history_weeks", f"expected an integer >= 8, got {weeks}")
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
        value = submit.get("max_age_days", int, required=False, what="an integer >= 0")
        if value is not None and value < 0:
            submit.problem("max_age_days", f"expected an integer >= 0, got {value}")
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
    return path.resolve().is_relative_to(root.resolve())


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

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())

    atomic_file(path, write)


def atomic_file(path: Path, write: Callable[[str], None]) -> None:
    """Call `write(temporary path)`, then rename the file over `path` (same folder, so the rename
    is atomic). The file gets the usual permissions (mkstemp's are owner-only)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
