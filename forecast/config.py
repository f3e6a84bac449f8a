"""The workspace's settings: forecast.toml, parsed and written.

Every feature's settings live here (the `[workspace]`, `[submit]`, `[aggregation]` and
`[platforms]` tables), so that reading them needs nothing above this module. Each platform's own
table is parsed by its module (`forecast.platforms`), which depends on nothing above it either.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path

from forecast.errors import ConfigError
from forecast.platforms import Platforms, parse_platforms
from forecast.schema import COUNTRY_CODE, Table, inside, read_toml, show_value

#: CAMEO codes of the region's actors: events between others are not stored.
DEFAULT_REGION: tuple[str, ...] = ("RUS", "AZE", "IRN", "ARM", "GEO", "TUR")

#: GDELT 2.0's master file list, which `forecast events fetch gdelt2` reads.
DEFAULT_GDELT2_MASTER = "http://data.gdeltproject.org/gdeltv2/masterfilelist.txt"

CONFIG_FILE = "forecast.toml"
MAX_WEIGHT = 1000.0  # [aggregation]: a weight or extremizing factor
DEFAULT_LOCK_TIMEOUT = 30.0
DEFAULT_HISTORY_WEEKS = 156
DEFAULT_MAX_AGE_DAYS = 7
EXAMPLE_MAX_AGE_DAYS = 36500  # the example's simulated data are frozen in 2026
_MAX_WEEKS = 5200  # 100 years: more is a typo, and would overflow date arithmetic
_CONFIG_KEYS = ("version", "created", "example", "priors", "region", "lock_timeout",
                "history_weeks")


@dataclass(frozen=True)
class Aggregation:
    """The `[aggregation]` table of forecast.toml: how model and judgment are pooled
    (`forecast.judgment.pooled`)."""

    model_weight: float = 1.0
    judgment_weight: float = 1.0
    extremize: float = 1.0  # a >= 1


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
    fetch_gdelt2_master: str = DEFAULT_GDELT2_MASTER  # [fetch] gdelt2_master

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
            "\n[fetch]  # forecast events fetch\n"
            f'gdelt2_master = "{self.fetch_gdelt2_master}"\n'
        )



def read_config(path: Path, root: Path) -> Config:
    """Read and check forecast.toml; raises `ConfigError` listing every problem."""
    problems: list[str] = []
    top = Table(read_toml(path, ConfigError), "", problems, ("workspace", "submit",
                                                                "aggregation", "platforms",
                                                                "fetch"))
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
    if region is not None and not (region and all(COUNTRY_CODE.fullmatch(r) for r in region)):
        t.problem("region", "expected one or more CAMEO country codes like 'RUS' (an empty "
                  f"region would keep every event), got {show_value(region)}")
    timeout = t.number("lock_timeout", required=False)
    if timeout is not None and not 0 <= timeout < math.inf:
        t.problem("lock_timeout", f"expected a number of seconds >= 0, got {timeout:g}")
    weeks = t.get("history_weeks", int, required=False, what=f"an integer from 8 to {_MAX_WEEKS}")
    if weeks is not None and not 8 <= weeks <= _MAX_WEEKS:
        t.problem("history_weeks",
                  f"expected an integer from 8 to {_MAX_WEEKS}, got {show_value(weeks)}")
    master = DEFAULT_GDELT2_MASTER
    fetch = top.table("fetch", ("gdelt2_master",), required=False)
    if fetch is not None and (url := fetch.text("gdelt2_master", required=False)) is not None:
        if not url.startswith(("http://", "https://")):
            fetch.problem("gdelt2_master", f"expected an http(s) address, got {show_value(url)}")
        master = url
    if problems:
        raise ConfigError(path, problems)
    return Config(created, example, priors, tuple(region),  # type: ignore[arg-type]
                  DEFAULT_LOCK_TIMEOUT if timeout is None else timeout,
                  weeks or DEFAULT_HISTORY_WEEKS, max_age, aggregation, platforms, master)


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
        low = 1.0 if key == "extremize" else 0.0  # weights past MAX_WEIGHT overflow the pool
        if agg is not None and value is not None and not low <= value <= MAX_WEIGHT:
            agg.problem(key, f"expected a number from {low:g} to {MAX_WEIGHT:g}, got {value:g}")
        elif value is not None:
            values[key] = value
    if values["model_weight"] + values["judgment_weight"] <= 0:
        problems.append("aggregation: the weights must not both be 0")
    return max_age, Aggregation(**values)


def _inside(root: Path, path: Path) -> bool:
    return inside(root, path) is not None
