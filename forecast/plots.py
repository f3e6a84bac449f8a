"""The report's figures (matplotlib, Agg backend); each function writes one PNG."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from matplotlib.ticker import PercentFormatter

from forecast.files import write_output

DPI = 110


def save_png(fig: Any, path: Path) -> None:
    """Lay out `fig`, write it to `path` as a PNG (`forecast.files.write_output`: atomically,
    or through a device, or to stdout for ``-``), and close it."""
    fig.tight_layout()
    try:
        write_output(path, lambda target: fig.savefig(target, dpi=DPI, format="png"))
    finally:
        plt.close(fig)


def _date_axis(ax: Any) -> None:
    ax.xaxis.set_major_locator(mdates.AutoDateLocator(maxticks=8))
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(ax.xaxis.get_major_locator()))


def _pct(p: float) -> str:
    """A probability as a label: small ones keep a decimal (0.2%, not 0%)."""
    return f"{p:.1%}" if 0 < p < 0.1 or 0.9 < p < 1 else f"{p:.0%}"


def fan_chart(cumulative: xr.DataArray, title: str, questions: list[dict], path: Path) -> None:
    """Cumulative P(at least one event of the scenario after the as-of date, by each day): the
    forecast (the mean over posterior draws, as every forecast is) and 50% / 90% bands, with
    each open question's deadline and forecast marked (on the line: `cumulative` is computed by
    the same function, `forecast.forecasts.cumulative_probability`). ``(day, sample)``."""
    days = cumulative.day.values
    q = np.quantile(cumulative.values, [0.05, 0.25, 0.75, 0.95], axis=1)
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    ax.fill_between(days, q[0], q[3], color="tab:blue", alpha=0.18, label="90% interval")
    ax.fill_between(days, q[1], q[2], color="tab:blue", alpha=0.35, label="50% interval")
    ax.plot(days, cumulative.mean("sample").values, color="tab:blue", lw=2,
            label="forecast (mean over draws)")
    for row in questions:
        deadline = np.datetime64(row["deadline"], "D")
        ax.axvline(deadline, color="0.4", ls=":", lw=1)  # type: ignore[arg-type]
        ax.errorbar(deadline, row["probability"], fmt="o", color="black", ms=5,
                    yerr=[[row["probability"] - row["interval"][0]],
                          [row["interval"][1] - row["probability"]]], capsize=3)
        early = deadline < days[len(days) // 2]
        ax.annotate(f"{_pct(row['probability'])} by {row['deadline']}",
                    (deadline, row["probability"]), textcoords="offset points",
                    xytext=(6 if early else -6, 8), ha="left" if early else "right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylabel("P(at least one event)")
    ax.set_title(title, fontsize=10)
    _date_axis(ax)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    save_png(fig, path)


def history_chart(rows: list[dict], title: str, path: Path, events: Sequence[dt.date] = (),
                  start: dt.date | None = None) -> None:
    """Each question's recorded probability by as-of date as a step (a forecast holds until the
    next update), with its 90% interval, and the days of the events that meet the scenario's
    rule; from `start` (the questions' opening) when it is earlier than the first update."""
    fig, ax = plt.subplots(figsize=(7.5, 3.0))
    for question in sorted({r["question"] for r in rows}):
        mine = sorted((r for r in rows if r["question"] == question), key=lambda r: r["as_of"])
        days = [np.datetime64(r["as_of"], "D") for r in mine]
        p = [r["probability"] for r in mine]
        (line,) = ax.plot(days, p, "o-", drawstyle="steps-post", label=question, ms=4,
                          clip_on=False)
        ax.fill_between(days, [r["interval"][0] for r in mine], [r["interval"][1] for r in mine],
                        color=line.get_color(), alpha=0.15, step="post")
    days = sorted({np.datetime64(r["as_of"], "D") for r in rows})
    first = min(days[0], np.datetime64(start, "D")) if start else days[0]
    low, high = first - np.timedelta64(14, "D"), days[-1] + np.timedelta64(14, "D")
    shown = [np.datetime64(d, "D") for d in events if low <= np.datetime64(d, "D") <= high]
    for i, day in enumerate(shown):
        ax.axvline(day, color="tab:red", ls="--", lw=1,  # type: ignore[arg-type]
                   label="event meeting the rule" if i == 0 else None)
    ax.set_xlim(low, high)  # type: ignore[arg-type]
    ax.set_ylim(-0.04, 1.04)  # a line at 0% or 100% stays visible
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylabel("P(yes)")
    ax.set_xlabel("as of (one point per update)")
    ax.set_title(title, fontsize=10)
    _date_axis(ax)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    save_png(fig, path)


def prior_posterior_chart(rows: list[dict], path: Path) -> None:
    """Per claim: its stated range, the model's prior given the claims, and the posterior."""
    fig, ax = plt.subplots(figsize=(9, 0.5 * len(rows) + 1.5))
    n = len(rows)
    for i, r in enumerate(rows):
        y = n - 1 - i
        lo, hi = r["stated_range"]
        ax.barh(y, hi - lo, left=lo, height=0.8, color="0.87",
                label="stated range" if i == 0 else None)
        ax.plot(r["prior"]["interval"], [y + 0.17] * 2, color="0.35", lw=3,
                label="prior (claims alone), 90%" if i == 0 else None)
        ax.plot(r["prior"]["mean"], y + 0.17, "o", color="0.35", ms=4)
        ax.plot(r["posterior"]["interval"], [y - 0.17] * 2, color="tab:red", lw=3,
                label="posterior (claims + events), 90%" if i == 0 else None)
        ax.plot(r["posterior"]["mean"], y - 0.17, "o", color="tab:red", ms=4)
    ax.set_yticks(range(n), [f"{r['id']} ({r['horizon']})" for r in rows][::-1], fontsize=8)
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("P(scenario happens within the claim's horizon after its publication)")
    ax.set_title("What the events did to each claim")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.07), ncol=3, fontsize=8, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    save_png(fig, path)


