"""Weekly series from the store, counted by hand on a small native file."""

import datetime as dt
import textwrap

import numpy as np
import pytest

from forecast.events import import_events
from forecast.priors import load_priors
from forecast.series import first_qualifying, week_ends, weekly_series
from forecast.store import open_store
from tests.conftest import ROOT

AS_OF = dt.date(2026, 3, 1)  # a Sunday; weeks end on Sundays: ..., Feb 22, Mar 1


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text(textwrap.dedent("""\
        date,actor1,actor2,event_code,num_sources,source_url,note
        2026-02-23,RUS,AZE,163,2,u1,sanctions: hybrid rule (>= 2 sources) in the last week
        2026-03-01,RUS,AZE,1621,3,u2,stop aid: hybrid rule on the last day of the last week
        2026-02-22,RUS,AZE,163,1,u3,one source only: below the hybrid rule
        2026-02-22,RUS,AZE,1312,1,u4,sanction threat indicator in the week before
        2026-02-16,RUS,IRN,062,1,u5,Russia-Iran military cooperation indicator
        2026-02-16,AZE,TUR,042,1,u6,volume only
        2026-03-02,RUS,AZE,163,5,u7,after the as-of date
        2026-01-01,RUS,AZE,163,5,u8,before the first week
        """))
    con = open_store(tmp_path / "store.duckdb")
    assert import_events(con, path, fmt="native").imported == 8
    yield con
    con.close()


def test_week_ends_are_complete_weeks_ending_on_the_as_of_date():
    weeks = week_ends(dt.date(2026, 2, 1), AS_OF)
    assert [str(w) for w in weeks] == ["2026-02-08", "2026-02-15", "2026-02-22", "2026-03-01"]
    with pytest.raises(ValueError, match="no complete week"):
        week_ends(dt.date(2026, 2, 26), AS_OF)


def test_weekly_counts_match_a_hand_count(store):
    scenarios = load_priors(ROOT / "priors").scenarios
    series = weekly_series(store, scenarios, start=dt.date(2026, 2, 1), as_of=AS_OF)
    assert list(series.week.dt.strftime("%Y-%m-%d").values) == [
        "2026-02-08", "2026-02-15", "2026-02-22", "2026-03-01"]
    assert "any-retaliation" not in series.scenario.values  # a union has no rule of its own
    hybrid = series.scenario_events.sel(scenario="hybrid-retaliation").values
    np.testing.assert_array_equal(hybrid, [0, 0, 0, 2])
    threats = series.indicator_events.sel(indicator="rus-aze-sanction-threats").values
    np.testing.assert_array_equal(threats, [0, 0, 1, 0])
    military = series.indicator_events.sel(indicator="rus-irn-military-cooperation").values
    np.testing.assert_array_equal(military, [0, 0, 1, 0])
    np.testing.assert_array_equal(series.volume.values, [0, 0, 4, 2])
    assert series.scenario_events.sel(scenario="direct-military-action").sum() == 0


def test_first_qualifying_event_of_a_scenario_and_of_a_union(store):
    scenarios = load_priors(ROOT / "priors").scenarios
    kw = {"since": dt.date(2026, 2, 1), "until": AS_OF}
    assert first_qualifying(store, scenarios["hybrid-retaliation"], scenarios, **kw) == \
        dt.date(2026, 2, 23)
    assert first_qualifying(store, scenarios["any-retaliation"], scenarios, **kw) == \
        dt.date(2026, 2, 23)
    assert first_qualifying(store, scenarios["proxy-strikes"], scenarios, **kw) is None
    assert first_qualifying(store, scenarios["hybrid-retaliation"], scenarios,
                            since=dt.date(2026, 2, 24), until=AS_OF) == dt.date(2026, 3, 1)
