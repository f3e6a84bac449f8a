import datetime as dt

import pytest

from cli import main
from forecast.errors import ScenarioSpecError
from forecast.scenarios import EventFilter, all_indicators, load_scenario, load_scenarios, overlaps
from tests.conftest import ROOT

FIVE = ["hybrid-retaliation", "support-via-iran", "destabilization-from-within",
        "caspian-corridor-sabotage", "proxy-strikes"]


def test_the_six_scenarios_and_their_union_are_bundled():
    scenarios = load_scenarios(ROOT / "priors" / "scenarios")
    assert set(scenarios) == {*FIVE, "direct-military-action", "any-retaliation"}
    assert list(scenarios["any-retaliation"].union) == FIVE
    for s in scenarios.values():
        assert s.questions
        for q in s.questions:
            assert q.id == f"{s.id}-by-{q.deadline.isoformat()}"
        if s.id != "any-retaliation":
            assert s.resolution is not None and s.resolution.min_sources >= 2
    assert len(all_indicators(scenarios)) == 8
    # "not directly": direct military action is the counter-scenario, outside the five forms
    assert [s.id for s in scenarios.values() if s.counter] == ["direct-military-action"]


def test_rules_keep_cameo_codes_as_strings():
    iran = load_scenario(ROOT / "priors" / "scenarios" / "support-via-iran.toml")
    assert iran.resolution.codes == ("072", "064")


SPEC = """id = "proxy-strikes"
title = "Proxy strikes"
description = "d"

[resolution]
actor1 = ["IRN"]
actor2 = ["AZE"]
codes = ["19"]
min_sources = 2

[[questions]]
opened = 2026-01-01
deadline = 2026-12-31
"""


def _spec(tmp_path, text):
    path = tmp_path / "proxy-strikes.toml"
    path.write_text(text)
    return path


def test_a_valid_spec(tmp_path):
    s = load_scenario(_spec(tmp_path, SPEC))
    assert s.questions[0].deadline == dt.date(2026, 12, 31)


@pytest.mark.parametrize(("old", "new", "problem"), [
    ('codes = ["19"]', 'codes = ["19x"]',
     "resolution.codes: expected a non-empty list of CAMEO event codes (2–4 digits, root 01–20), "
     "got ['19x']"),
    ('actor1 = ["IRN"]', 'actor1 = ["Iran"]',
     "resolution.actor1: expected a non-empty list of CAMEO country codes like 'RUS', "
     "got ['Iran']"),
    ("min_sources = 2", "min_sources = 0",
     "resolution.min_sources: expected an integer >= 1, got 0"),
    ("min_sources = 2", "min_source = 2",
     "resolution.min_source: unknown key (did you mean 'min_sources'?); "
     "resolution.min_sources: missing"),
    ("deadline = 2026-12-31", "deadline = 2025-12-31",
     "questions[0].deadline: must be after opened (2026-01-01), got 2025-12-31"),
    ("deadline = 2026-12-31", 'deadline = "soon"',
     "questions[0].deadline: expected a date (YYYY-MM-DD, unquoted), got 'soon'"),
    ('id = "proxy-strikes"', 'id = "proxies"', "id: must match the file name 'proxy-strikes', "
     "got 'proxies'"),
    ('description = "d"', 'description = "d"\ncounter = "yes"',
     "counter: expected true or false, got 'yes'"),
    # ids reach CSV cells and terminals: a formula or an escape sequence is refused
    ("opened = 2026-01-01", 'id = "=HYPERLINK(\\"http://x\\")"\nopened = 2026-01-01',
     "questions[0].id: expected lower-case words joined by '-', got "
     "'=HYPERLINK(\"http://x\")'"),
    ("opened = 2026-01-01", 'id = "q\\u001b[31m"\nopened = 2026-01-01',
     "questions[0].id: expected lower-case words joined by '-', got 'q\\x1b[31m'"),
])
def test_spec_errors_name_the_key(tmp_path, old, new, problem):
    path = _spec(tmp_path, SPEC.replace(old, new))
    with pytest.raises(ScenarioSpecError) as err:
        load_scenario(path)
    assert str(err.value) == f"{path}: {problem}"


def test_a_union_must_name_known_scenarios(tmp_path):
    _spec(tmp_path, SPEC)
    (tmp_path / "any.toml").write_text(
        'id = "any"\ntitle = "t"\ndescription = "d"\nunion = ["proxy-strike"]\n'
        "[[questions]]\nopened = 2026-01-01\ndeadline = 2026-12-31\n")
    with pytest.raises(ScenarioSpecError, match=r"any\.toml: union: unknown scenario "
                       r"'proxy-strike' \(did you mean 'proxy-strikes'\?\)"):
        load_scenarios(tmp_path)


