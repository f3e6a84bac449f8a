"""The scenario model: one shared escalation level, indicator series, and scenario channels.

Weeks t = 0..T-1 end at the as-of date; scenarios s have resolution rules; indicators k are
precursor series. Notation follows DESIGN.md ("The model").

Escalation (shared by every channel; one decision in Moscow drives them all)::

    x_0 = e_0 / sqrt(1 - rho^2),   x_t = rho * x_{t-1} + e_t,   e_t ~ N(0, 1)   (non-centred)

Indicators (negative binomial with the week's event volume E_t as exposure)::

    y_kt ~ NegBin(mean = E_t / mean(E) * exp(mu_k + lambda_k * x_t), overdispersion phi_k)

Scenario channels (recurrent events, "never" fraction c_s, z_s marginalised)::

    rate_st = exp(beta_s + gamma_s * x_t)
    L_s = log(1 - c_s) + sum_t Poisson(n_st | rate_st)               if any n_st > 0
    L_s = log(c_s + (1 - c_s) * exp(-sum_t rate_st))                  otherwise

Claims (see `forecast.priors`): for claim j on scenario s at horizon h weeks, a term
``log Beta(P_s(h) | a_j, b_j)`` with, at the stationary escalation level x = 0::

    P_s(h) = (1 - c_s) * (1 - exp(-h * exp(beta_s))),   P_s(ever) = 1 - c_s

and for a union U, ``P_U(h) = 1 - prod_{s in U} (1 - P_s(h))``. (Taking the stationary *mean
rate* exp(beta + gamma^2 / (2 (1 - rho^2))) instead made the claims depend on rho through a term
that explodes as rho -> 1, and the sampler diverged there: 42 divergences on the example world.)

Departures from DESIGN.md, and why:

- **The innovations have sd 1** (sigma = 1) and x_0 starts from the stationary distribution.
  sigma is not identified apart from the loadings: (sigma, lambda, gamma) -> (a*sigma, lambda/a,
  gamma/a) leaves the likelihood unchanged, so one scale must be fixed. Fixing the *stationary*
  variance instead (sigma = sqrt(1 - rho^2)) was worse: as rho -> 1 the innovations' scale goes to
  0, a funnel between rho and the innovations. Measured on one simulated world (150 weeks,
  6 scenarios, 8 indicators, the document's claims; nutpie, 2 x 1000 draws): unit stationary
  variance 9 divergences, min bulk ESS 233, 15 s; unit innovations 0 divergences, min bulk ESS
  279, 11 s. (Centring x instead gave no divergences but min bulk ESS 54.)
- **Intercepts are sampled at the window's mean escalation**: the model samples
  ``indicator_level_k = mu_k + lambda_k * mean(x)`` and ``scenario_level_s = beta_s + gamma_s *
  mean(x)`` (mu and beta are kept as deterministics). The likelihood cannot tell a higher x from
  lower intercepts, (x + d, mu - lambda d, beta - gamma d), so in the original coordinates the
  sampler crawls along that ridge; in these it only sees the AR(1) prior's say on mean(x). The
  weakly informative priors now sit on the intercepts at the mean level rather than at x = 0.
  On the example world (156 weeks): min bulk ESS 168 -> 320 per 2 x 1000 draws.
- **Sampler**: nutpie with its low-rank mass-matrix adaptation and target_accept 0.95
  (`forecast.fit`). The non-centred path makes rho hard to move at high rho (a small change of
  rho moves the whole path). On the example world, 2 x 2000 draws: diagonal adaptation 10
  divergences; low-rank with target_accept 0.95 none, min bulk ESS 1283, 71 s with compilation.
  2 x 1000 draws gave min bulk ESS 345 (rho) with the default seed, so the default is
  2 x 2000. Speed is a later issue.
- **Union claims** ("some retaliation") treat the member channels as independent at the
  stationary level; the shared x makes them positively dependent, so this slightly overstates
  P_U(h) for given members (the constraint then pulls members a little low). Documented, small
  for the weak escalation links the data support.
- **Exposure is normalised** by its mean so that mu_k is the log of the indicator's weekly count
  in an average week: scale-free, and its prior need not know how big the feed is.
- **No GDELT false-positive rate yet**: rules require a minimum number of sources and the store
  deduplicates rows; a per-rule false-positive rate is a planned extension.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import xarray as xr


@dataclass(frozen=True)
class ClaimTerm:
    """A claim as the model sees it: which scenarios' union, what horizon, which Beta."""

    id: str
    members: tuple[str, ...]  # one scenario, or a union's members
    weeks: float | None  # None: ever
    alpha: float
    beta: float


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of the weakly informative priors (the claims add to these)."""

    rho: tuple[float, float] = (8.0, 2.0)  # Beta: persistent escalation, mean 0.8
    mu_sd: float = 3.0  # Normal(0, .) on log weekly indicator count in an average week
    lambda_sd: float = 1.0  # HalfNormal: indicator loading on escalation
    phi_sd: float = 1.0  # HalfNormal: NegBin overdispersion 1/alpha (0 is Poisson)
    beta_mu: float = -4.0  # Normal: log weekly rate of a scenario channel that is on
    beta_sd: float = 2.0
    gamma_sd: float = 0.5  # HalfNormal: scenario loading on escalation
    never: tuple[float, float] = (1.0, 1.0)  # Beta: fraction c_s of worlds with channel off
    escalation: bool = True  # False: gamma = 0 and no x (the closed-form special case)
    never_fraction: bool = True  # False: c_s = 0 (every channel on)
    beta_gamma_prior: tuple[float, float] | None = None  # Gamma(a, b) on exp(beta) instead


def claim_probability(never, log_rate, weeks: float | None):
    """P(at least one event within `weeks`) at the stationary level; works on numpy or pytensor."""
    lib = pt if isinstance(log_rate, pt.TensorVariable) else np
    if weeks is None:
        return 1 - never
    return (1 - never) * -lib.expm1(-weeks * lib.exp(log_rate))


def build_model(series: xr.Dataset, claims: Sequence[ClaimTerm] = (),
                config: ModelConfig = ModelConfig()) -> pm.Model:
    """The PyMC model of `series` (see `forecast.series`) with the claims as constraints.

    Parameters
    ----------
    series
        ``scenario_events (scenario, week)``, ``indicator_events (indicator, week)`` and
        ``volume (week)``; the indicator dimension may be empty.
    claims
        Claim constraints; every member must be a scenario of `series`.
    config
        Prior hyper-parameters and the special-case switches.
    """
    scenarios = list(series.scenario.values)
    indicators = list(series.indicator.values) if "indicator" in series.dims else []
    n_weeks = series.sizes["week"]
    coords = {"scenario": scenarios, "indicator": indicators, "week": series.week.values}
    with pm.Model(coords=coords) as model:
        data = model_data(series)
        n = pm.Data("scenario_events", data["scenario_events"], dims=("scenario", "week"))
        if config.escalation:
            rho = pm.Beta("rho", *config.rho)
            e = pm.Normal("innovation", 0.0, 1.0, dims="week")
            x = pm.Deterministic("escalation", _ar1(rho, e, n_weeks), dims="week")
        else:
            x = pt.zeros(n_weeks)

        # a week without any event in the feed is a gap in the data, not a quiet week
        seen = series.volume.values > 0
        if indicators and config.escalation and seen.any():
            y = pm.Data("indicator_events", data["indicator_events"])
            log_exposure = pm.Data("log_exposure", data["log_exposure"])
            lam = pm.HalfNormal("lambda", config.lambda_sd, dims="indicator")
            level = pm.Normal("indicator_level", 0.0, config.mu_sd, dims="indicator")
            mu = pm.Deterministic("mu", level - lam * x.mean(), dims="indicator")
            phi = pm.HalfNormal("phi", config.phi_sd, dims="indicator")
            pm.NegativeBinomial(
                "indicator_obs", mu=pt.exp(log_exposure + mu[:, None] + lam[:, None] * x[seen]),
                alpha=1 / phi[:, None], observed=y)

        if config.escalation:
            gamma = pm.HalfNormal("gamma", config.gamma_sd, dims="scenario")
        if config.beta_gamma_prior is not None:
            rate0 = pm.Gamma("rate", *config.beta_gamma_prior, dims="scenario")
            beta = pm.Deterministic("beta", pt.log(rate0), dims="scenario")
        elif config.escalation:
            level = pm.Normal("scenario_level", config.beta_mu, config.beta_sd, dims="scenario")
            beta = pm.Deterministic("beta", level - gamma * x.mean(), dims="scenario")
        else:
            beta = pm.Normal("beta", config.beta_mu, config.beta_sd, dims="scenario")
        if config.escalation:
            log_rate = beta[:, None] + gamma[:, None] * x  # (scenario, week)
        else:
            log_rate = pt.repeat(beta[:, None], n_weeks, axis=1)
        if config.never_fraction:
            never = pm.Beta("never", *config.never, dims="scenario")
        else:
            never = pt.zeros(len(scenarios))

        poisson = ((n * log_rate - pt.exp(log_rate) - pt.gammaln(n + 1)) * seen).sum(axis=1)
        happened = n.sum(axis=1) > 0
        on = pt.log1p(-never) + poisson if config.never_fraction else poisson
        off = pt.log(never) if config.never_fraction else pt.full(len(scenarios), -np.inf)
        pm.Potential("scenario_likelihood",
                     pt.switch(happened, on, pt.logaddexp(off, on)).sum())

        if claims:
            index = {s: i for i, s in enumerate(scenarios)}
            logp = []
            for c in claims:
                members = [index[m] for m in c.members]
                p_none = pt.prod(
                    1 - claim_probability(never[members], beta[members], c.weeks))
                p = pt.clip(1 - p_none, 1e-12, 1 - 1e-12)
                logp.append((c.alpha - 1) * pt.log(p) + (c.beta - 1) * pt.log1p(-p))
            pm.Potential("claims", pt.sum(pt.stack(logp)))
    return model


def model_data(series: xr.Dataset) -> dict[str, np.ndarray]:
    """The `pm.Data` values `build_model` takes from `series`, for swapping in new data of the
    same shapes (``nutpie`` ``with_data``) without rebuilding the model."""
    seen = series.volume.values > 0
    data = {"scenario_events": series.scenario_events.values.astype("float64")}
    if series.sizes.get("indicator") and seen.any():
        volume = series.volume.values[seen].astype("float64")
        data["indicator_events"] = series.indicator_events.values[:, seen]
        data["log_exposure"] = np.log(volume / volume.mean())
    return data


def _ar1(rho, e, n_weeks: int):
    """x = L @ (s * e) with L[t, j] = rho^(t - j) for j <= t: the AR(1) without a scan.

    The Toeplitz matrix is gathered from the vector rho^k (T powers, not T^2 exponentials).
    """
    lag = np.subtract.outer(np.arange(n_weeks), np.arange(n_weeks))
    powers = rho ** np.arange(n_weeks, dtype="float64")  # (lag,)
    lower = powers[np.maximum(lag, 0)] * (lag >= 0)  # (week, week)
    # x_0 from the stationary distribution N(0, 1 / (1 - rho^2)); later innovations have sd 1
    scale = pt.concatenate([1 / pt.sqrt(1 - rho**2)[None], pt.ones(n_weeks - 1)])
    return lower @ (scale * e)
