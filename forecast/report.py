"""`forecast report`: the latest update as a Markdown report and a self-contained HTML report.

Both are rendered from one list of blocks, so they say the same thing; the HTML embeds its PNGs
(base64) and needs no network. Every number comes from the stored history rows, the posterior
file and the store, the same sources as `forecast show --json`.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from forecast import history, plots, queries
from forecast.errors import ForecastError
from forecast.evaluate import Scores, score_workspace
from forecast.explain import Explanation, explain
from forecast.files import atomic_write
from forecast.forecasts import (
    QuestionSpec,
    cumulative_probability,
    draws_of,
    forecast_questions,
)
from forecast.posterior import open_run
from forecast.prior_check import claim_probabilities, prior_predictive
from forecast.priors import load_priors
from forecast.scoring import plot_reliability
from forecast.store import open_store
from forecast.workspace import Workspace

_CSS = """body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;
color:#222;line-height:1.45}table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}
td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;white-space:nowrap}
th{background:#f3f3f3}
td.num{text-align:right;font-variant-numeric:tabular-nums}img{max-width:100%;height:auto}
blockquote{border-left:4px solid #ccc;margin:.5rem 0;padding:.2rem .8rem;color:#444}
.warn{background:#fde8e8;border:2px solid #c00;color:#900;padding:.6rem 1rem;font-weight:600}
.note{background:#fff6d5;border:1px solid #d9b300;padding:.5rem 1rem}code{font-size:.85rem}"""


def percent(p: float) -> str:
    return f"{p:.1%}"


def _html(text: str) -> str:
    """`text` escaped for HTML, with Markdown's `code` spans as <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def _md(text: str, *, cell: bool = False) -> str:
    """`text` for Markdown, as plain text: outside `code` spans, what would start HTML (a tag,
    an entity) or a link (``](``, ``]:``, ``][``) is escaped, and so are backslashes and, in a
    table `cell`, bars; a line break is a space, so a name cannot end a table row or a
    paragraph. What needs no escaping (``<=``, ``[k]``) is left as written."""
    def plain(part: str) -> str:
        part = re.sub(r"\](?=[(:\[])", r"\\]", part.replace("\\", "\\\\"))
        part = re.sub(r"<(?=[A-Za-z/!?])", "&lt;", re.sub(r"&(?=#?\w+;)", "&amp;", part))
        return part.replace("|", "\\|") if cell else part

    parts = re.split(r"(`[^`\n]+`)", text.replace("\r", " ").replace("\n", " "))
    return "".join(p if p.startswith("`") else plain(p) for p in parts)


@dataclass
class _Doc:
    """Blocks rendered both as Markdown and as HTML."""

    md: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    images: dict[str, Path] = field(default_factory=dict)

    def heading(self, level: int, text: str) -> None:
        self.md.append(f"{'#' * level} {_md(text)}")
        self.html.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def para(self, text: str, css: str | None = None) -> None:
        self.md.append(f"**{_md(text)}**" if css == "warn" else _md(text))
        cls = f' class="{css}"' if css else ""
        self.html.append(f"<p{cls}>{_html(text)}</p>")

    def quote(self, text: str, source: str) -> None:
        self.md.append(f"> “{_md(text)}”\n>\n> {_md(source)}")
        self.html.append(f"<blockquote>“{html.escape(text)}”<br><small>{html.escape(source)}"
                         "</small></blockquote>")

    def bullets(self, items: list[str]) -> None:
        self.md.append("\n".join(f"- {_md(i)}" for i in items))
        self.html.append("<ul>" + "".join(f"<li>{_html(i)}</li>" for i in items) + "</ul>")

    def table(self, header: list[str], rows: list[list[str]],
              numeric: frozenset[int] = frozenset()) -> None:
        self.md.append("\n".join(["| " + " | ".join(_md(h, cell=True) for h in header) + " |",
                                  "|" + "|".join("---:" if i in numeric else "---"
                                                 for i in range(len(header))) + "|"]
                                 + ["| " + " | ".join(_md(c, cell=True) for c in r) + " |"
                                    for r in rows]))
        cells = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(
            f'<td{" class=num" if i in numeric else ""}>{_html(c)}</td>'
            for i, c in enumerate(r)) + "</tr>" for r in rows)
        self.html.append(f"<table><tr>{cells}</tr>{body}</table>")

    def image(self, path: Path, alt: str) -> None:
        self.md.append(f"![{_md(alt)}]({path.name})")
        data = base64.b64encode(path.read_bytes()).decode()
        self.html.append(f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">')

    def render(self, title: str) -> tuple[str, str]:
        md = "\n\n".join(self.md) + "\n"
        page = (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>"
                f"{html.escape(title)}</title><style>{_CSS}</style></head><body>"
                + "\n".join(self.html) + "</body></html>\n")
        return md, page


def write_report(ws: Workspace, out: Path, *, explain: bool = False) -> Path:
    """Write report.md, report.html and the PNGs of the latest update to `out`; returns the
    Markdown file. With `explain`, "What changed" also decomposes the change by cause
    (`forecast.explain`, one refit per cause). Raises `ForecastError` when there is no update,
    `OutputError` when `out` is one of the workspace's own folders."""
    ws.refuse_own(out)
    if not ws.store_path.exists():
        raise ForecastError("no forecasts to report: run `forecast update` first")
    con = open_store(ws.store_path, read_only=True)
    try:
        runs = history.current_runs(con)  # what-ifs are not reported
        if not runs:
            raise ForecastError("no forecasts to report: run `forecast update` first")
        run = runs[-1]
        rows = history.question_rows(con, run_id=run["run_id"])
        previous = ({r["question"]: r for r in history.question_rows(
            con, run_id=runs[-2]["run_id"])} if len(runs) > 1 else {})
        every = [r for past in runs for r in history.question_rows(con, run_id=past["run_id"])]
        sources = con.execute("SELECT source_format, count(*) FILTER (WHERE folded_into IS NULL), "
                              "coalesce(sum(1 + duplicates), 0) FROM events GROUP BY 1 ORDER BY 1"
                              ).fetchall()
        priors = load_priors(ws.priors_dir)
        # deadlines passed by the as-of date, so that the report's scores are reproducible
        scores = score_workspace(con, priors, today=run["as_of"])
        since = min([r["as_of"] - dt.timedelta(weeks=2) for r in every]
                    + [q.opened for s in priors.scenarios.values() for q in s.questions])
        rule_days = {s.id: sorted({e["date"] for m in s.members
                                   for e in queries.matching(
                                       con, since=since, until=run["as_of"],
                                       rule=priors.scenarios[m].resolution)})
                     for s in priors.scenarios.values()}  # the days of events meeting its rule
    finally:
        con.close()
    tree = open_run(ws, run)
    posterior = tree["posterior"].to_dataset()
    series = tree["constant_data"].to_dataset()
    out.mkdir(parents=True, exist_ok=True)

    doc = _Doc()
    title = f"Will Russia retaliate against Azerbaijan? Forecasts as of {run['as_of']}"
    doc.heading(1, title)
    if run["simulated"]:
        doc.para("SIMULATED DATA: this report is built from the bundled example. Its events, "
                 "except the five the source document names, are simulated; its numbers say "
                 "nothing about the real world.", "warn")
    if not run["converged"]:
        doc.para(f"NOT CONVERGED: this fit failed the diagnostics gate and was published with "
                 f"--allow-unconverged (worst parameter {run['worst']}). Do not rely on it.",
                 "warn")
    doc.para("Probabilities that each retaliation scenario of the op-ed “From Allies to "
             "Adversaries” happens by each deadline, from the document's claims (as priors) "
             "updated with coded events. Intervals are 90% credible intervals.")
    _headline(doc, rows, previous, _bottom_line(priors, rows, posterior, series, run))
    _scenarios(doc, out, priors, rows, every, posterior, series, run, rule_days)
    _prior_vs_posterior(doc, out, priors, posterior, series, ws)
    _indicators(doc, out, series, posterior, priors)
    _changes(doc, rows, previous, _explanation(ws) if explain and previous else None)
    _scores(doc, out, scores)
    _diagnostics(doc, run)
    _provenance(doc, run, ws, sources)
    md, page = doc.render(title)
    for path, text in ((out / "report.md", md), (out / "report.html", page)):
        if not path.is_file() or _WRITTEN.sub("", path.read_text()) != _WRITTEN.sub("", text):
            atomic_write(path, text)  # a report whose only change is the time is left alone
    return out / "report.md"


_WRITTEN = re.compile(r"Report written [0-9-]+ [0-9:]+ UTC")


def _change(row: dict, previous: dict[str, dict]) -> str:
    before = previous.get(row["question"])
    if before is None:
        return "new"
    delta = row["probability"] - before["probability"]
    return f"{delta * 100:+.1f} pts"


def _bottom_line(priors, rows: list[dict], posterior: xr.Dataset, series: xr.Dataset,
                 run: dict) -> list[list[str]]:
    """The document's headline, "Yes. But not today — and not directly", beside the model's
    numbers: some retaliation (the union of the forms) by the latest deadline; some in the 4
    weeks after the as-of date (computed here, seeded with the run's seed); the counter-scenario
    (direct military action) by its latest deadline."""
    as_of = run["as_of"]
    forms = next((s for s in priors.scenarios.values() if s.union), None)
    counters = [s for s in priors.scenarios.values() if s.counter]

    def latest(scenario: str) -> dict | None:
        return max((r for r in rows if r["scenario"] == scenario), key=lambda r: r["deadline"],
                   default=None)

    def line(said: str, means: str, p: float, interval, without: float | None) -> list[str]:
        return [said, means, percent(p), f"{percent(interval[0])} – {percent(interval[1])}",
                "–" if without is None else percent(without)]

    out = []
    if forms is not None and (yes := latest(forms.id)) is not None:
        out.append(line("Yes.", f"some retaliation, in any of its forms, by {yes['deadline']}"
                        + ("" if yes["status"] == "open" else f" ({_status(yes['status'])})"),
                        yes["probability"], yes["interval"], yes["without_claims"]))
        soon = forecast_questions(posterior, series, [QuestionSpec(
            "next-4-weeks", forms.id, forms.union, as_of + dt.timedelta(days=1),
            as_of + dt.timedelta(weeks=4))], as_of, {}, seed=run["seed"])
        out.append(line("But not today", f"some retaliation in the 4 weeks after {as_of}",
                        float(soon.probability[0]), (float(soon.low[0]), float(soon.high[0])),
                        None))
    for counter in counters:
        if (direct := latest(counter.id)) is not None:
            out.append(line("— and not directly.", f"{counter.title.split(' (')[0].lower()} "
                            f"by {direct['deadline']}", direct["probability"],
                            direct["interval"], direct["without_claims"]))
    return out


def _headline(doc: _Doc, rows: list[dict], previous: dict[str, dict],
              bottom_line: list[list[str]]) -> None:
    doc.heading(2, "Headline")
    if bottom_line:
        doc.para("The document's headline, “Yes. But not today — and not directly.”, beside the "
                 "model's numbers:")
        doc.table(["the document", "read as", "P(yes)", "90% interval", "without the claims"],
                  bottom_line, numeric=frozenset({2, 4}))
    is_open = [r for r in rows if r["status"] == "open"]
    doc.heading(3, f"Open questions ({len(is_open)}), by deadline")
    doc.table(["question", "P(yes)", "90% interval", "without the claims",
               "change since previous update", "deadline"],
              [[r["question"], percent(r["probability"]),
                f"{percent(r['interval'][0])} – {percent(r['interval'][1])}",
                "–" if r["without_claims"] is None else percent(r["without_claims"]),
                _change(r, previous), str(r["deadline"])]
               for r in sorted(is_open, key=lambda r: (r["deadline"], r["question"]))],
              numeric=frozenset({1, 3, 4}))
    doc.para("“Without the claims”: the same forecast from the events alone, without the "
             "document's claims (the posterior reweighted by Pareto-smoothed importance "
             "sampling, or refitted when that is unreliable): how much of each number rests "
             "on the document.")
    awaiting = [r for r in rows if r["status"] == "awaiting data"]
    if awaiting:
        doc.heading(3, f"Deadline passed, awaiting data ({len(awaiting)})")
        doc.para("No qualifying event is stored, but the data miss days of the question's "
                 "window, so it stays open until they are imported (`forecast resolve QUESTION` "
                 "names them); P(yes) is the model's chance that an event happened on those "
                 "days.")
        doc.table(["question", "P(yes)", "deadline"],
                  [[r["question"], percent(r["probability"]), str(r["deadline"])]
                   for r in sorted(awaiting, key=lambda r: (r["deadline"], r["question"]))],
                  numeric=frozenset({1}))
    resolved = [r for r in rows if r["status"] not in ("open", "awaiting data")]
    if resolved:
        doc.heading(3, f"Resolved questions ({len(resolved)})")
        doc.table(["question", "resolution", "deadline"],
                  [[r["question"], _status(r["status"]), str(r["deadline"])]
                   for r in sorted(resolved, key=lambda r: (r["deadline"], r["question"]))])


def _status(status: str) -> str:
    return {"yes": "resolved YES", "no": "resolved NO"}.get(status, status)


def _scenarios(doc: _Doc, out: Path, priors, rows: list[dict], every: list[dict],
               posterior: xr.Dataset, series: xr.Dataset, run: dict,
               rule_days: dict[str, list[dt.date]]) -> None:
    as_of = run["as_of"]
    until = max(r["deadline"] for r in rows)
    constraints = {c.claim.id: c for c in priors.constraints()}
    unions = {s.id: list(s.members) for s in priors.scenarios.values()}
    curves = cumulative_probability(posterior, series, unions, as_of, until, seed=run["seed"],
                                    days=[r["deadline"] for r in rows if r["status"] == "open"])
    for scenario in priors.scenarios.values():
        mine = [r for r in rows if r["scenario"] == scenario.id]
        doc.heading(2, f"{scenario.title} ({scenario.id})")
        doc.para(scenario.description)
        is_open = [r for r in mine if r["status"] == "open"]
        curve = curves.sel(scenario=scenario.id)
        happened = any(r["status"] == "yes" for r in mine)
        fan = out / f"fan-{scenario.id}.png"
        plots.fan_chart(curve, f"{scenario.title}: " + (
            f"resolved YES; P(a further event after {as_of}, by date)" if happened
            else f"P(an event after {as_of}, by date)"), is_open, fan)
        doc.image(fan, f"Fan chart of {scenario.title}")
        if happened:
            doc.para("Its questions resolved YES: the chart shows the chance of a further event, "
                     "not of these questions.", "note")
        hist = out / f"history-{scenario.id}.png"
        shown = {r["question"] for r in is_open} or {r["question"] for r in mine}
        start = min(q.opened for q in scenario.questions)
        plots.history_chart([r for r in every if r["question"] in shown],
                            f"{scenario.title}: forecast history", hist,
                            rule_days[scenario.id], start)
        doc.image(hist, f"Forecast history of {scenario.title}")
        if scenario.resolution:
            doc.para(f"Resolves YES on: {scenario.resolution.describe()}.")
        else:
            doc.para(f"Resolves YES when any of these does: {', '.join(scenario.union)}.")
        claims = [c for c in constraints.values() if c.claim.scenario == scenario.id]
        if claims:
            doc.heading(3, "The claims behind it")
            for c in claims:
                doc.quote(c.claim.quote, f"{c.claim.id}: {c.claim.wording} "
                          f"{c.claim.horizon.phrase}; {c.describe()}")


def _prior_vs_posterior(doc: _Doc, out: Path, priors, posterior: xr.Dataset,
                        series: xr.Dataset, ws: Workspace) -> None:
    doc.heading(2, "Prior against posterior")
    prior = {r["id"]: r for r in prior_predictive(priors, ws.posteriors_dir)}
    post = {r["id"]: r for r in claim_probabilities(priors, posterior, series)}
    rows = [{"id": c.claim.id, "horizon": c.claim.horizon.phrase,
             "stated_range": list(c.claim.stated), "prior": prior[c.claim.id],
             "posterior": post[c.claim.id]} for c in priors.constraints()]
    path = out / "prior-posterior.png"
    plots.prior_posterior_chart(rows, path)
    doc.para("For each claim: the range it states, the probability the model implies given the "
             "claims alone (prior), and given the claims and the events (posterior), over the "
             "weeks the claim speaks of (along the fitted escalation where those weeks have "
             "data).")
    doc.image(path, "Prior against posterior for each claim")


def _indicators(doc: _Doc, out: Path, series: xr.Dataset, posterior: xr.Dataset,
                priors) -> None:
    if "escalation" not in posterior or not series.sizes.get("indicator"):
        return
    doc.heading(2, "Indicators and the escalation level")
    path = out / "indicators.png"
    plots.indicator_chart(series, draws_of(posterior, "escalation"), path)
    doc.image(path, "Escalation level and indicator series")
    doc.para("Events meeting each scenario's rule in the fitted window: " + ", ".join(
        _rule_count(series, s) for s in priors.scenarios.values() if s.resolution) + ".")


def _rule_count(series: xr.Dataset, scenario) -> str:
    """"hybrid-retaliation 1 (before its questions opened on 2026-01-01)": events of a rule in
    the fitted weeks, saying how many came before the scenario's first question opened (they
    resolve nothing)."""
    counts = series.scenario_events.sel(scenario=scenario.id)
    opened = min((q.opened for q in scenario.questions), default=None)
    n = int(counts.sum())
    if opened is None or not n:
        return f"{scenario.id} {n}"
    # a week ends on its day: the week ending the day before opening is all before it
    early = int(counts.where(counts.week < np.datetime64(opened, "D"), 0).sum())
    if not early:
        return f"{scenario.id} {n}"
    which = "all" if early == n else f"{early} of them"
    return f"{scenario.id} {n} ({which} before its questions opened on {opened})"


def _explanation(ws: Workspace) -> Explanation:
    return explain(ws)


def _changes(doc: _Doc, rows: list[dict], previous: dict[str, dict],
             explanation: Explanation | None) -> None:
    doc.heading(2, "What changed")
    if not previous:
        doc.para("This is the first recorded update: there is nothing to compare with.")
        return

    def moved_by(r: dict) -> float:
        return abs(r["probability"] - previous.get(r["question"], r)["probability"])

    moved = sorted(rows, key=moved_by, reverse=True)
    doc.table(["question", "previous", "now", "change"],
              [[r["question"], percent(previous[r["question"]]["probability"])
                if r["question"] in previous else "–", percent(r["probability"]),
                _change(r, previous)] for r in moved], numeric=frozenset({1, 2, 3}))
    if explanation is None:
        doc.para("Why they moved, decomposed by cause (changed priors, quiet weeks, each "
                 "indicator's new events, new scenario events), with the events that mattered: "
                 "`forecast explain`, or `forecast report --explain` (one refit per cause).",
                 "note")
        return
    doc.heading(3, "Why: the change by cause")
    doc.para(f"Sequential counterfactual refits from {explanation.previous_as_of} to "
             f"{explanation.as_of} (method in forecast/explain.py); the contributions and the "
             "residual add up to the change.")
    doc.table(["question", "change", "largest contributions", "residual"],
              [[q["question"], f"{q['change'] * 100:+.1f} pts", "; ".join(
                  f"{cause} {delta * 100:+.1f}" for cause, delta in sorted(
                      q["contributions"].items(), key=lambda kv: -abs(kv[1]))[:3]),
                f"{q['residual'] * 100:+.2f}"]
               for q in explanation.questions if q["change"] is not None],
              numeric=frozenset({1, 3}))
    if explanation.events:
        doc.heading(3, "The new events that count")
        doc.table(["date", "actors", "CAMEO", "sources", "counts for", "source"],
                  [[str(e["date"]), f"{e['actor1']}→{e['actor2']}", e["event_code"],
                    str(e["num_sources"]), e["counts_for"], e["source_url"] or ""]
                   for e in explanation.events], numeric=frozenset({3}))


def _scores(doc: _Doc, out: Path, scores: Scores) -> None:
    doc.heading(2, "How good have the forecasts been?")
    overall = scores.overall
    doc.para("Resolved questions whose deadline had passed by the as-of date, each scored on "
             "the model's last forecast made while it was open (Brier: lower is better; log "
             "and Metaculus baseline scores: higher is better; `forecast score`). "
             f"{len(scores.not_scored)} question(s) are not scored yet.")
    if overall["n"]:
        doc.table(["question", "last forecast", "as of", "outcome", "Brier", "log", "baseline"],
                  [[q["question"], percent(q["probability"]), str(q["as_of"]),
                    "YES" if q["outcome"] else "NO", f"{q['brier']:.3f}", f"{q['log']:.3f}",
                    f"{q['baseline']:+.1f}"] for q in scores.questions]
                  + [["mean", "", "", "", f"{overall['brier']:.3f}", f"{overall['log']:.3f}",
                      f"{overall['baseline']:+.1f}"]], numeric=frozenset({1, 4, 5, 6}))
    doc.table(["forecast bin", "questions", "mean forecast", "observed frequency"],
              [[f"{b['low']:.0%}–{b['high']:.0%}", str(b["n"]),
                percent(b["mean_forecast"]) if b["n"] else "", percent(b["observed"])
                if b["n"] else ""] for b in scores.calibration if b["n"]]
              or [["(none)", "0", "", ""]], numeric=frozenset({1, 2, 3}))
    path = out / "reliability.png"
    plot_reliability(scores.calibration, path, title="Reliability of the resolved forecasts")
    doc.image(path, "Reliability diagram: observed frequency against forecast, with counts")


def _diagnostics(doc: _Doc, run: dict) -> None:
    doc.heading(2, "Diagnostics")
    verdict = "passed" if run["converged"] else "FAILED (published with --allow-unconverged)"
    doc.bullets([f"Gate (R-hat <= 1.01, bulk ESS >= 400, no divergences): {verdict}",
                 f"Largest R-hat: {run['r_hat_max']:.3f}",
                 f"Smallest bulk ESS: {run['ess_bulk_min']:.0f}",
                 f"Divergences: {run['divergences']}",
                 f"Worst parameter: {run['worst']}",
                 f"Sampler: nutpie, {run['chains']} chains × {run['draws']} draws after "
                 f"{run['tune']} tuning draws"])


def _provenance(doc: _Doc, run: dict, ws: Workspace, sources: list[tuple]) -> None:
    doc.heading(2, "Provenance")
    doc.bullets([f"As of: {run['as_of']}", f"Seed: {run['seed']}", f"Run: {run['run_id']}",
                 f"Data hash: {run['data_hash']}", f"Priors hash: {run['priors_hash']}",
                 f"Code version: {run['code_version']}",
                 f"Posterior: {run['posterior_file']} (in workspace {ws.root})",
                 "Events by source format: " + (", ".join(
                     f"{fmt} {n} events from {rows} source rows" for fmt, n, rows in sources)
                     or "none"),
                 f"Report written {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC"])
