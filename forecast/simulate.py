"""A world simulator: parameters and weekly event streams drawn from the model's generative story.

It makes the example data (labelled as simulated wherever they appear), the parameter-recovery and
calibration checks, and the backtests' worlds where the truth is known. It mirrors
`forecast.model` exactly, without the claims (a claim is a constraint on the prior, not part of
the generative story).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from forecast.model import PHI_FLOOR, ModelConfig
from forecast.series import make_series

#: Event volume of an average week among the region's actors in the simulated feed.
MEAN_VOLUME = 150


@dataclass(frozen=True)
class World:
    """True parameters, the escalation path and the weekly series of one simulated world."""

    params: dict[str, Any]
    series: xr.Dataset


def draw_parameters(rng: np.random.Generator, n_scenarios: int, n_indicators: int,
                    n_weeks: int, config: ModelConfig = ModelConfig(), *,
                    counter: np.ndarray | None = None) -> dict[str, Any]:
    """One draw of every parameter from the model's priors, exactly as `forecast.model` states
    them (hyper-parameters included): the intercepts are drawn at the path's mean level (the
    model's mean over the seen weeks: every simulated week has data), then shifted to x = 0.
    `counter` marks the counter-scenarios ``(scenario,)`` bool (default none)."""
    counter = np.zeros(n_scenarios, bool) if counter is None else np.asarray(counter, bool)
    rho = rng.beta(*config.rho)
    innovation = rng.standard_normal(n_weeks)
    mean_x = escalation_path(rho, innovation).mean()
    lam = np.abs(rng.normal(0.0, config.lambda_sd, n_indicators))
    mu = rng.normal(0.0, config.mu_sd, n_indicators) - lam * mean_x
    phi = np.abs(rng.normal(0.0, config.phi_sd, n_indicators))
    log_gamma_mean = rng.normal(config.log_gamma_mu, 0.7)
    gamma = np.exp(log_gamma_mean + config.log_gamma_sd * rng.standard_normal(n_scenarios))
    level_mean = rng.normal(config.level_mu, config.level_mu_sd)
    level_sd = abs(rng.normal(0.0, config.level_sd))
    level_offset = rng.standard_normal(n_scenarios)
    own_mean, own_sd = config.counter_level
    level = np.where(counter, own_mean + own_sd * level_offset,
                     level_mean + level_sd * level_offset)
    channel_mean = rng.normal(0.0, config.channel_mu_sd)
    channel_sd = abs(rng.normal(0.0, config.channel_sd))
    channel_offset = rng.standard_normal(n_scenarios)
    own_mean, own_sd = config.counter_channel
    logit = np.where(counter, own_mean + own_sd * channel_offset,
                     channel_mean + channel_sd * channel_offset)
    channel = 1 / (1 + np.exp(-logit))
    return {
        "rho": rho, "innovation": innovation, "lambda": lam, "mu": mu, "phi": phi,
        "log_gamma_mean": log_gamma_mean, "gamma": gamma,
        "scenario_level_mean": level_mean, "scenario_level_sd": level_sd,
        "beta": level - gamma * mean_x,
        "retaliation": rng.beta(*config.retaliation),
        "channel_logit_mean": channel_mean, "channel_logit_sd": channel_sd, "channel": channel,
        "counter": counter,
    }


POISSON_MAX = 1e15


def plausible(world: World) -> bool:
    """Whether a simulated world looks like a feed the toolkit could meet: every indicator
    averages fewer events a week than the feed's whole volume, and no scenario fires more than
    once a week on average. The broad priors allow worlds that fail this (a persistent path
    with a large loading makes thousands of indicator events a week); validation draws again
    then, and counts it."""
    s = world.series
    return bool((s.indicator_events.mean("week") <= s.volume.mean()).all()
                and (s.scenario_events.mean("week") <= 1).all())


def plausible_world(rng: np.random.Generator, scenarios: list[str], indicators: list[str],
                    weeks: np.ndarray, draw: Callable[[], dict[str, Any]] | None = None, *,
                    counter: Collection[str] = ()) -> tuple[World, int]:
    """A world `plausible` accepts, and how many implausible ones were drawn before it; `draw`
    gives each try's parameters (default: the priors, `draw_parameters`)."""
    for rejected in range(1000):
        world = simulate_world(rng, scenarios, indicators, weeks, counter=counter,
                               params=draw() if draw is not None else None)
        if plausible(world):
            return world, rejected
    raise RuntimeError("no plausible world in 1000 draws")


def escalation_path(rho: float, innovation: np.ndarray) -> np.ndarray:
    """The AR(1) path of `forecast.model` (unit innovations, stationary start)."""
    x = np.empty_like(innovation)
    x[0] = innovation[0] / np.sqrt(1 - rho**2)
    for t in range(1, len(innovation)):
        x[t] = rho * x[t - 1] + innovation[t]
    return x


