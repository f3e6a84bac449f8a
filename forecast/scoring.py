"""Proper scoring rules for binary questions, time-averaged scores and calibration.

Every score takes the probability of YES ``p`` and the outcome ``o`` (1 = YES, 0 = NO), as
scalars or numpy arrays (broadcast together). A scalar input gives a ``float``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

Rule = Literal["brier", "log", "baseline"]
Score = float | NDArray[np.float64]


def _checked(p: ArrayLike, outcome: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    p_arr, o_arr = np.broadcast_arrays(np.asarray(p, dtype=float), np.asarray(outcome))
    if not ((p_arr >= 0) & (p_arr <= 1)).all():  # also refuses NaN
        raise ValueError("probabilities must lie in [0, 1]")
    if not np.isin(o_arr, (0, 1)).all():
        raise ValueError("outcomes must be 0 (NO) or 1 (YES)")
    return p_arr, o_arr == 1


def _as_score(x: NDArray[np.float64]) -> Score:
    return float(x) if x.ndim == 0 else x


def _p_outcome(p: ArrayLike, outcome: ArrayLike) -> NDArray[np.float64]:
    p_arr, yes = _checked(p, outcome)
    return np.where(yes, p_arr, 1.0 - p_arr)


def brier(p: ArrayLike, outcome: ArrayLike) -> Score:
    r"""Brier score of a binary forecast, on the 0–1 scale (lower is better).

    .. math:: \mathrm{BS}(p, o) = (p - o)^2

    Good Judgment's Brier score sums over both outcomes, :math:`(p - o)^2 + ((1 - p) - (1 - o))^2`,
    which is twice this (0–2 scale, 0.5 for a 50% forecast).

    Parameters
    ----------
    p : array_like
        Forecast probability of YES, in [0, 1].
    outcome : array_like
        1 if the question resolved YES, 0 if NO.

    Returns
    -------
    float or ndarray
        The score; a float for scalar inputs.

    Examples
    --------
    >>> round(brier(0.8, 1), 4)
    0.04
    >>> brier([0.5, 0.9], [0, 0])
    array([0.25, 0.81])

    References
    ----------
    Brier, G. W. (1950). Verification of forecasts expressed in terms of probability.
    Monthly Weather Review, 78(1), 1–3.
    """
    p_arr, yes = _checked(p, outcome)
    return _as_score((p_arr - yes) ** 2)


def log_score(p: ArrayLike, outcome: ArrayLike) -> Score:
    r"""Logarithmic score of a binary forecast, in nats (at most 0, higher is better).

    .. math:: \mathrm{LS}(p, o) = \ln P(o) = o \ln p + (1 - o) \ln(1 - p)

    A forecast of exactly 0 or 1 that turns out wrong scores ``-inf``.
    (Some libraries, e.g. ``scoringrules``, report the negative, :math:`-\ln P(o)`.)

    Parameters
    ----------
    p : array_like
        Forecast probability of YES, in [0, 1].
    outcome : array_like
        1 if the question resolved YES, 0 if NO.

    Returns
    -------
    float or ndarray
        The score; a float for scalar inputs.

    Examples
    --------
    >>> round(log_score(0.8, 1), 4)
    -0.2231
    >>> log_score(1.0, 0)
    -inf

    References
    ----------
    Good, I. J. (1952). Rational decisions. Journal of the Royal Statistical Society B, 14(1),
    107–114. Gneiting, T. & Raftery, A. E. (2007). Strictly proper scoring rules, prediction,
    and estimation. JASA, 102(477), 359–378.
    """
    p_o = _p_outcome(p, outcome)
    with np.errstate(divide="ignore"):
        return _as_score(np.log(p_o))


def baseline_score(p: ArrayLike, outcome: ArrayLike) -> Score:
    r"""Metaculus baseline score of a binary forecast (higher is better).

    .. math:: \mathrm{Baseline}(p, o) = 100 \, (\log_2 P(o) + 1)

    0 for a 50% forecast, 100 for certainty that was right, ``-inf`` for certainty that was wrong.
    It is an affine transform of the log score, so just as proper.

    Parameters
    ----------
    p : array_like
        Forecast probability of YES, in [0, 1].
    outcome : array_like
        1 if the question resolved YES, 0 if NO.

    Returns
    -------
    float or ndarray
        The score; a float for scalar inputs.

    Examples
    --------
    >>> baseline_score(0.5, 1)
    0.0
    >>> round(baseline_score(0.8, 1), 1)
    67.8

    References
    ----------
    Metaculus, "Scores FAQ": baseline score, https://www.metaculus.com/help/scores-faq/
    """
    p_o = _p_outcome(p, outcome)
    with np.errstate(divide="ignore"):
        return _as_score(100.0 * (np.log2(p_o) + 1.0))


RULES: dict[Rule, Callable[[ArrayLike, ArrayLike], Score]] = {
    "brier": brier,
    "log": log_score,
    "baseline": baseline_score,
}


def time_averaged(
    forecasts: Sequence[tuple[dt.date, float]],
    *,
    opened: dt.date,
    closes: dt.date,
    outcome: int,
) -> dict[str, float] | None:
    r"""Scores of a question's forecast history, averaged over the days each forecast stood.

    Each forecast stands from its ``as_of`` date (or ``opened``, if made earlier) until the next
    forecast's ``as_of`` or until ``closes``. Forecasts made on or after ``closes`` are ignored,
    and the days before the first forecast are not counted. With :math:`d_i` days for
    forecast :math:`p_i`, each rule :math:`S` gives

    .. math:: \bar S = \frac{\sum_i d_i \, S(p_i, o)}{\sum_i d_i}

    Parameters
    ----------
    forecasts : sequence of (datetime.date, float)
        ``(as_of, probability of YES)`` pairs, in any order; of two on the same day the later
        in the sequence wins.
    opened : datetime.date
        The day the question opened.
    closes : datetime.date
        The deadline, or the day the question resolved YES if that was earlier.
    outcome : int
        1 if the question resolved YES, 0 if NO.

    Returns
    -------
    dict or None
        ``{"brier", "log", "baseline"}`` day-weighted mean scores and ``"days"``, the number of
        days covered; None if no forecast covers any day.

    Examples
    --------
    A forecast of 0.2 for the first 10 days and 0.6 for the last 10, on a question that
    resolved NO:

    >>> import datetime as dt
    >>> s = time_averaged([(dt.date(2026, 1, 1), 0.2), (dt.date(2026, 1, 11), 0.6)],
    ...                   opened=dt.date(2026, 1, 1), closes=dt.date(2026, 1, 21), outcome=0)
    >>> round(s["brier"], 2), s["days"]
    (0.2, 20)

    References
    ----------
    Metaculus, "Scores FAQ": time-averaged scores, https://www.metaculus.com/help/scores-faq/
    """
    latest = {as_of: p for as_of, p in forecasts if as_of < closes}
    if not latest:
        return None
    starts = sorted(latest)
    # (forecast,) days each forecast stands
    stands = np.array([
        (end - max(start, opened)).days
        for start, end in zip(starts, [*starts[1:], closes], strict=True)
    ], dtype=float)
    covered = stands > 0  # a zero weight times a -inf log score would be NaN
    if not covered.any():
        return None
    weights = stands[covered]
    p = np.array([latest[d] for d in starts])[covered]
    means: dict[str, float] = {
        name: float(np.average(rule(p, np.full(p.shape, outcome)), weights=weights))
        for name, rule in RULES.items()
    }
    return {**means, "days": int(weights.sum())}


def _bin_index(p: NDArray[np.float64], bins: int) -> NDArray[np.intp]:
    # floor(p·bins) can land one bin off at an edge (15/22·22 = 14.999…), so compare against
    # the reported edges i/bins themselves.
    idx = np.floor(p * bins).astype(np.intp)
    idx += (idx + 1) / bins <= p
    idx -= idx / bins > p
    return np.minimum(idx, bins - 1)


def calibration_table(p: ArrayLike, outcome: ArrayLike, *, bins: int = 10) -> list[dict[str, Any]]:
    """Forecasts grouped into equal-width probability bins, with the frequency of YES in each.

    Bin ``i`` holds ``i/bins <= p < (i+1)/bins``; the last bin is closed at 1. With 10 bins a
    forecast of exactly 0.1 therefore falls in [0.1, 0.2) and one of 1.0 in [0.9, 1.0].

    Parameters
    ----------
    p : array_like
        Forecast probabilities of YES, in [0, 1].
    outcome : array_like
        1 for each question that resolved YES, 0 for NO.
    bins : int, default 10
        Number of bins.

    Returns
    -------
    list of dict
        One per bin, in order: ``low``, ``high``, ``n`` (forecasts in the bin), ``mean_forecast``
        and ``observed`` (fraction that resolved YES), the last two None for an empty bin.

    Examples
    --------
    >>> table = calibration_table([0.05, 0.1, 0.15, 0.95], [0, 0, 1, 1], bins=2)
    >>> [(row["n"], row["observed"]) for row in table]
    [(3, 0.3333333333333333), (1, 1.0)]

    References
    ----------
    Murphy, A. H. & Winkler, R. L. (1977). Reliability of subjective probability forecasts of
    precipitation and temperature. Applied Statistics, 26(1), 41–47.
    """
    if bins < 1:
        raise ValueError("bins must be at least 1")
    p_arr, yes = _checked(np.ravel(p), np.ravel(outcome))
    idx = _bin_index(p_arr, bins)
    table = []
    for i in range(bins):
        mine = idx == i
        n = int(mine.sum())
        table.append({
            "low": i / bins,
            "high": (i + 1) / bins,
            "n": n,
            "mean_forecast": float(p_arr[mine].mean()) if n else None,
            "observed": float(yes[mine].mean()) if n else None,
        })
    return table


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if values else None


def summarise(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Score each resolved question and the set of them.

    Parameters
    ----------
    rows : sequence of mapping
        One per resolved question, with at least ``question``, ``probability`` (the last
        forecast before the deadline) and ``outcome`` (0 or 1), and optionally ``time_averaged``
        (a :func:`time_averaged` result or None).

    Returns
    -------
    dict
        ``questions``: each row with its ``brier``, ``log`` and ``baseline`` scores added;
        ``overall``: ``n`` and the mean of each score, plus ``time_averaged``, the means of the
        rows' time-averaged scores that are not None and their count ``n`` (means are None when
        there is nothing to average); ``calibration``: :func:`calibration_table` of the rows.
    """
    questions = [
        {**row, **{name: float(rule(row["probability"], row["outcome"]))
                   for name, rule in RULES.items()}}
        for row in rows
    ]
    averaged = [q["time_averaged"] for q in questions if q.get("time_averaged") is not None]
    overall: dict[str, Any] = {
        "n": len(questions),
        **{name: _mean([q[name] for q in questions]) for name in RULES},
        "time_averaged": {
            "n": len(averaged),
            **{name: _mean([a[name] for a in averaged]) for name in RULES},
        },
    }
    calibration = calibration_table([q["probability"] for q in questions],
                                    [q["outcome"] for q in questions])
    return {"questions": questions, "overall": overall, "calibration": calibration}


