import datetime as dt

import pytest

from forecast.errors import ScenarioSpecError
from forecast.scenarios import all_indicators, load_scenario, load_scenarios
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
