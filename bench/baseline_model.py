"""The baseline of ``bench/run.py``: the scenario model written the straightforward way.

The scenario model as it stood before issue 14 (independent scenario priors, one "never"
fraction per scenario, claims as time-invariant Beta terms; its priors are written out below), in
the plain PyMC idiom it had before the speed work of issue 7: an observed
``pm.NegativeBinomial`` (with its normalising terms and parameter checks), the AR(1) as one dense
T x T Toeplitz product, the Poisson term with log(n!), and the weeks with data picked by a
boolean index. ``run.py`` samples it with ``pm.sample()`` defaults, rebuilt in every process.
Kept frozen so that the ratio measures the toolkit against a fixed reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import xarray as xr

from forecast.model import ClaimTerm


@dataclass(frozen=True)
class BaselineConfig:
    rho: tuple[float, float] = (8.0, 2.0)
    mu_sd: float = 3.0
    lambda_sd: float = 1.0
    phi_sd: float = 1.0
    beta_mu: float = -4.0
    beta_sd: float = 2.0
    gamma_sd: float = 0.5
    never: tuple[float, float] = (1.0, 1.0)


def claim_probability(never, log_rate, weeks: float | None):
    """P(at least one event within `weeks`) at the stationary level x = 0."""
    if weeks is None:
        return 1 - never
    return (1 - never) * -pt.expm1(-weeks * pt.exp(log_rate))


def build_baseline(series: xr.Dataset, claims: Sequence[ClaimTerm]) -> pm.Model:
    config = BaselineConfig()
    scenarios = list(series.scenario.values)
    indicators = list(series.indicator.values)
    n_weeks = series.sizes["week"]
    seen = series.volume.values > 0
    volume = series.volume.values[seen].astype("float64")
    coords = {"scenario": scenarios, "indicator": indicators, "week": series.week.values}
    with pm.Model(coords=coords) as model:
        n = pm.Data("scenario_events", series.scenario_events.values.astype("float64"),
                    dims=("scenario", "week"))
        rho = pm.Beta("rho", *config.rho)
        e = pm.Normal("innovation", 0.0, 1.0, dims="week")
        lag = np.subtract.outer(np.arange(n_weeks), np.arange(n_weeks))
        lower = (rho ** np.arange(n_weeks, dtype="float64"))[np.maximum(lag, 0)] * (lag >= 0)
        scale = pt.concatenate([1 / pt.sqrt(1 - rho**2)[None], pt.ones(n_weeks - 1)])
        x = pm.Deterministic("escalation", lower @ (scale * e), dims="week")

        y = pm.Data("indicator_events", series.indicator_events.values[:, seen])
        log_exposure = pm.Data("log_exposure", np.log(volume / volume.mean()))
        lam = pm.HalfNormal("lambda", config.lambda_sd, dims="indicator")
        level = pm.Normal("indicator_level", 0.0, config.mu_sd, dims="indicator")
        mu = pm.Deterministic("mu", level - lam * x.mean(), dims="indicator")
        phi = pm.HalfNormal("phi", config.phi_sd, dims="indicator")
        pm.NegativeBinomial(
            "indicator_obs", mu=pt.exp(log_exposure + mu[:, None] + lam[:, None] * x[seen]),
            alpha=1 / phi[:, None], observed=y)

        gamma = pm.HalfNormal("gamma", config.gamma_sd, dims="scenario")
        level = pm.Normal("scenario_level", config.beta_mu, config.beta_sd, dims="scenario")
        beta = pm.Deterministic("beta", level - gamma * x.mean(), dims="scenario")
        log_rate = beta[:, None] + gamma[:, None] * x  # (scenario, week)
        never = pm.Beta("never", *config.never, dims="scenario")
        poisson = ((n * log_rate - pt.exp(log_rate) - pt.gammaln(n + 1)) * seen).sum(axis=1)
        on = pt.log1p(-never) + poisson
        pm.Potential("scenario_likelihood",
                     pt.switch(n.sum(axis=1) > 0, on, pt.logaddexp(pt.log(never), on)).sum())

        index = {s: i for i, s in enumerate(scenarios)}
        logp = []
        for c in claims:
            members = [index[m] for m in c.members]
            p = pt.clip(1 - pt.prod(1 - claim_probability(never[members], beta[members],
                                                          c.weeks)), 1e-12, 1 - 1e-12)
            logp.append((c.alpha - 1) * pt.log(p) + (c.beta - 1) * pt.log1p(-p))
        pm.Potential("claims", pt.sum(pt.stack(logp)))
    return model
