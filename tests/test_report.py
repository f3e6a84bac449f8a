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
        low, high = row["interval"]
        assert cells[1] == f"{row['probability']:.1%}"
        assert cells[2] == f"{low:.1%} – {high:.1%}"
        assert cells[3] == f"{row['without_claims']:.1%}"
        assert cells[5] == str(row["deadline"])


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