def simulate_world(rng: np.random.Generator, scenarios: list[str], indicators: list[str],
                   weeks: np.ndarray, *, params: dict[str, Any] | None = None,
                   config: ModelConfig = ModelConfig(), counter: Collection[str] = ()) -> World:
    """Draw (or take) parameters, then the escalation path, channels and weekly counts.

    Parameters
    ----------
    weeks
        Week-end dates (see `forecast.series.week_ends`).
    params
        True parameters; drawn from the priors when None. May omit "innovation" and "on" (the
        channels in use: R z_s, or z_c for a counter-scenario, `forecast.model`), which are then
        drawn.
    counter
        The counter-scenarios among `scenarios`.
    """
    n_weeks = len(weeks)
    mask = np.array([s in counter for s in scenarios], dtype=bool)
    params = dict(params or draw_parameters(rng, len(scenarios), len(indicators), n_weeks, config,
                                            counter=mask))
    params.setdefault("innovation", rng.standard_normal(n_weeks))
    params.setdefault("counter", mask)
    if "on" not in params:
        used = rng.random(len(scenarios)) >= 1 - params["channel"]  # z_s
        retaliates = params["retaliation"] >= 1 or rng.random() < params["retaliation"]  # R
        params["on"] = (used & (retaliates | mask)).astype("int64")
    x = escalation_path(params["rho"], params["innovation"])
    params["escalation"] = x
    volume = rng.poisson(MEAN_VOLUME * np.exp(0.3 * rng.standard_normal(n_weeks)))
    exposure = volume / volume.mean()
    mean = exposure * np.exp(params["mu"][:, None] + params["lambda"][:, None] * x)
    # NegBin(mean, alpha = 1/phi) as a Poisson-Gamma mixture
    shape = 1 / (params["phi"][:, None] + PHI_FLOOR)
    # an extreme draw of the broad priors can ask numpy for more than it can count: such a
    # world is cut at POISSON_MAX a week and rejected by `plausible`, not a crash
    indicator = rng.poisson(np.minimum(rng.gamma(shape, mean / shape), POISSON_MAX))
    rate = np.exp(params["beta"][:, None] + params["gamma"][:, None] * x)
    scenario = rng.poisson(np.minimum(params["on"][:, None] * rate, POISSON_MAX))
    # the volume is the exposure the counts were drawn with (in the model's worlds drawn from
    # the wide priors, indicator counts can exceed it; the example world keeps them below)
    series = make_series(weeks, dict(zip(scenarios, scenario, strict=True)),
                         dict(zip(indicators, indicator, strict=True)), volume,
                         counter=counter)
    return World(params, series)


def world_events(world: World, rules: dict[str, tuple[str, str, str, int]],
                 rng: np.random.Generator, region: tuple[str, ...]) -> list[dict]:
    """The world's weekly counts as individual event records (the store's record).

    Parameters
    ----------
    rules
        For each scenario and indicator id: (actor1, actor2, CAMEO code, number of sources) of the
        events that make its count.
    region
        Actor codes for the background events that make up the rest of each week's volume; their
        codes (010 make statement, 036 express intent to meet, 042 make a visit, 051 praise) match
        no rule or indicator.
    """
    series = world.series
    events: list[dict] = []

    def add(week_end: np.datetime64, actor1: str, actor2: str, code: str, sources: int,
            label: str) -> None:
        day = (week_end.astype("datetime64[D]") - rng.integers(0, 7)).astype(dt.date)
        events.append({"date": day, "actor1": actor1, "actor2": actor2, "event_code": code,
                       "num_sources": int(sources),
                       "source_url": f"https://simulated.invalid/{label}/{len(events)}",
                       "note": "SIMULATED"})

    for dim, var in (("scenario", "scenario_events"), ("indicator", "indicator_events")):
        for ident in series[dim].values:
            actor1, actor2, code, sources = rules[str(ident)]
            for week_end, count in zip(series.week.values, series[var].sel({dim: ident}).values,
                                       strict=True):
                for _ in range(int(count)):
                    add(week_end, actor1, actor2, code, sources, str(ident))
    counted = series.scenario_events.sum("scenario") + series.indicator_events.sum("indicator")
    codes = ("010", "036", "042", "051")
    background = (series.volume - counted).clip(min=0)
    for week_end, count in zip(series.week.values, background.values, strict=True):
        for _ in range(int(count)):
            a, b = rng.choice(len(region), 2, replace=False)
            add(week_end, region[a], region[b], codes[rng.integers(len(codes))],
                1 + rng.poisson(1), "background")
    events.sort(key=lambda e: e["date"])
    return events


def write_gdelt2(events: list[dict], path: Path, *, first_id: int = 1) -> None:
    """Write event records as a GDELT 2.0 export (61 tab-separated columns, no header).

    Fields the record does not have are left empty; QuadClass, Goldstein and tone are not
    simulated. DATEADDED is the event's day at midnight.
    """
    with path.open("w", encoding="utf-8", newline="") as f:
        for i, e in enumerate(events):
            day = e["date"].strftime("%Y%m%d")
            row = [""] * 61
            row[0], row[1], row[2], row[3] = str(first_id + i), day, day[:6], day[:4]
            row[4] = f"{e['date'].year + (e['date'].timetuple().tm_yday - 1) / 365:.4f}"
            row[5], row[7] = e["actor1"], e["actor1"]  # Actor1Code, Actor1CountryCode
            row[15], row[17] = e["actor2"], e["actor2"]
            code = e["event_code"]
            row[25], row[26], row[27], row[28] = "1", code, code[:3], code[:2]
            row[31], row[32], row[33] = (str(e["num_sources"]),) * 3  # mentions, sources, articles
            row[59], row[60] = f"{day}000000", e["source_url"]
            f.write("\t".join(row) + "\n")
