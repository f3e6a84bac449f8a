"""P(YES by deadline) for every question, from posterior draws, by simulating escalation forward.

For a question on scenario s (or a union U of scenarios) opened on day o with deadline D, at
as-of A:

- The question's `Verdict` as of A (`forecast.resolution`, one function for every command):
  YES or NO (then P = 1 or 0), annulled (forecast as if open, and marked), or "awaiting data":
  the deadline has passed without a qualifying event, but the data miss some days of the window;
  then P is the chance that an event happened on those days, taken as the model's forward
  hazard over as many days from A (an approximation: the rate of those past days is the one
  projected from A).
- Otherwise, per posterior draw (notation of `forecast.model`): whether Moscow retaliates and
  whether each channel is on, given every stored event (the fitted weeks and the history before
  them). A channel with an event is on, and then so is R. Otherwise, with H_s the draw's
  cumulative rate over every seen week::

      P(z_s = 1 | R = 1, quiet) = pi_s e^(-H_s) / (pi_s e^(-H_s) + 1 - pi_s)
      P(R = 1 | quiet everywhere) = q prod_s (pi_s e^(-H_s) + 1 - pi_s) / (that + 1 - q)

  R is judged from the forms of retaliation only: a counter-scenario's switch is outside it
  (`forecast.model`), and its P(z_c = 1 | quiet) has the same form without R. x is simulated
  forward from its last seen week, and, with F_s the rate summed over the part of (max(o, A), D]
  still to come and p_s = P(z_s | R) (1 - exp(-F_s))::

      P = 1 - prod_(c in U) (1 - p_c) * (1 - P(R) + P(R) prod_(s in U, a form) (1 - p_s))

  Members are dependent through R and x, and independent given them. Week fractions count by
  days, so a deadline mid-week gets the matching part of that week.
- Report the mean of P over draws and its 5% and 95% quantiles (a 90% credible interval).

How much rests on the document: the same forecasts without the claims, from the same draws
reweighted by ``1 / p(claims | draw)`` (the claims enter the model as one factor, so this turns
the posterior with them into the one without them) with Pareto-smoothed importance sampling
(Vehtari et al., *Pareto smoothed importance sampling*, JMLR 25, 2024). Its Pareto k says whether
the reweighting can be trusted (k <= 0.7); beyond that the caller fits the model without the
claims instead (`forecast.update`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import xarray as xr
from arviz_stats.base import array_stats

from forecast.model import (
    ClaimTerm,
    claim_probability,
    claim_windows,
    counter_scenarios,
    union_probability,
)
from forecast.scenarios import Verdict

INTERVAL = (0.05, 0.95)
#: Pareto k above which importance weights are not trusted (Vehtari et al. 2024, section 3.2)
PARETO_K_MAX = 0.7


@dataclass(frozen=True)
class QuestionSpec:
    id: str
    scenario: str
    members: tuple[str, ...]  # the scenario itself, or a union's members
    opened: dt.date
    deadline: dt.date


def draws_of(posterior: xr.Dataset, name: str) -> np.ndarray:
    """A posterior variable's draws with chains pooled: ``(sample, ...)``."""
    return posterior[name].stack(sample=("chain", "draw")).transpose("sample", ...).values