def plot_reliability(table: Sequence[Mapping[str, Any]], path: Path, *, title: str) -> None:
    """Write a reliability diagram (PNG) of a :func:`calibration_table`.

    Top: the observed frequency of YES against the mean forecast in each non-empty bin, point
    area growing with the bin's count (annotated), and the diagonal of perfect calibration.
    Below: the number of forecasts in each bin. The file is written atomically.
    """
    # matplotlib (Agg backend, set by forecast.plots) only when drawing
    from matplotlib.ticker import MaxNLocator

    from forecast.plots import plt, save_png

    path = Path(path)
    filled = [row for row in table if row["n"]]
    fig, (ax, counts) = plt.subplots(2, 1, sharex=True, figsize=(5.5, 6.0),
                                     gridspec_kw={"height_ratios": [3, 1]})
    try:
        ax.plot([0, 1], [0, 1], color="0.5", ls="--", lw=1, label="perfect calibration")
        if filled:
            x = [row["mean_forecast"] for row in filled]
            y = [row["observed"] for row in filled]
            n = [row["n"] for row in filled]
            ax.plot(x, y, color="tab:blue", lw=1)
            ax.scatter(x, y, s=[20 + 15 * k for k in n], color="tab:blue", zorder=3,
                       clip_on=False, label="observed (area ∝ forecasts)")
            for xi, yi, k in zip(x, y, n, strict=True):
                ax.annotate(str(k), (xi, yi), textcoords="offset points", xytext=(8, 0),
                            va="center", fontsize=8)
        else:
            ax.text(0.5, 0.5, "no resolved questions yet", ha="center", va="center",
                    transform=ax.transAxes, color="0.3", bbox={"fc": "white", "ec": "0.8"})
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel("observed frequency of YES")
        ax.set_title(title, pad=22)
        ax.grid(alpha=0.3)
        # above the square, where no point can be (inside it hid a point at 1.0)
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize=8,
                  frameon=False)
        counts.bar([(row["low"] + row["high"]) / 2 for row in table], [row["n"] for row in table],
                   width=[0.9 * (row["high"] - row["low"]) for row in table], color="0.6")
        most = max((row["n"] for row in table), default=0)
        counts.set_ylim(0, 1.15 * most if most else 1)
        counts.set_xlabel("forecast probability (bin mean above; bins below)")
        counts.set_ylabel("forecasts", fontsize=8)
        counts.yaxis.set_major_locator(MaxNLocator(integer=True))
        counts.grid(axis="y", alpha=0.3)
        save_png(fig, path)
    finally:
        plt.close(fig)
