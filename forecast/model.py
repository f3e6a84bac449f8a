"""The scenario model: one shared escalation level, indicator series, and scenario channels under
one decision to retaliate.

Weeks t = 0..T-1 end at the as-of date; scenarios s have resolution rules; indicators k are
precursor series. A week is *seen* when the feed has any event in it; a week without one is a gap
in the data, not a quiet week.

Escalation (shared by every channel; one decision in Moscow drives them all), an AR(1) with unit
innovations and a stationary start, defined on the seen weeks only::

    x_0 ~ N(0, 1 / (1 - rho^2)),   x_t | x_(t-g) ~ N(rho^g x_(t-g), (1 - rho^(2g)) / (1 - rho^2))

where g is the number of weeks since the previous seen week: the weeks between are integrated
out in closed form, so a gap adds no parameter (see `_escalation`).

Indicators (negative binomial with the week's event volume E_t as exposure)::

    y_kt ~ NegBin(mean = E_t / mean(E) * exp(mu_k + lambda_k * x_t), overdispersion phi_k)

The loadings are per unit of x: per stationary sd of x the prior's worlds were more plausible
(with per-unit loadings a persistent path can make thousands of indicator events a week), but
rho mixed worse (validation/README.md). The validation's worlds are drawn from these priors and
rejected when implausible (`forecast.simulate.plausible`).

Retaliation and the scenario channels. R = 1 if Moscow retaliates at all, P(R = 1) = q
(``retaliation``); given R = 1, channel s is used (z_s = 1) with probability pi_s (``channel``);
given R = 0 no channel is. An event of channel s is a Poisson process with weekly rate
``exp(beta_s + gamma_s x_t)``. With R and z marginalised, ``L_s`` the Poisson log-likelihood of s's
counts and ``H_s`` its cumulative rate::

    P(data) = q * prod_s [pi_s exp(L_s) + (1 - pi_s) 1(no event of s)] + (1 - q) 1(no event)

So quiet weeks are evidence (they lower pi_s and q), an event is decisive for its channel (z_s = 1,
R = 1) and raises every other channel through R. The marginal "never" fraction of s is
``1 - q pi_s``; a union's channels are dependent through R and x, and forecasts of unions use
that dependence (`forecast.forecasts`).

Counter-scenarios (``counter`` in the series, `forecast.scenarios`): a scenario the document rules
out, not one of its forms of retaliation (direct military action). Its switch z_c is its own,
outside R (P(data) gains a factor ``pi_c exp(L_c) + (1 - pi_c) 1(no event of c)``, and the
product above runs over the forms only), so the document's "Yes" does not raise it; and its rate
and switch have their own priors instead of the forms' pooled ones, since what the forms have in
common says little about the use of force. Those priors come from a reference class: Russia used
force against a post-Soviet neighbour three times in some 30 years among about 14 neighbours
(Georgia 2008, Ukraine 2014 and 2022), about 1% per neighbour per two years; a rupture makes it
several times likelier. With ``counter_level`` N(-6.5, 1) and ``counter_channel`` N(-1, 1) on the
logit, P(direct military action within 24 months) is about 6% before any event, 90% between
0.5% and 20%.

Partial pooling (each scenario alone has a handful of events)::

    beta_s  = scenario_level_mean + scenario_level_sd * offset_s    (at x = m, see below)
    log gamma_s = log_gamma_mean + 0.5 * offset_s
    logit pi_s = channel_logit_mean + channel_logit_sd * offset_s

all non-centred. The loadings' spread is fixed (0.5: a factor of about 2.7 either way at 2 sd)
and only their mean learned: the escalation effect of a scenario with a handful of events is too
weakly identified to learn a spread from six of them (a learned one made divergences,
validation/README.md). The priors are set for plausible weekly counts (`priors check` shows the
prior predictive): a channel that is on fires between about once a week and once in 20 years
(95%), an indicator counts about 0.02 to 50 events in an average week.

History before the fitted window. The sampler fits the last `history_weeks` weeks; every stored
event before them still counts. Each scenario's events before the window and the number of seen
weeks before it enter as one Poisson term at the stationary level x = 0
(``scenario_events_before`` and ``weeks_before`` in the series): an old event keeps a channel
known to be on, and old quiet weeks keep counting as quiet.

Claims (see `forecast.priors`): claim j of a document published on day d, on scenario s (or a
union U) at horizon h weeks, is about the weeks (d, d + h]: ``log Beta(P_j | a_j, b_j)`` with

    P_j = q (1 - prod_(s in U) (1 - pi_s (1 - exp(-H_sj)))),   P_j(ever) = q (1 - prod (1 - pi_s))

and H_sj the cumulative rate of s over those weeks: along the fitted path x_t on the seen weeks
the window covers, and at the stationary level x = 0 on the others (before the data, in gaps, in
the future). So a claim constrains the hazard *of its own weeks*: when those weeks have data, the
escalation path can carry what the claim says about them and the long-run rate is free to differ
("not today" is about the weeks after publication, not every month). A document's claims together
are worth a few observations, not years of weeks (the evidence budget, `forecast.priors`).

Choices that depart from the plain formulation, and why:

- **The innovations have sd 1** (sigma = 1) and x_0 starts from the stationary distribution.
  sigma is not identified apart from the loadings: (sigma, lambda, gamma) -> (a*sigma, lambda/a,
  gamma/a) leaves the likelihood unchanged, so one scale must be fixed. Fixing the *stationary*
  variance instead (sigma = sqrt(1 - rho^2)) put a funnel between rho and the innovations as
  rho -> 1.
- **Intercepts are sampled at the mean escalation over the seen weeks**, m: the model samples
  ``indicator_level_k = mu_k + lambda_k * m`` and ``scenario_level_s = beta_s + gamma_s * m``
  (mu and beta are deterministics). The likelihood cannot tell a higher x from lower intercepts,
  so in the original coordinates the sampler crawls along that ridge.
- **A busy indicator's loading is sampled relative to the path's spread** (`_loadings`): the
  data pin lambda_k x_t, and in plain log lambda the sampler crawled along the ridge between the
  loading and the path's scale (the fit's smallest bulk ESS); the posterior is the same.
- **The path is centred on the seen weeks, and gaps are integrated out** (`_escalation`).
  Non-centred, a small change of rho moves the whole path (about 120 leapfrog steps per draw at
  target_accept 0.995, divergences at high rho). Centred, each week is pinned by its own data.
  A week with no data has no likelihood to pin it: sampled centred it mixed slowly (sparse real
  data failed the gate on the escalation in such a week), so it is no parameter at all; the
  AR(1) over a gap of g weeks is one Gaussian transition.
  The ``escalation`` deterministic is NaN in unseen weeks, and the gate does not judge it there.
- **Sampler**: nutpie with a diagonal mass matrix, target_accept 0.95, 2 x 2000 draws after 1000
  tuning steps (`forecast.fit`); a fit that fails the gate is refitted with a low-rank mass matrix,
  then with chains twice as long (`forecast.fit.sample_gated`).
- **Likelihood terms that are constants of the data are left out** (log n! and log y!), and the
  negative binomial is written out (`negative_binomial_logp`): the log-posterior differs from
  PyMC's by a constant, which changes nothing in the sampling.
- **Exposure is normalised** by its mean over the seen weeks, so that mu_k is the log of the
  indicator's weekly count in an average week: scale-free, and its prior need not know how big
  the feed is.
- **No GDELT false-positive rate yet**: rules require a minimum number of sources and the store
  deduplicates rows; a per-rule false-positive rate is a planned extension.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import xarray as xr

#: Free variables the diagnostics gate does not judge: placeholders that reach the model only
#: through a deterministic the gate judges instead (``escalation``, on the seen weeks).
UNJUDGED = frozenset({"escalation_deviation", "escalation_level"})
#: Deterministics the gate judges: the escalation path, and the loadings (sampled through
#: ``log_loading``, see `_loadings`).
JUDGED = ("escalation", "lambda")
#: An indicator with at least this many events in an average seen week pins its loading times
#: the path, and its loading is sampled relative to the path's spread (`_loadings`).
PINNED_EVENTS = 1.0


#: Added to every overdispersion: the written-out negative binomial subtracts log-gamma values of
#: 1 / phi, and as phi -> 0 their rounding error grows without bound (it trapped chains on sparse
#: real data, validation/README.md). With it, 1 / phi <= 1e4 and the error stays below 1e-10; an
#: overdispersion of 1e-4 is a Poisson for any count seen here.
PHI_FLOOR = 1e-4


@dataclass(frozen=True)
class ClaimTerm:
    """A claim as the model sees it: which scenarios' union, which weeks, which Beta."""

    id: str
    members: tuple[str, ...]  # one scenario, or a union's members
    weeks: float | None  # None: ever
    alpha: float
    beta: float
    start: dt.date | None = None  # the horizon counts from this day; None: after the data


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of the weakly informative priors (the claims add to these)."""

    rho: tuple[float, float] = (8.0, 2.0)  # Beta: persistent escalation, mean 0.8
    mu_sd: float = 2.0  # Normal(0, .) on log weekly indicator count in an average week
    lambda_sd: float = 1.0  # HalfNormal: indicator loading on escalation
    phi_sd: float = 1.0  # HalfNormal: NegBin overdispersion 1/alpha (0 is Poisson)
    level_mu: float = -4.5  # Normal(., level_mu_sd): mean log weekly rate of a channel that is on
    level_mu_sd: float = 1.0
    level_sd: float = 0.7  # HalfNormal: spread of the scenarios' log rates around their mean
    log_gamma_mu: float = float(np.log(0.3))  # Normal(., 0.7): scenarios' loading, log scale
    log_gamma_sd: float = 0.5  # fixed spread of the log loadings around their pooled mean
    retaliation: tuple[float, float] = (1.0, 1.0)  # Beta: P(Moscow retaliates at all)
    channel_mu_sd: float = 1.5  # Normal(0, .): mean logit P(channel on | retaliation)
    channel_sd: float = 1.0  # HalfNormal: spread of those logits
    escalation: bool = True  # False: gamma = 0 and no x (the closed-form special cases)
    never_fraction: bool = True  # False: every channel on (q = pi = 1)
    beta_gamma_prior: tuple[float, float] | None = None  # independent Gamma(a, b) on exp(beta)
    counter_level: tuple[float, float] = (-6.5, 1.0)  # Normal: a counter-scenario's log rate
    counter_channel: tuple[float, float] = (-1.0, 1.0)  # Normal: the logit of its switch


def build_model(series: xr.Dataset, claims: Sequence[ClaimTerm] = (),
                config: ModelConfig = ModelConfig()) -> pm.Model:
    """The PyMC model of `series` (see `forecast.series`) with the claims as evidence.

    Parameters
    ----------
    series
        ``scenario_events (scenario, week)``, ``indicator_events (indicator, week)``,
        ``volume (week)`` and optionally ``scenario_events_before (scenario)`` and
        ``weeks_before``; the indicator dimension may be empty.
    claims
        Claims; every member must be a scenario of `series`.
    config
        Prior hyper-parameters and the special-case switches.
    """
    scenarios = list(series.scenario.values)
    indicators = list(series.indicator.values) if "indicator" in series.dims else []
    n_scenarios, n_weeks = len(scenarios), series.sizes["week"]
    coords = {"scenario": scenarios, "indicator": indicators, "week": series.week.values,
              "claim": [c.id for c in claims]}
    values = model_data(series, claims)
    with pm.Model(coords=coords) as model:
        data = {name: pm.Data(name, value) for name, value in values.items()}
        n, seen = data["scenario_events"], data["seen"]
        if config.escalation:
            rho = pm.Beta("rho", *config.rho)
            x, x_mean = _escalation(rho, data)
            pm.Deterministic("escalation", pt.switch(seen > 0, x, np.nan), dims="week")
        else:
            x, x_mean = pt.zeros(n_weeks), 0.0
        if indicators and config.escalation:
            y = data["indicator_events"]
            # per unit of x (module docs)
            lam = _loadings(config, x, x_mean, seen, data["indicator_pinned"])
            level = pm.Normal("indicator_level", 0.0, config.mu_sd, dims="indicator")
            mu = pm.Deterministic("mu", level - lam * x_mean, dims="indicator")
            phi = pm.HalfNormal("phi", config.phi_sd, dims="indicator")
            log_mean = data["log_exposure"] + mu[:, None] + lam[:, None] * x  # (indicator, week)
            pm.Potential("indicator_likelihood",
                         negative_binomial_logp(y, log_mean, 1 / (phi + PHI_FLOOR), seen))

        counter = data["counter"]  # 1 for a counter-scenario (module docs)
        beta, gamma = _scenario_rates(config, n_scenarios, x_mean, counter)
        log_rate = beta[:, None] + gamma[:, None] * x  # (scenario, week)
        if config.never_fraction:
            q = pm.Beta("retaliation", *config.retaliation)
            offset = pm.Normal("channel_offset", 0.0, 1.0, dims="scenario")
            own_mean, own_sd = config.counter_channel
            logit = pt.switch(counter > 0, own_mean + own_sd * offset,
                              pm.Normal("channel_logit_mean", 0.0, config.channel_mu_sd)
                              + pm.HalfNormal("channel_logit_sd", config.channel_sd) * offset)
            channel = pm.Deterministic("channel", pm.math.sigmoid(logit), dims="scenario")
            pm.Deterministic("never", 1 - pt.switch(counter > 0, 1.0, q) * channel,
                             dims="scenario")
            # log pi and log(1 - pi) from the logit: stable where the sigmoid rounds to 0 or 1
            log_channel, log_no_channel = -pt.softplus(-logit), -pt.softplus(logit)
        else:
            q, channel = pt.constant(1.0), pt.ones(n_scenarios)

        # the Poisson log-likelihood without log(n!), a constant of the data; the weeks before
        # the window at the stationary level
        events_before, weeks_before = data["scenario_events_before"], data["weeks_before"]
        poisson = (((n * log_rate - pt.exp(log_rate)) * seen).sum(axis=1)
                   + events_before * beta - weeks_before * pt.exp(beta))
        happened = (n.sum(axis=1) + events_before) > 0
        if config.never_fraction:
            used = log_channel + poisson
            per_channel = pt.switch(happened, used, pt.logaddexp(used, log_no_channel))
            form = 1 - counter
            retaliated = pt.log(q) + (form * per_channel).sum()
            pm.Potential("scenario_likelihood", (counter * per_channel).sum() + pt.switch(
                (form * happened).any(), retaliated, pt.logaddexp(retaliated, pt.log1p(-q))))
        else:
            pm.Potential("scenario_likelihood", poisson.sum())

        if claims:
            p = pt.clip(claim_probability(q, channel, pt.exp(log_rate), pt.exp(beta), data),
                        1e-12, 1 - 1e-12)
            alpha = np.array([c.alpha for c in claims])
            beta_ = np.array([c.beta for c in claims])
            logp = (alpha - 1) * pt.log(p) + (beta_ - 1) * pt.log1p(-p)
            pm.Potential("claims", logp.sum())
    return model


def _loadings(config: ModelConfig, x, x_mean, seen, pinned):
    """The indicators' loadings lambda ~ HalfNormal(lambda_sd), sampled in coordinates where the
    data do not make a ridge: ``log_loading_k = log lambda_k + pinned_k log s``, with s the
    spread (root mean square) of the escalation path over the seen weeks.

    A busy indicator pins lambda_k x_t, not lambda_k and the path's scale apart: sampled as
    log lambda, the busiest indicator's correlated at -0.76 with log s on the example, a ridge
    a diagonal mass matrix crosses slowly (its bulk ESS was the fit's smallest). Shifted by
    log s, a move of the path's scale leaves its product alone. An indicator with few events
    says little about lambda_k x_t, and there the shift made the ridge instead (75 divergences on
    sparse real data when every loading was shifted), so only indicators with at least
    `PINNED_EVENTS` events in an average seen week are (``indicator_pinned``). For fixed x the
    shift is a constant, so the Jacobian is lambda's own (the ``+ log lambda`` of a log
    transform) and the posterior is the same; only the sampler's coordinates change. The 1e-6
    keeps s > 0 when the path is flat (one seen week)."""
    spread = pt.sqrt((seen * (x - x_mean) ** 2).sum() / pt.maximum(seen.sum(), 1) + 1e-6)
    coordinate = pm.Flat("log_loading", dims="indicator")
    lam = pm.Deterministic("lambda", pt.exp(coordinate - pinned * pt.log(spread)),
                           dims="indicator")
    pm.Potential("lambda_prior", pm.logp(pm.HalfNormal.dist(config.lambda_sd), lam).sum()
                 + pt.log(lam).sum())
    return lam


def _scenario_rates(config: ModelConfig, n_scenarios: int, x_mean, counter):
    """beta (log weekly rate at x = 0) and gamma (loading on escalation) of every scenario; a
    counter-scenario's level has its own prior, the forms' are pooled."""
    if config.escalation:
        offset = pm.Normal("gamma_offset", 0.0, 1.0, dims="scenario")
        gamma = pm.Deterministic("gamma", pt.exp(
            pm.Normal("log_gamma_mean", config.log_gamma_mu, 0.7)
            + config.log_gamma_sd * offset), dims="scenario")
    else:
        gamma = pt.zeros(n_scenarios)
    if config.beta_gamma_prior is not None:
        rate = pm.Gamma("rate", *config.beta_gamma_prior, dims="scenario")
        return pm.Deterministic("beta", pt.log(rate), dims="scenario"), gamma
    offset = pm.Normal("scenario_level_offset", 0.0, 1.0, dims="scenario")
    own_mean, own_sd = config.counter_level
    level = pm.Deterministic("scenario_level", pt.switch(
        counter > 0, own_mean + own_sd * offset,
        pm.Normal("scenario_level_mean", config.level_mu, config.level_mu_sd)
        + pm.HalfNormal("scenario_level_sd", config.level_sd) * offset), dims="scenario")
    return pm.Deterministic("beta", level - gamma * x_mean, dims="scenario"), gamma


def claim_probability(q, channel, rate, rate_at_zero, data):
    """Each claim's probability (module docs), ``(..., claim)``; numpy or pytensor.

    ``q (...)``, ``channel (..., scenario)``, ``rate (..., scenario, week)`` along the fitted
    path and ``rate_at_zero (..., scenario)`` at x = 0, with any leading (sample) dimensions;
    `data` holds ``claim_members``, ``claim_ever``, ``claim_overlap``, ``claim_outside`` and
    ``counter`` (`claim_windows`). A counter-scenario's switch is outside R::

        P_j = 1 - prod_(c in U) (1 - on_c) * (1 - q + q prod_(s in U, a form) (1 - on_s))
    """
    lib = pt if isinstance(rate, pt.TensorVariable) else np
    hazard = (lib.swapaxes(rate @ data["claim_overlap"].T, -1, -2)
              + data["claim_outside"][:, None] * rate_at_zero[..., None, :])  # (..., claim, s)
    fires = lib.where(data["claim_ever"][:, None] > 0, 1.0, -lib.expm1(-hazard))
    # at most 1 - 1e-12: a channel that is surely on and surely fires has a finite log
    on = lib.minimum(channel[..., None, :] * fires, 1 - 1e-12)
    return union_probability(q[..., None], data["claim_members"] * lib.log1p(-on),
                             data["counter"])


def union_probability(q, none, counter):
    """P(some member fires) from each member's log P(it does not) ``none (..., member)``, with
    ``q`` P(R = 1) ``(...)`` broadcast against the sum over members and ``counter (member,)``
    marking the counter-scenarios, whose switches are outside R (module docs)::

        P = 1 - prod_(c counter) (1 - p_c) * (1 - q + q prod_(s a form) (1 - p_s))

    numpy or pytensor; ``none`` may be -inf (a member that surely fires)."""
    lib = pt if isinstance(none, pt.TensorVariable) else np
    no_form = lib.where(counter > 0, 0.0, none).sum(axis=-1)
    no_counter = lib.where(counter > 0, none, 0.0).sum(axis=-1)
    return -lib.expm1(no_counter) - q * lib.exp(no_counter) * lib.expm1(no_form)


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


def model_data(series: xr.Dataset, claims: Sequence[ClaimTerm] = ()) -> dict[str, np.ndarray]:
    """The `pm.Data` values `build_model` takes from `series` and the claims, for swapping in new
    data of the same shapes (``nutpie`` ``with_data``) without rebuilding the model.

    Weeks with no event in the feed (``seen`` 0) are left out of the likelihood; ``previous`` and
    ``gap`` give each seen week the previous seen week and the weeks since it (1 where none).
    """
    volume = series.volume.values.astype("float64")
    seen = volume > 0
    log_exposure = np.zeros_like(volume)
    if seen.any():
        log_exposure[seen] = np.log(volume[seen] / volume[seen].mean())
    index = np.flatnonzero(seen)
    first, gap = np.zeros_like(volume), np.ones_like(volume)
    previous = np.zeros(len(volume), "int64")
    if index.size:
        first[index[0]] = 1.0
        previous[index[1:]] = index[:-1]
        gap[index[1:]] = np.diff(index)
    n_scenarios = series.sizes["scenario"]
    before = (series.scenario_events_before.values if "scenario_events_before" in series
              else np.zeros(n_scenarios))
    data = {"scenario_events": series.scenario_events.values.astype("float64"),
            "counter": counter_scenarios(series).astype("float64"),
            "seen": seen.astype("float64"), "first": first, "previous": previous, "gap": gap,
            "scenario_events_before": np.asarray(before, dtype="float64"),
            "weeks_before": np.asarray(float(series.get("weeks_before", 0)))}
    if series.sizes.get("indicator"):
        data["indicator_events"] = series.indicator_events.values.astype("float64")
        data["log_exposure"] = log_exposure
        events = data["indicator_events"][:, seen]
        busy = events.mean(axis=1) >= PINNED_EVENTS if seen.any() else np.zeros(len(events), bool)
        data["indicator_pinned"] = busy.astype("float64")
    if claims:
        data |= claim_windows(series, claims)
    return data


def claim_windows(series: xr.Dataset, claims: Sequence[ClaimTerm]) -> dict[str, np.ndarray]:
    """Where each claim's weeks fall: ``claim_overlap (claim, week)``, the part of each seen
    week inside the claim's window; ``claim_outside (claim,)``, the window's weeks not covered by
    seen weeks (taken at x = 0); ``claim_ever`` and ``claim_members (claim, scenario)``."""
    scenarios = list(series.scenario.values)
    ends = series.week.values.astype("datetime64[D]")
    seen = series.volume.values > 0
    overlap = np.zeros((len(claims), len(ends)))
    outside = np.zeros(len(claims))
    members = np.zeros((len(claims), len(scenarios)))
    for j, c in enumerate(claims):
        members[j, [scenarios.index(m) for m in c.members]] = 1.0
        if c.weeks is None:
            continue
        if c.start is not None:
            low = np.datetime64(c.start, "D")
            high = low + np.timedelta64(round(c.weeks * 7), "D")
            days = np.clip(np.minimum(ends, high) - np.maximum(ends - np.timedelta64(7, "D"), low),
                           np.timedelta64(0, "D"), None)
            overlap[j] = days.astype("float64") / 7 * seen
        outside[j] = max(c.weeks - overlap[j].sum(), 0.0)
    ever = np.array([c.weeks is None for c in claims], dtype="float64")
    return {"claim_overlap": overlap, "claim_outside": outside, "claim_ever": ever,
            "claim_members": members, "counter": counter_scenarios(series).astype("float64")}


def counter_scenarios(series: xr.Dataset) -> np.ndarray:
    """Which scenarios of `series` are counter-scenarios, ``(scenario,)`` bool (none in a series
    without the flag)."""
    if "counter" not in series:
        return np.zeros(series.sizes["scenario"], dtype=bool)
    return series.counter.values.astype(bool)


def _escalation(rho, data):
    """The AR(1) escalation path on the seen weeks (0 elsewhere) and its mean m over them,
    parametrised for NUTS with a diagonal mass matrix.

    x = m + w on the seen weeks: w (``escalation_deviation``, projected to sum to zero over
    them) is pinned week by week by the data, and m (``escalation_level``) is scaled by its prior
    sd given rho and the gaps. The likelihood sees only w, since the intercepts are taken at m.

    The density is the AR(1)'s with the gaps integrated out, plus the Jacobian: the constant of
    the orthogonal projection and m's scale. The placeholder N(0, 1)s on ``escalation_level``
    and on the projected part of ``escalation_deviation`` are taken back out; the deviation's
    other directions (the sum over seen weeks, the unseen weeks) keep theirs and never reach x.
    With no seen week, x is 0 and m is 0.
    """
    seen, first, gap = data["seen"], data["first"], data["gap"]
    later = seen * (1 - first)
    n_seen = seen.sum()
    any_data = n_seen > 0
    z = pm.Normal("escalation_deviation", 0.0, 1.0, dims="week")
    level = pm.Normal("escalation_level", 0.0, 1.0)
    w = seen * (z - (seen * z).sum() / pt.maximum(n_seen, 1))
    decay = rho**gap
    # the prior precision of the mean level: 1' Q 1 for the AR(1)'s precision Q on the seen weeks
    scale = 1 / pt.sqrt((1 - rho**2) * (1 + (later * (1 - decay) / (1 + decay)).sum()))
    m = level * scale
    x = seen * (m + w)
    variance = (1 - decay**2) / (1 - rho**2)  # of x_t given the previous seen week's
    innovation = (first * x * pt.sqrt(1 - rho**2)
                  + later * (x - decay * x[data["previous"]]) / pt.sqrt(variance))
    pm.Potential("escalation_prior",
                 -0.5 * (innovation**2).sum() - 0.5 * (later * pt.log(variance)).sum()
                 + 0.5 * (w**2).sum()
                 + pt.switch(any_data, 0.5 * pt.log1p(-rho**2) + pt.log(scale)
                             + 0.5 * level**2, 0.0))
    return x, pt.switch(any_data, m, 0.0)