def fitted_rates(posterior: xr.Dataset, n_weeks: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per draw: ``beta`` and ``gamma`` ``(sample, scenario)``, the escalation path ``(sample,
    week)`` (0 in weeks without data, and without escalation) and the weekly rates along it
    ``(sample, scenario, week)``."""
    beta = draws_of(posterior, "beta")
    if "escalation" not in posterior:
        x = np.zeros((len(beta), n_weeks))
        return beta, np.zeros_like(beta), x, np.repeat(np.exp(beta)[:, :, None], n_weeks, 2)
    gamma, x = draws_of(posterior, "gamma"), np.nan_to_num(draws_of(posterior, "escalation"))
    return beta, gamma, x, np.exp(beta[:, :, None] + gamma[:, :, None] * x[:, None, :])


def claim_draws(posterior: xr.Dataset, series: xr.Dataset,
                claims: Sequence[ClaimTerm]) -> np.ndarray:
    """Each claim's probability in every draw ``(sample, claim)``, as the model computes it
    (`forecast.model.claim_probability`) along the fitted path."""
    beta, _, _, rate = fitted_rates(posterior, series.sizes["week"])
    return claim_probability(draws_of(posterior, "retaliation"), draws_of(posterior, "channel"),
                             rate, np.exp(beta), claim_windows(series, claims))


def claims_log_weights(posterior: xr.Dataset, series: xr.Dataset,
                       claims: Sequence[ClaimTerm]) -> tuple[np.ndarray, float]:
    """PSIS log weights ``(sample,)``, normalised, that turn draws of the posterior with the
    `claims` into draws of the one without them, and their Pareto k.

    The raw log weight of a draw is minus the claims' log-density at it, ``-sum_j log
    Beta(P_j | a_j, b_j)`` (`forecast.model`), up to a constant."""
    p = np.clip(claim_draws(posterior, series, claims), 1e-12, 1 - 1e-12)
    a, b = np.array([c.alpha for c in claims]), np.array([c.beta for c in claims])
    log_density = ((a - 1) * np.log(p) + (b - 1) * np.log1p(-p)).sum(axis=1)
    # psislw takes the log-density to divide out (the LOO convention: weights 1 / p)
    log_weights, k = array_stats.psislw(log_density - log_density.max())
    return log_weights - np.logaddexp.reduce(log_weights), float(k)


def forecast_questions(posterior: xr.Dataset, series: xr.Dataset,
                       questions: Sequence[QuestionSpec], as_of: dt.date,
                       resolved: Mapping[str, Verdict], *, seed: int,
                       claims: Sequence[ClaimTerm] = ()) -> xr.Dataset:
    """Forecasts of `questions` as an ``xarray.Dataset`` over the ``question`` dimension.

    Parameters
    ----------
    posterior
        Posterior draws of `forecast.model` (``beta`` and, when the model has them, ``rho``,
        ``escalation``, ``gamma``, ``retaliation``, ``channel``).
    series
        The weekly series the posterior was fitted to.
    resolved
        Question id -> `Verdict` as of `as_of` of every question that is not open; a question
        whose deadline has passed must have one.
    seed
        Seeds the forward simulation of escalation.
    claims
        The claims the posterior was fitted with; when given, also the forecasts without them.

    Returns
    -------
    Dataset with ``probability``, ``low``, ``high`` (90% interval), ``status`` ("open", "yes",
    "no", "annulled") and ``draws`` (question, sample): the per-draw probabilities; with
    `claims`, ``without_claims`` (question) and the reweighting's ``claims_pareto_k`` in attrs.
    """
    windows = {}  # question -> (first day, last day) still to forecast
    for q in questions:
        v = resolved.get(q.id)
        if v is None and q.deadline <= as_of:
            raise ValueError(f"question {q.id}: its deadline has passed, so its verdict "
                             "(forecast.resolution) is needed")
        if v is None or v.state == "annulled":
            windows[q.id] = (max(q.opened - dt.timedelta(days=1), as_of), q.deadline)
        elif v.state == "awaiting data":
            windows[q.id] = (as_of, as_of + dt.timedelta(days=v.missing_days))
    scenarios = list(series.scenario.values)
    last = max((end for _, end in windows.values()), default=as_of)
    p_retaliation, p_on, rate = _forward(posterior, series, as_of, last, seed)
    counter = counter_scenarios(series)
    n_samples = p_on.shape[0]
    starts = np.array([as_of + dt.timedelta(days=7 * h) for h in range(rate.shape[2])])

    probs, status = [], []
    for q in questions:
        state = resolved[q.id].state if q.id in resolved else "open"
        if q.id not in windows:  # yes or no
            probs.append(np.full(n_samples, 1.0 if state == "yes" else 0.0))
            status.append(state)
            continue
        overlap = np.array([_overlap_days(s, *windows[q.id]) / 7 for s in starts])
        members = [scenarios.index(m) for m in q.members]
        hazard = (rate[:, members, :] * overlap).sum(axis=2)  # (sample, member)
        with np.errstate(divide="ignore"):  # log 0 = -inf: a member that surely fires
            none = np.log1p(p_on[:, members] * np.expm1(-hazard))  # (sample, member)
        probs.append(union_probability(p_retaliation, none, counter[members]))
        status.append(state)
    draws = np.stack(probs) if probs else np.zeros((0, n_samples))
    low, high = np.quantile(draws, INTERVAL, axis=1) if probs else (draws[:, 0], draws[:, 0])
    result = xr.Dataset(
        {
            "probability": ("question", draws.mean(axis=1)),
            "low": ("question", low),
            "high": ("question", high),
            "status": ("question", np.array(status, dtype=object)),
            "draws": (("question", "sample"), draws),
            "scenario": ("question", np.array([q.scenario for q in questions], dtype=object)),
            "deadline": ("question", np.array([q.deadline for q in questions],
                                              dtype="datetime64[D]")),
        },
        coords={"question": [q.id for q in questions]},
    )
    if claims:
        log_weights, k = claims_log_weights(posterior, series, claims)
        result["without_claims"] = ("question", np.clip(draws @ np.exp(log_weights), 0, 1))
        result.attrs["claims_pareto_k"] = k
    return result


def _forward(posterior: xr.Dataset, series: xr.Dataset, as_of: dt.date, until: dt.date,
             seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per draw: P(R = 1 | data) ``(sample,)``, P(channel on | R = 1, data) ``(sample,
    scenario)`` (a counter-scenario's: P(on | data)), and the weekly rates of the weeks from
    `as_of` to `until` ``(sample, scenario, week)`` along an escalation path simulated from the
    last seen week."""
    n_ahead = max(int(np.ceil((until - as_of).days / 7)), 1)
    rng = np.random.default_rng(seed)
    beta, gamma, x, past_rate = fitted_rates(posterior, series.sizes["week"])
    n_samples = beta.shape[0]
    has_x = "escalation" in posterior
    channel = draws_of(posterior, "channel") if "channel" in posterior else np.ones_like(beta)
    q = (draws_of(posterior, "retaliation") if "retaliation" in posterior
         else np.ones(n_samples))
    seen = series.volume.values > 0  # weeks with data; see `forecast.model`
    rho = draws_of(posterior, "rho") if has_x else np.zeros(n_samples)

    weeks_before = float(series.get("weeks_before", 0))
    before = (series.scenario_events_before.values if "scenario_events_before" in series
              else 0)
    past = (past_rate * seen).sum(axis=2) + weeks_before * np.exp(beta)  # (sample, scenario)
    happened = (series.scenario_events.sum("week").values + before) > 0  # (scenario,)
    quiet_on = channel * np.exp(-past)
    quiet = quiet_on + 1 - channel  # P(no event of s | R = 1)
    p_on = np.where(happened, 1.0, quiet_on / np.maximum(quiet, 1e-300))
    form = ~counter_scenarios(series)
    if (happened & form).any():
        p_retaliation = np.ones(n_samples)
    else:
        retaliated = q * np.exp(np.log(np.maximum(quiet[:, form], 1e-300)).sum(axis=1))
        p_retaliation = retaliated / np.maximum(retaliated + 1 - q, 1e-300)

    # x from its last seen week (or the stationary distribution with none) to the as-of week
    # and on; only the weeks after as-of are kept
    seen_index = np.flatnonzero(seen)
    if has_x and seen_index.size:
        state, lag = x[:, seen_index[-1]], len(seen) - 1 - seen_index[-1]
    else:
        state = rng.standard_normal(n_samples) / np.sqrt(1 - rho**2) if has_x else rho * 0
        lag = 0
    future_x = np.empty((n_samples, n_ahead))
    for h in range(lag + n_ahead):
        state = rho * state + (rng.standard_normal(n_samples) if has_x else 0.0)
        if h >= lag:
            future_x[:, h - lag] = state
    rate = np.exp(beta[:, :, None] + gamma[:, :, None] * future_x[:, None, :])
    return p_retaliation, p_on, rate


def cumulative_probability(posterior: xr.Dataset, series: xr.Dataset,
                           unions: Mapping[str, Sequence[str]], as_of: dt.date, until: dt.date,
                           *, seed: int, days: Sequence[dt.date] = ()) -> xr.DataArray:
    """P(at least one event of each entry of `unions` (its members: any of them) between `as_of`
    and each week's end up to `until`, and each of `days`), per draw: ``(scenario, day,
    sample)``, for fan charts.

    Computed by `forecast_questions`, one question per scenario and day, so that each curve
    passes through the forecasts of the questions that end on `days` (with the same seed and
    `until`)."""
    weeks = (until - as_of).days // 7
    ends = sorted({as_of + dt.timedelta(weeks=k) for k in range(1, weeks + 1)} | {until}
                  | {d for d in days if as_of < d <= until})
    f = forecast_questions(posterior, series, [
        QuestionSpec(f"{name} {d}", members[0], tuple(members), as_of + dt.timedelta(days=1), d)
        for name, members in unions.items() for d in ends], as_of, {}, seed=seed)
    draws = f.draws.values.reshape(len(unions), len(ends), -1)
    draws = np.concatenate([np.zeros_like(draws[:, :1]), draws], axis=1)  # 0 at the as-of
    return xr.DataArray(draws, dims=("scenario", "day", "sample"),
                        coords={"scenario": list(unions),
                                "day": np.array([as_of, *ends], dtype="datetime64[D]")})


def _overlap_days(week_start: dt.date, window_start: dt.date, window_end: dt.date) -> int:
    """Days of the week (week_start, week_start + 7] that fall in (window_start, window_end]."""
    low = max(week_start, window_start)
    high = min(week_start + dt.timedelta(days=7), window_end)
    return max((high - low).days, 0)
