"""The probability report: every question, every section, the same numbers as `show --json`."""

import json
import re

import pytest

from cli import main

SECTIONS = ["## Headline", "## Prior against posterior", "## Indicators and the escalation level",
            "## What changed", "### Why: the change by cause",
            "## How good have the forecasts been?", "## Diagnostics", "## Provenance",
            "### The claims behind it"]


@pytest.fixture(scope="module")
def report(fitted_example, tmp_path_factory):
    from click.testing import CliRunner

    out = tmp_path_factory.mktemp("report")
    runner = CliRunner()
    result = runner.invoke(main, ["--workspace", str(fitted_example), "report", "--explain",
                                  "--out", str(out)])
    assert result.exit_code == 0, result.output
    shown = json.loads(runner.invoke(main, ["--workspace", str(fitted_example), "show",
                                            "--json"]).stdout)
    return out, (out / "report.md").read_text(), (out / "report.html").read_text(), shown


@pytest.mark.slow
def test_the_report_has_every_question_and_section(report):
    _out, md, html, shown = report
    for section in SECTIONS:
        assert section in md
        assert f">{section.lstrip('#').strip()}</h" in html
    for row in shown:
        assert f"| {row['question']} |" in md and row["question"] in html
    assert md.count("## ") >= len(SECTIONS) + 7  # and one section per scenario


@pytest.mark.slow
def test_the_reports_numbers_are_those_of_show_json(report):
    _out, md, _html, shown = report
    for row in shown:
        line = next(x for x in md.splitlines() if x.startswith(f"| {row['question']} |"))
        cells = [c.strip() for c in line.strip("|").split("|")]
        if row["status"] == "awaiting data":  # deadline passed, data missing
            assert cells[1:] == [f"{row['probability']:.1%}", str(row["deadline"])]
            continue
        if row["status"] != "open":  # the short table of resolved questions
            assert cells[1:] == [f"resolved {row['status'].upper()}", str(row["deadline"])]
            continue
        low, high = row["interval"]
        assert cells[1] == f"{row['probability']:.1%}"
        assert cells[2] == f"{low:.1%} – {high:.1%}"
        bare = row["without_claims"]  # None when the refit without the claims failed the gate
        assert cells[3] == ("–" if bare is None else f"{bare:.1%}")
        assert cells[5] == str(row["deadline"])


@pytest.mark.slow
def test_the_report_opens_with_the_documents_headline_then_open_questions_by_deadline(report):
    """The headline table used to list 21 questions alphabetically, resolved ones mixed in."""
    _out, md, _html, shown = report
    section = md.split("## Headline")[1].split("\n## ")[0]
    bottom, rest = section.split("### Open questions")
    lines = [[c.strip() for c in x.strip("|").split("|")] for x in bottom.splitlines()
             if x.startswith("| ")][1:]
    assert [x[0] for x in lines] == ["Yes.", "But not today", "— and not directly."]
    latest = {s: max((r for r in shown if r["scenario"] == s), key=lambda r: r["deadline"])
              for s in ("any-retaliation", "direct-military-action")}
    assert lines[0][2] == f"{latest['any-retaliation']['probability']:.1%}"
    assert lines[2][2] == f"{latest['direct-military-action']['probability']:.1%}"
    assert 0 <= float(lines[1][2].rstrip("%")) <= 100 and lines[1][4] == "–"
    open_table, resolved_table = rest.split("### Resolved questions")
    listed = [x.split("|")[1].strip() for x in open_table.splitlines() if x.startswith("| ")][1:]
    by_deadline = sorted((r for r in shown if r["status"] == "open"),
                         key=lambda r: (r["deadline"], r["question"]))
    assert listed == [r["question"] for r in by_deadline]
    assert resolved_table.count("| resolved ") == sum(r["status"] != "open" for r in shown)


@pytest.mark.slow
def test_warnings_for_simulated_data_and_an_unconverged_fit_come_first(report):
    _out, md, html, _shown = report
    head = md.split("## Headline")[0]
    assert "SIMULATED DATA" in head and "NOT CONVERGED" in head
    assert html.count('class="warn"') == 2


@pytest.mark.slow
def test_the_html_is_self_contained(report):
    out, md, html, _shown = report
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(images) >= 2 * 7 + 2
    for name in images:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert html.count('src="data:image/png;base64,') == len(images)
    assert not re.search(r'(src|href)="(https?:)?//', html)


@pytest.mark.slow
def test_report_without_an_update_says_what_to_do(runner, workspace, tmp_path):
    result = runner.invoke(main, ["--workspace", str(workspace.root), "report", "--out",
                                  str(tmp_path / "r")])
    assert result.exit_code == 1
    assert result.stderr == "Error: no forecasts to report: run `forecast update` first\n"


