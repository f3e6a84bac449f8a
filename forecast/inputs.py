"""The model's inputs from a workspace: the claims as `ClaimTerm`s, the questions as
`QuestionSpec`s, and the weekly series with the questions resolved by a date.

Shared by the stages that fit the model (`forecast.update`, `forecast.explain`,
`forecast.evaluate`, `forecast.prior_check`) and the submission. The numerical libraries are
imported only when a function needs them, so that a command that finds nothing new to fit stays
fast.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import duckdb

if TYPE_CHECKING:
    import xarray as xr

    from forecast.forecasts import QuestionSpec
    from forecast.model import ClaimTerm
    from forecast.priors import Priors
    from forecast.scenarios import Verdict


def claim_terms(priors: Priors, *, as_stated: bool = False) -> list[ClaimTerm]:
    """The claims as the model takes them: each rated and within its document's budget, or with
    `as_stated` each one's unrated (A1) Beta outside any budget, the claims taken as true (the
    validation's worlds where the document is right)."""
    from forecast.model import ClaimTerm

    terms = []
    for c in priors.constraints():
        s = priors.scenarios[c.claim.scenario]
        alpha, beta = c.base if as_stated else (c.alpha, c.beta)
        terms.append(ClaimTerm(c.claim.id, s.members, c.claim.horizon.weeks, alpha, beta,
                               c.published))
    return terms


def store_digest(con: duckdb.DuckDBPyConnection) -> bytes:
    """What the store holds that a fit or an explanation depends on: its imports, its events'
    counts (and how many are folded into another feed's) and the resolutions by hand (a digest,
    not a hash: callers fold it into theirs)."""
    return repr([con.execute(sql).fetchall() for sql in (
        "SELECT sha256, format, region, imported, duplicate FROM imports ORDER BY ALL",
        "SELECT count(*), coalesce(sum(duplicates), 0), count(folded_into) FROM events",
        "SELECT question, state, resolved_on FROM resolutions WHERE method = 'manual' "
        "ORDER BY ALL")]).encode()


def questions(priors: Priors) -> list[QuestionSpec]:
    from forecast.forecasts import QuestionSpec

    return [QuestionSpec(q.id, s.id, s.members, q.opened, q.deadline)
            for s in priors.scenarios.values() for q in s.questions]


def read_inputs(con: duckdb.DuckDBPyConnection, priors: Priors, as_of: dt.date, weeks: int, *,
                known_until: dt.date | None = None) -> tuple[xr.Dataset, dict[str, Verdict]]:
    """The weekly series of the `weeks` weeks up to `as_of` (the AR(1)'s cost grows with the
    square of it) and the `Verdict` of every question that is not open by then
    (`forecast.resolution.verdicts`); `known_until` leaves out events after it (see
    `weekly_series`)."""
    from forecast import resolution
    from forecast.series import weekly_series

    series = weekly_series(con, priors.scenarios, as_of=as_of, known_until=known_until,
                           start=as_of - dt.timedelta(weeks=weeks))
    return series, resolution.verdicts(con, priors, until=as_of, known_until=known_until)
