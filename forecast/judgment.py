"""The forecaster's own judgment, and its pool with the model.

The pool is the weighted mean of the sources' log-odds, extremized by a factor a >= 1:

    logit p̂ = a · Σ_i w_i logit p_i / Σ_i w_i

Averaging log-odds rather than probabilities, then pushing the mean away from 1/2, corrects the
pool's under-confidence when the sources hold partly independent information (Baron, Mellers,
Tetlock, Stone & Ungar 2014, "Two reasons to make aggregated probability forecasts more extreme",
Decision Analysis 11(2); Satopää et al. 2014, "Combining multiple probability predictions using
a simple logit model", IJF 30(2)). With a = 1 and one source the pool is that source.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import duckdb

from forecast import history
from forecast.config import Aggregation
from forecast.errors import QuestionError
from forecast.workspace import Workspace


def pool(probabilities: Sequence[float], weights: Sequence[float], *, extremize: float) -> float:
    """Extremized weighted log-odds mean of `probabilities` (each in (0, 1))."""
    from scipy.special import expit, logit

    total = sum(weights)
    mean = sum(w * logit(p) for p, w in zip(probabilities, weights, strict=True)) / total
    return float(expit(extremize * mean))


def pooled(model: float, judgment: float | None, aggregation: Aggregation) -> float:
    """The pool of the model's probability and, when there is one, the forecaster's."""
    if judgment is None:  # exactly the model's when there is nothing to pool or extremize
        return model if aggregation.extremize == 1 else pool([model], [1.0],
                                                             extremize=aggregation.extremize)
    return pool([model, judgment], [aggregation.model_weight, aggregation.judgment_weight],
                extremize=aggregation.extremize)


@dataclass(frozen=True)
class Judgment:
    """The forecaster's own probability for a question (a row of the ``judgments`` table)."""

    question: str
    probability: float
    note: str | None
    judged_by: str
    recorded_at: dt.datetime

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def record(con: duckdb.DuckDBPyConnection, question: str, probability: float, *,
           note: str | None, by: str) -> Judgment:
    """Record the forecaster's probability for `question`."""
    if not 0 < probability < 1:
        raise QuestionError(f"a judgment must be strictly between 0 and 1, got {probability:g}")
    (recorded_at,) = con.execute(
        "INSERT INTO judgments (question, probability, note, judged_by) VALUES (?, ?, ?, ?) "
        "RETURNING recorded_at", [question, probability, note, by]).fetchone() or (None,)
    return Judgment(question, probability, note, by, recorded_at)


def judge(ws: Workspace, question: str, probability: float, *,
          note: str | None) -> Judgment:
    """Record the forecaster's probability for an open question of the workspace's priors, under
    the write lock; an unknown id is refused with a suggestion, a resolved question with its
    resolution (a judgment on it would never be submitted or scored)."""
    from forecast.priors import load_priors
    from forecast.resolution import current, find_question, user

    q = find_question(load_priors(ws.priors_dir), question)
    with ws.writing() as con:
        state = current(con).get(q.id)
        if state is not None and state.state != "open":
            raise QuestionError(f"{q.id} is resolved ({state.state} on {state.resolved_on}): a "
                                "judgment on it would never be submitted or scored")
        return record(con, q.id, probability, note=note, by=user())


def latest(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, Any]]:
    """The latest judgment of every judged question."""
    if not history.has_table(con, "judgments"):
        return {}
    return {r["question"]: r for r in history.query(
        con, "SELECT * FROM judgments ORDER BY recorded_at, rowid", [])}