def indicator_chart(series: xr.Dataset, escalation: np.ndarray, path: Path) -> None:
    """Top: the escalation level (posterior median, 90% band). Below: each indicator's weekly
    count, and the weeks with events meeting a scenario's rule."""
    weeks = series.week.values
    indicators = list(series.indicator.values)
    fig, axes = plt.subplots(len(indicators) + 1, 1, sharex=True,
                             figsize=(8, 0.95 * (len(indicators) + 1) + 1.2))
    q = np.quantile(escalation, [0.05, 0.5, 0.95], axis=0)
    axes[0].fill_between(weeks, q[0], q[2], color="tab:purple", alpha=0.25)
    axes[0].plot(weeks, q[1], color="tab:purple", lw=1.5)
    axes[0].axhline(0, color="0.5", lw=0.8)
    axes[0].set_ylabel("escalation", fontsize=8)
    axes[0].set_title("Escalation level (posterior median, 90% band) and the indicators\n"
                      "behind it (weekly event counts)", fontsize=10)
    colours = dict(zip(series.scenario.values, plt.rcParams["axes.prop_cycle"].by_key()["color"],
                       strict=False))
    for ax, ident in zip(axes[1:], indicators, strict=True):
        ax.fill_between(weeks, series.indicator_events.sel(indicator=ident).values, step="pre",
                        color="tab:gray")
        ax.set_ylabel(ident, rotation=0, ha="right", va="center", fontsize=8)
        ax.tick_params(labelsize=7)
    shown = False
    for scenario, colour in colours.items():
        hits = weeks[series.scenario_events.sel(scenario=scenario).values > 0]
        for ax in axes[1:]:
            for week in hits:
                ax.axvline(week, color=colour, alpha=0.6, lw=1.2)
        if len(hits):
            axes[0].plot([], [], color=colour, lw=1.2, label=str(scenario))
            shown = True
    if shown:
        axes[0].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5),
                       frameon=False, title="weeks with an event of", title_fontsize=7)
    axes[-1].set_xlabel("week ending (coloured lines: weeks with an event meeting a scenario's "
                        "rule)", fontsize=8)
    _date_axis(axes[-1])
    save_png(fig, path)