def test_a_union_cannot_be_a_counter_scenario(tmp_path):
    _spec(tmp_path, SPEC)
    (tmp_path / "any.toml").write_text(
        'id = "any"\ntitle = "t"\ndescription = "d"\ncounter = true\nunion = ["proxy-strikes"]\n'
        "[[questions]]\nopened = 2026-01-01\ndeadline = 2026-12-31\n")
    with pytest.raises(ScenarioSpecError, match=r"any\.toml: counter: a union cannot be a "
                       r"counter-scenario: mark its members instead"):
        load_scenarios(tmp_path)


def test_no_bundled_indicator_matches_a_resolution_rule():
    assert overlaps(load_scenarios(ROOT / "priors" / "scenarios")) == []


OVERLAP = ("'rus-aze-military-posture' code 138 matches resolution code {} of '{}' (RUS → AZE): "
           "an event must count in one place only")


def _restore_138(scenarios_dir):
    path = scenarios_dir / "direct-military-action.toml"
    path.write_text(path.read_text().replace('codes = ["1382", "1384", "1385",', 'codes = ["138",'))
    return path


def test_an_indicator_matching_rules_lists_every_overlap(priors_dir):
    path = _restore_138(priors_dir / "scenarios")
    with pytest.raises(ScenarioSpecError) as err:
        load_scenarios(priors_dir / "scenarios")
    assert str(err.value) == (
        f"{path}: indicators[0].codes: {OVERLAP.format('1381', 'caspian-corridor-sabotage')}; "
        f"indicators[0].codes: {OVERLAP.format('1383', 'destabilization-from-within')}")


def test_priors_check_refuses_an_overlap_in_one_line(runner, workspace):
    path = _restore_138(workspace.priors_dir / "scenarios")
    result = runner.invoke(main, ["--workspace", str(workspace.root), "priors", "check",
                                  "--no-model"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"Error: {path}: indicators[0].codes: "
        f"{OVERLAP.format('1381', 'caspian-corridor-sabotage')}; "
        f"indicators[0].codes: {OVERLAP.format('1383', 'destabilization-from-within')}\n")


def test_overlaps_in_several_files_are_reported_together_under_the_folder(priors_dir):
    directory = priors_dir / "scenarios"
    _restore_138(directory)
    path = directory / "proxy-strikes.toml"
    path.write_text(path.read_text().replace('codes = ["13", "15"]', 'codes = ["13", "18"]'))
    with pytest.raises(ScenarioSpecError) as err:
        load_scenarios(directory)
    assert str(err.value) == (
        f"{directory}: "
        f"direct-military-action.toml: indicators[0].codes: "
        f"{OVERLAP.format('1381', 'caspian-corridor-sabotage')}; "
        f"direct-military-action.toml: indicators[0].codes: "
        f"{OVERLAP.format('1383', 'destabilization-from-within')}; "
        "proxy-strikes.toml: indicators[0].codes: 'irn-aze-threats' code 18 matches resolution "
        "code 18 of 'proxy-strikes' (IRN → AZE): an event must count in one place only")


def _filter(actor1, actor2, *codes, min_sources=1):
    return EventFilter(tuple(actor1), tuple(actor2), codes, min_sources)


@pytest.mark.parametrize(("indicator", "rule", "shared"), [
    (_filter(["RUS"], ["AZE"], "138"), _filter(["RUS"], ["AZE"], "191", "1381"),
     [("138", "1381")]),
    (_filter(["RUS"], ["AZE"], "1381", "1384"), _filter(["RUS"], ["AZE"], "13"),
     [("1381", "13"), ("1384", "13")]),
    (_filter(["RUS"], ["AZE"], "163"), _filter(["RUS"], ["AZE"], "163", min_sources=3),
     [("163", "163")]),
    (_filter(["RUS", "IRN"], ["AZE"], "19"), _filter(["IRN", "ARM"], ["AZE", "GEO"], "190"),
     [("19", "190")]),
    (_filter(["RUS"], ["AZE"], "1382", "1384"), _filter(["RUS"], ["AZE"], "1381", "1383"), []),
    (_filter(["RUS"], ["AZE"], "19"), _filter(["IRN", "ARM"], ["AZE"], "19"), []),
    (_filter(["RUS"], ["AZE"], "19"), _filter(["RUS"], ["GEO"], "19"), []),
    (_filter(["AZE"], ["RUS"], "1211"), _filter(["RUS"], ["AZE"], "1211"), []),
], ids=["indicator code is a prefix of the rule's", "rule code is a prefix of the indicator's",
        "more sources do not separate them", "one shared actor on each side is enough",
        "sibling codes", "disjoint actor1", "disjoint actor2", "the other direction"])
def test_filters_overlap_when_actors_intersect_and_a_code_prefixes_the_other(indicator, rule,
                                                                              shared):
    assert indicator.overlap(rule) == shared


def test_csv_cells_that_start_like_formulas_are_neutralised():
    from forecast.platforms.spreadsheet import cell

    assert [cell(t) for t in ("=SUM(A1)", "@SUM(1)", "+1", "-1", "\tx", "proxy-strikes")] == [
        "'=SUM(A1)", "'@SUM(1)", "'+1", "'-1", "'\tx", "proxy-strikes"]