@pytest.mark.slow
def test_the_scores_section_has_the_scores_and_the_reliability_diagram(report, fitted_example):
    from click.testing import CliRunner

    out, md, _html, _shown = report
    scored = json.loads(CliRunner().invoke(main, ["--workspace", str(fitted_example), "score",
                                                  "--json"]).stdout)
    section = md.split("## How good have the forecasts been?")[1].split("\n## ")[0]
    assert scored["questions"]
    for q in scored["questions"]:
        assert f"| {q['question']} | {q['probability']:.1%} | {q['as_of']} |" in section
        assert f"| {q['brier']:.3f} |" in section
    assert "![Reliability diagram" in section
    assert (out / "reliability.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_the_charts_and_counts_say_what_they_show(report):
    """A resolved-YES scenario's fan chart read "P(an event after as-of)" beside a 100% headline;
    the HTML showed literal backticks; a rule event before the questions opened was counted
    without saying so."""
    _out, md, html, shown = report
    sections = dict(re.findall(r"\n## [^\n]*\(([a-z-]+)\)\n(.*?)(?=\n## |\Z)", md, re.S))
    happened = {r["scenario"] for r in shown if r["status"] == "yes"}
    assert happened
    for scenario, text in sections.items():
        note = "Its questions resolved YES: the chart shows the chance of a further event"
        assert (note in text) == (scenario in happened), scenario
    assert "`" not in re.sub(r"<code>[^<]*</code>", "", html.split("<body>")[1])
    assert "<code>forecast explain</code>" in html or "<code>forecast score</code>" in html


def test_rule_events_before_the_questions_opened_are_said_to_be(workspace):
    """The report counted a hybrid event as meeting the rule without saying it predates the
    questions' opening (so it resolves nothing)."""
    import datetime as dt

    import numpy as np

    from forecast.priors import load_priors
    from forecast.report import _rule_count
    from forecast.series import make_series, week_ends

    weeks = week_ends(dt.date(2025, 12, 1), dt.date(2026, 1, 31))
    counts = {"hybrid-retaliation": np.array([1, 0, 0, 0, 0, 0, 0, 1]),
              "proxy-strikes": np.array([1, 0, 0, 0, 0, 0, 0, 0])}  # weeks end 12-13 .. 01-31
    series = make_series(weeks, counts, {}, np.ones(len(weeks)))
    scenarios = load_priors(workspace.priors_dir).scenarios
    assert _rule_count(series, scenarios["hybrid-retaliation"]) == (
        "hybrid-retaliation 2 (1 of them before its questions opened on 2026-01-01)")
    assert _rule_count(series, scenarios["proxy-strikes"]) == (
        "proxy-strikes 1 (all before its questions opened on 2026-01-01)")


def test_small_probabilities_keep_a_decimal_and_code_spans_render():
    from forecast.plots import _pct
    from forecast.report import _html

    assert [_pct(p) for p in (0.002, 0.05, 0.47, 0.995, 1.0, 0.0)] == [
        "0.2%", "5.0%", "47%", "99.5%", "100%", "0%"]
    assert _html("run `forecast update` <now>") == "run <code>forecast update</code> &lt;now&gt;"


def test_text_from_the_priors_and_the_feeds_stays_text_in_the_markdown():
    """Titles, quotes and source names come from files the user may have been sent: in
    report.md they cannot run a script, make a javascript: link or break a table."""
    from forecast.report import _Doc

    doc = _Doc()
    doc.heading(2, "Hybrid <script>alert(1)</script>")
    doc.para("see [the source](javascript:alert(1)) and `[aggregation]`")
    doc.table(["scenario", "n"], [["a | b\nc", "1"]])
    md, page = doc.render("t")
    assert "<script>" not in md and "<script>" not in page
    assert not re.search(r"(?<!\\)\]\(javascript:", md)  # only an escaped bracket before it
    assert "## Hybrid &lt;script>alert(1)&lt;/script>" in md
    assert "[the source\\](javascript:alert(1)) and `[aggregation]`" in md
    assert "| a \\| b c | 1 |" in md


@pytest.mark.slow
def test_a_report_whose_only_change_is_the_time_is_left_alone(report, fitted_example):
    """`make example` rewrote the tracked report when only its "written at" time changed."""
    from forecast.report import write_report
    from forecast.workspace import open_workspace

    out, _md, _html, _shown = report
    md, html = out / "report.md", out / "report.html"
    written = re.sub(r"Report written [0-9-]+ [0-9:]+ UTC", "Report written 1999-01-01 00:00 UTC",
                     md.read_text())
    assert written != md.read_text()
    md.write_text(written)  # as if written at another time
    stamps = md.stat().st_mtime_ns, html.stat().st_mtime_ns
    write_report(open_workspace(fitted_example), out, explain=True)  # the explanation is kept
    assert md.read_text() == written and (md.stat().st_mtime_ns, html.stat().st_mtime_ns) == stamps
