"""The scenario model: one shared escalation level, indicator series, and scenario channels.

Weeks t = 0..T-1 end at the as-of date; scenarios s have resolution rules; indicators k are
precursor series. Notation follows DESIGN.md ("The model").

Escalation (shared by every channel; one decision in Moscow drives them all)::

    x_0 ~ N(0, 1 / (1 - rho^2)),   x_t = rho * x_{t-1} + e_t,   e_t ~ N(0, 1)

(sampled centred where there are data, non-centred before them: see `_escalation`)

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
  279, 11 s. (Centring x with the intercepts at x = 0 gave min bulk ESS 54; see below.)
- **Intercepts are sampled at the mean escalation since the feed began**: the model samples
  ``indicator_level_k = mu_k + lambda_k * m`` and ``scenario_level_s = beta_s + gamma_s * m``,
  m the mean of x over the weeks from the first with data on (mu and beta are kept as
  deterministics). The likelihood cannot tell a higher x from lower intercepts, (x + d,
  mu - lambda d, beta - gamma d), so in the original coordinates the sampler crawls along that
  ridge; in these it only sees the AR(1) prior's say on m. The weakly informative priors sit on
  the intercepts at that level rather than at x = 0. (Until issue 7's second part, m was the
  mean over the whole window; the two differ only when the window starts before the feed.)
- **The path is centred where there are data** (`_escalation`). Written non-centred (x from
  the innovations), a small change of rho moves the whole path, so the innovations must all
  move with it: at target_accept 0.995 a draw took about 120 leapfrog steps, at 0.8 it diverged
  at high rho, and rho had the smallest ESS. Centred, each week is pinned by its own data and
  rho is a regression on the path. The weeks before the first with data have no likelihood and
  stay non-centred (centred, a 31-week gap mixed slowly: min bulk ESS 141-206 per 2 x 2000
  draws as of 2026-05-31). On the example world (156 weeks), same machine: at target_accept 0.9
  about 15 steps per draw, min bulk ESS 610-720 per 2 x 3000 draws in 5-6.5 s of sampling, but
  1 divergence in 9 fits (as of 2026-05-31, the default seed, at gamma 1.5 and rho 0.93); at 0.95
  about 30 steps, 0 divergences, the same ESS per second. (Non-centred at 0.995: about 120
  steps, min bulk ESS 750-900 per 2 x 2000 draws in 25-35 s.)
- **Sampler**: nutpie with a diagonal mass matrix, target_accept 0.95, 2 x 2000 draws after 1000
  tuning steps (`forecast.fit`). nutpie's low-rank adaptation needs about as many steps, but
  its tuning cost about 40 ms per draw here, 40 s per fit.
- **Likelihood terms that are constants of the data are left out** (log n! and log y!), and the
  negative binomial is written out (`negative_binomial_logp`): the log-posterior differs from
  PyMC's by a constant, which changes nothing in the sampling; no code uses its absolute value.
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

import math
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
        # a week without any event in the feed is a gap in the data, not a quiet week
        seen = pm.Data("seen", data["seen"], dims="week")
        if config.escalation:
            rho = pm.Beta("rho", *config.rho)
            x, x_mean = _escalation(rho, seen, n_weeks)
            x = pm.Deterministic("escalation", x, dims="week")
        else:
            x = pt.zeros(n_weeks)
        if indicators and config.escalation:
            y = pm.Data("indicator_events", data["indicator_events"], dims=("indicator", "week"))
            log_exposure = pm.Data("log_exposure", data["log_exposure"], dims="week")
            lam = pm.HalfNormal("lambda", config.lambda_sd, dims="indicator")
            level = pm.Normal("indicator_level", 0.0, config.mu_sd, dims="indicator")
            mu = pm.Deterministic("mu", level - lam * x_mean, dims="indicator")
            phi = pm.HalfNormal("phi", config.phi_sd, dims="indicator")
            log_mean = log_exposure + mu[:, None] + lam[:, None] * x  # (indicator, week)
            pm.Potential("indicator_likelihood",
                         negative_binomial_logp(y, log_mean, 1 / phi, seen))

        if config.escalation:
            gamma = pm.HalfNormal("gamma", config.gamma_sd, dims="scenario")
        if config.beta_gamma_prior is not None:
            rate0 = pm.Gamma("rate", *config.beta_gamma_prior, dims="scenario")
            beta = pm.Deterministic("beta", pt.log(rate0), dims="scenario")
        elif config.escalation:
            level = pm.Normal("scenario_level", config.beta_mu, config.beta_sd, dims="scenario")
            beta = pm.Deterministic("beta", level - gamma * x_mean, dims="scenario")
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

        # the Poisson log-likelihood without log(n!), a constant of the data
        poisson = ((n * log_rate - pt.exp(log_rate)) * seen).sum(axis=1)
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


def negative_binomial_logp(y, log_mean, alpha, weight):
    """sum over (k, t) of weight_t log NegBin(y_kt | mean exp(log_mean_kt), overdispersion
    1 / alpha_k), without log(y!), a constant of the data::

        log Gamma(y + a) - log Gamma(a) + a log a + y log m - (y + a) log(a + m)

    Written out because `pm.NegativeBinomial`'s log-density (binomial coefficients, parameter
    checks) costs three log-gamma functions per element and this one: 165 -> 60 us per value and
    gradient over 8 x 156 counts, most of an update's gradient.
    """
    a = alpha[:, None]
    return ((pt.gammaln(y + a) - pt.gammaln(a) + a * pt.log(a) + y * log_mean
             - (y + a) * pt.log(a + pt.exp(log_mean))) * weight).sum()


def model_data(series: xr.Dataset) -> dict[str, np.ndarray]:
    """The `pm.Data` values `build_model` takes from `series`, for swapping in new data of the
    same shapes (``nutpie`` ``with_data``) without rebuilding the model. Weeks with no event in
    the feed (``seen`` 0) are left out of the likelihood; their exposure is a placeholder."""
    volume = series.volume.values.astype("float64")
    seen = volume > 0
    log_exposure = np.zeros_like(volume)
    if seen.any():
        log_exposure[seen] = np.log(volume[seen] / volume[seen].mean())
    data = {"scenario_events": series.scenario_events.values.astype("float64"),
            "seen": seen.astype("float64")}
    if series.sizes.get("indicator"):
        data["indicator_events"] = series.indicator_events.values.astype("float64")
        data["log_exposure"] = log_exposure
    return data


def _escalation(rho, seen, n_weeks: int):
    """The AR(1) escalation path x (unit innovations, stationary start) and its mean level
    since the feed began, parametrised for NUTS with a diagonal mass matrix.

    From the first week with data on (the "body"), x is sampled centred: x = m + w, where w
    (``escalation_deviation``, projected to sum to zero over the body) is pinned week by week
    by the data, and m (the body's mean, ``escalation_level``) is scaled by its prior sd given
    rho. The likelihood sees only w, since the intercepts are taken at m. The weeks before the
    first with data have no likelihood; they are sampled non-centred, backwards from it
    (``gap_innovation``; a stationary AR(1) reversed in time is the same AR(1)). With no data at
    all, the whole path is that non-centred AR(1).

    The density is the AR(1)'s, with the Jacobians: unit for the non-centred weeks, the
    constant of the body's orthogonal projection, and m's scale. The placeholder N(0, 1)s on
    ``escalation_level`` and on the projected part of ``escalation_deviation`` are taken back
    out; the deviation's other directions (the body's sum, the weeks outside it) keep theirs and
    never reach x.
    """
    count = pt.cumsum(seen)
    any_data = count[-1] > 0
    body = pt.gt(count, 0)
    first = pt.eq(count, 1) * seen  # the first week with data
    lead = (1 - body) * any_data  # the weeks before it
    n_body = pt.maximum(body.sum(), 1)
    z = pm.Normal("escalation_deviation", 0.0, 1.0, dims="week")
    e = pm.Normal("gap_innovation", 0.0, 1.0, dims="week")
    level = pm.Normal("escalation_level", 0.0, 1.0)
    w = body * (z - (body * z).sum() / n_body)
    # the sd of m given w under the AR(1) prior on the body
    scale = 1 / pt.sqrt((1 - rho**2) + (n_body - 1) * (1 - rho) ** 2)
    m = level * scale
    x_first = (first * (m + w)).sum()
    lag = (lead.sum() - pt.arange(n_weeks)) * lead  # weeks to the first with data
    backwards = _ar1(rho, ((1 - body) * e)[::-1], n_weeks)[::-1]
    x = body * (m + w) + lead * rho**lag * x_first + (1 - body) * backwards
    innovation = pt.switch(first, x * pt.sqrt(1 - rho**2),
                           x - rho * pt.concatenate([pt.zeros(1), x[:-1]]))
    pm.Potential("escalation_prior",
                 (body * -0.5 * innovation**2).sum() + 0.5 * (w**2).sum()
                 + pt.switch(any_data, 0.5 * pt.log1p(-rho**2) + pt.log(scale)
                             + 0.5 * level**2, 0.0))
    return x, pt.switch(any_data, m, x.mean())


def _ar1(rho, e, n_weeks: int):
    """x_t = rho * x_{t-1} + u_t with u = s * e, x_0 = e_0 / sqrt(1 - rho^2): the AR(1), in blocks.

    The T weeks are cut into B blocks of W ~ sqrt(T) weeks. Within a block, the path from a zero
    start is a small W x W Toeplitz product, L[t, j] = rho^(t - j); the value carried into block
    b is an AR(1) over the blocks' ends with coefficient rho^W (a B x B Toeplitz product), and it
    decays as rho^(t + 1) within the block. Exact; about 2 T^1.5 work instead of the dense T x T
    product's T^2, with no scan: 80 -> 14 us per value and gradient at T = 156. (A doubling
    prefix scan is as fast to run, but PyTensor took 50 s instead of 12 s to compile it inside
    nutpie.)
    """
    # x_0 from the stationary distribution N(0, 1 / (1 - rho^2)); later innovations have sd 1
    scale = pt.concatenate([1 / pt.sqrt(1 - rho**2)[None], pt.ones(n_weeks - 1)])
    width = math.ceil(math.sqrt(n_weeks))
    blocks = -(-n_weeks // width)
    u = pt.concatenate([scale * e, pt.zeros(blocks * width - n_weeks)])
    powers = rho ** np.arange(width + 1, dtype="float64")  # rho^0 .. rho^W
    local = u.reshape((blocks, width)) @ _toeplitz(powers, width).T  # (block, week in block)
    carried = _toeplitz(powers[width] ** np.arange(blocks, dtype="float64"), blocks,
                        lag=1) @ local[:, -1]  # (block,): the path's value before each block
    return (local + carried[:, None] * powers[1:]).reshape((-1,))[:n_weeks]


def _toeplitz(powers, n: int, lag: int = 0):
    """The n x n lower-triangular matrix M[t, j] = powers[t - j - lag] for t - j >= lag, else 0."""
    gap = np.subtract.outer(np.arange(n), np.arange(n)) - lag
    return powers[np.maximum(gap, 0)] * (gap >= 0)
