import copy
import csv
import datetime as dt
import io
import json
import socket
import tomllib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forecast.errors import SubmissionError
from forecast.platforms import Platforms, SubmissionRow, example_platforms_toml, parse_platforms
from forecast.platforms.forecastbench import (
    ForecastBenchConfig,
    ForecastBenchQuestion,
    as_of_problem,
)
from forecast.platforms.forecastbench import payload as forecastbench_payload
from forecast.platforms.forecastbench import validate as validate_forecastbench
from forecast.platforms.metaculus import MetaculusConfig, resolve_posts, token_from_env
from forecast.platforms.metaculus import payload as metaculus_payload
from forecast.platforms.metaculus import post as post_metaculus
from forecast.platforms.metaculus import validate as validate_metaculus
from forecast.platforms.spreadsheet import csv_text
from forecast.schema import Table
from tests.fake_metaculus import Reply, Request, post_reply

HYBRID = "hybrid-retaliation-by-2026-12-31"
ENERGY = "energy-cutoff-by-2027-06-30"
UNMAPPED = "border-clash-by-2026-12-31"
TOKEN = "s3cret-T0KEN-abc123"


def row(question=HYBRID, probability=0.25, deadline=dt.date(2026, 12, 31)):
    return SubmissionRow(question, question.split("-by-")[0], deadline, dt.date(2026, 11, 22),
                         probability, (0.1, 0.4), f"reasoning for {question}")


ROWS = [row(), row(ENERGY, 0.6, dt.date(2027, 6, 30)), row(UNMAPPED, 0.5)]
METACULUS = MetaculusConfig({HYBRID: 990001, ENERGY: 990002})
FORECASTBENCH = ForecastBenchConfig(
    "Org", "model-x", "Model Org", "2026-11-22-llm.json", dt.date(2026, 11, 22),
    {HYBRID: ForecastBenchQuestion("FAKE-0001", "infer"),
     ENERGY: ForecastBenchQuestion("FAKE-0002", "infer", "up")})


def platforms_table(data, problems):
    return Table(data, "platforms", problems, ("metaculus", "forecastbench"))


def parse(data):
    problems: list[str] = []
    return parse_platforms(platforms_table(data, problems)), problems


# --- payloads -----------------------------------------------------------------------------------

def test_metaculus_payload_maps_questions_and_names_the_skipped_rows():
    payload, warnings = metaculus_payload(ROWS, METACULUS)
    assert payload == [{"question": 990001, "probability_yes": 0.25},
                       {"question": 990002, "probability_yes": 0.6}]
    assert json.loads(json.dumps(payload)) == payload
    assert warnings == [f"{UNMAPPED}: skipped, not mapped to a metaculus question "
                        "([platforms.metaculus.questions])"]
    validate_metaculus(payload)


@pytest.mark.parametrize(("p", "clipped"), [(0.0, 0.001), (1.0, 0.999), (0.9995, 0.999),
                                            (0.0004, 0.001)])
def test_metaculus_probabilities_are_clipped_with_a_warning(p, clipped):
    payload, warnings = metaculus_payload([row(probability=p)], METACULUS)
    assert payload == [{"question": 990001, "probability_yes": clipped}]
    assert warnings == [f"{HYBRID}: probability {p!r} clipped to {clipped!r} "
                        "(Metaculus accepts 0.001 to 0.999)"]


def test_metaculus_bounds_are_kept_without_a_warning():
    payload, warnings = metaculus_payload([row(probability=0.001), row(ENERGY, 0.999)], METACULUS)
    assert [item["probability_yes"] for item in payload] == [0.001, 0.999]
    assert warnings == []


def test_forecastbench_payload_has_the_forecast_set_fields():
    payload, warnings = forecastbench_payload(ROWS, FORECASTBENCH)
    assert payload == {
        "organization": "Org",
        "model": "model-x",
        "model_organization": "Model Org",
        "question_set": "2026-11-22-llm.json",
        "forecast_due_date": "2026-11-22",
        "forecasts": [
            {"id": "FAKE-0001", "source": "infer", "forecast": 0.25,
             "resolution_date": "2026-12-31", "reasoning": f"reasoning for {HYBRID}"},
            {"id": "FAKE-0002", "source": "infer", "forecast": 0.6,
             "resolution_date": "2027-06-30", "reasoning": f"reasoning for {ENERGY}",
             "direction": "up"},
        ],
    }
    assert json.loads(json.dumps(payload)) == payload
    assert warnings == [f"{UNMAPPED}: skipped, not mapped to a forecastbench question "
                        "([platforms.forecastbench.questions])"]
    validate_forecastbench(payload)


def test_csv_reads_back_with_the_csv_module():
    rows = [row(probability=1 / 3), row(ENERGY, 0.6, dt.date(2027, 6, 30))]
    text = csv_text(rows)
    records = list(csv.DictReader(io.StringIO(text)))
    assert text.splitlines()[0] == "question,deadline,probability,interval_low,interval_high,as_of"
    assert records[0] == {"question": HYBRID, "deadline": "2026-12-31",
                          "probability": repr(1 / 3), "interval_low": "0.1",
                          "interval_high": "0.4", "as_of": "2026-11-22"}
    assert float(records[0]["probability"]) == 1 / 3  # round-trips exactly
    assert records[1]["question"] == ENERGY and records[1]["deadline"] == "2027-06-30"
    assert len(records) == 2


def test_csv_quotes_a_question_with_a_comma():
    text = csv_text([row('odd,"id"-by-2026-12-31')])
    assert next(csv.DictReader(io.StringIO(text)))["question"] == 'odd,"id"-by-2026-12-31'


# --- Metaculus validation -----------------------------------------------------------------------

def good_metaculus():
    return [{"question": 990001, "probability_yes": 0.25},
            {"question": 990002, "probability_yes": 0.6}]


def _set(path, value):
    def mutate(payload):
        target = payload
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return payload
    return mutate


def _drop(path):
    def mutate(payload):
        target = payload
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
        return payload
    return mutate


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda p: {"forecasts": p}, "metaculus: expected a JSON list of forecasts, got an object"),
    (lambda p: [], "metaculus: no forecasts (no question is mapped in "
                   "[platforms.metaculus.questions])"),
    (_set([1], [990002, 0.6]), "metaculus[1]: expected an object, got a list"),
    (_drop([1, "probability_yes"]), "metaculus[1].probability_yes: missing"),
    (_drop([0, "question"]), "metaculus[0].question: missing"),
    (_set([1, "probability"], 0.6), "metaculus[1]: unexpected key 'probability' "
                                    "(did you mean 'probability_yes'?)"),
    (_set([1, "question"], True), "metaculus[1].question: expected a positive integer "
                                  "(the question id, not the post id), got True"),
    (_set([1, "question"], "990002"), "metaculus[1].question: expected a positive integer "
                                      "(the question id, not the post id), got '990002'"),
    (_set([1, "question"], 0), "metaculus[1].question: expected a positive integer "
                               "(the question id, not the post id), got 0"),
    (_set([1, "question"], 990001), "metaculus[1].question: question 990001 is already "
                                    "forecast in metaculus[0]"),
    (_set([1, "probability_yes"], 1.0), "metaculus[1].probability_yes: expected a number in "
                                        "[0.001, 0.999], got 1.0"),
    (_set([1, "probability_yes"], 0.0005), "metaculus[1].probability_yes: expected a number "
                                           "in [0.001, 0.999], got 0.0005"),
    (_set([1, "probability_yes"], float("nan")), "metaculus[1].probability_yes: expected a "
                                                 "number in [0.001, 0.999], got nan"),
    (_set([1, "probability_yes"], "0.6"), "metaculus[1].probability_yes: expected a number "
                                          "in [0.001, 0.999], got '0.6'"),
    (_set([1, "probability_yes"], True), "metaculus[1].probability_yes: expected a number in "
                                         "[0.001, 0.999], got True"),
])
def test_metaculus_validation_names_the_item_and_field(mutate, message):
    with pytest.raises(SubmissionError) as err:
        validate_metaculus(mutate(good_metaculus()))
    assert str(err.value) == message


# --- ForecastBench validation -------------------------------------------------------------------

def good_forecastbench():
    return {
        "organization": "Org", "model": "model-x", "model_organization": "Model Org",
        "question_set": "2026-11-22-llm.json", "forecast_due_date": "2026-11-22",
        "forecasts": [
            {"id": "Q1", "source": "infer", "forecast": 0.25, "resolution_date": "2026-12-31",
             "reasoning": "r1"},
            {"id": "Q2", "source": "acled", "forecast": 0.5, "resolution_date": "2026-12-22",
             "reasoning": "r2", "direction": "up"},
        ],
    }


# ForecastBench takes the due date from question_set[:10], never from forecast_due_date
LATEST = ("expected the name of the question set due on 2026-11-22, starting with that date "
          "(\"2026-11-22-llm.json\"), got 'latest-llm.json'")
ELEVEN_08 = ("'2026-11-08-llm.json' is the question set due on 2026-11-08, not on "
             "forecast_due_date 2026-11-22 (ForecastBench reads the due date from the name)")
HORIZON = "; acled questions resolve 7, 30, 90, 180, 365, 1095, 1825 or 3650 days after it"


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda p: [p], "forecastbench: expected a JSON object (a forecast set), got a list"),
    (_drop(["model"]), "forecastbench.model: missing"),
    (_set(["modle"], "x"), "forecastbench: unexpected key 'modle' (did you mean 'model'?)"),
    (_set(["organization"], " "), "organization: expected a non-empty string, got ' '"),
    (_set(["model_organization"], 3), "model_organization: expected a non-empty string, got 3"),
    (_set(["question_set"], None), "question_set: expected a non-empty string, got None"),
    (_set(["forecast_due_date"], "2026/11/22"),
     "forecast_due_date: expected an ISO date (YYYY-MM-DD), got '2026/11/22'"),
    (_set(["forecast_due_date"], "20261122"),
     "forecast_due_date: expected an ISO date (YYYY-MM-DD), got '20261122'"),
    (_set(["question_set"], "latest-llm.json"), "question_set: " + LATEST),
    (_set(["question_set"], "2026-11-08-llm.json"), "question_set: " + ELEVEN_08),
    (_drop(["forecasts"]), "forecastbench.forecasts: missing"),
    (_set(["forecasts"], []), "forecasts: expected a non-empty list, got []"),
    (_set(["forecasts"], {"id": "Q1"}), "forecasts: expected a non-empty list, got {'id': 'Q1'}"),
    (_set(["forecasts", 1], "Q2"), "forecasts[1]: expected an object, got a string"),
    (_drop(["forecasts", 1, "reasoning"]), "forecasts[1].reasoning: missing"),
    (_set(["forecasts", 1, "resolution"], True),
     "forecasts[1]: unexpected key 'resolution' (did you mean 'resolution_date'?)"),
    (_set(["forecasts", 1, "id"], ""), "forecasts[1].id: expected a non-empty string, got ''"),
    (_set(["forecasts", 1, "id"], 42), "forecasts[1].id: expected a non-empty string, got 42"),
    (_set(["forecasts", 1, "source"], "acleed"),
     "forecasts[1].source: unknown ForecastBench source 'acleed' (did you mean 'acled'?); "
     "expected one of acled, dbnomics, fred, infer, manifold, metaculus, polymarket, "
     "wikipedia, yfinance"),
    (_set(["forecasts", 1, "forecast"], 1.5),
     "forecasts[1].forecast: expected a number in [0, 1], got 1.5"),
    (_set(["forecasts", 1, "forecast"], -0.1),
     "forecasts[1].forecast: expected a number in [0, 1], got -0.1"),
    (_set(["forecasts", 1, "forecast"], float("inf")),
     "forecasts[1].forecast: expected a number in [0, 1], got inf"),
    (_set(["forecasts", 1, "forecast"], False),
     "forecasts[1].forecast: expected a number in [0, 1], got False"),
    (_set(["forecasts", 1, "resolution_date"], "2026-02-30"),
     "forecasts[1].resolution_date: expected an ISO date (YYYY-MM-DD), got '2026-02-30'"),
    (_set(["forecasts", 1, "resolution_date"], 20261222),
     "forecasts[1].resolution_date: expected an ISO date (YYYY-MM-DD), got 20261222"),
    (_set(["forecasts", 1, "reasoning"], ""),
     "forecasts[1].reasoning: expected a non-empty string, got ''"),
    (_set(["forecasts", 1, "direction"], None),
     "forecasts[1].direction: expected a non-empty string, got None"),
    (_set(["forecasts", 1], {"id": "Q1", "source": "infer", "forecast": 0.3,
                             "resolution_date": "2026-12-31", "reasoning": "again"}),
     "forecasts[1]: same id, source, resolution_date and direction as forecasts[0]"),
    (_set(["forecasts", 1, "resolution_date"], "2026-12-31"),
     "forecasts[1].resolution_date: 2026-12-31 is 39 days after forecast_due_date 2026-11-22"
     + HORIZON),
    (_set(["forecasts", 1, "resolution_date"], "2026-11-22"),
     "forecasts[1].resolution_date: 2026-11-22 is 0 days after forecast_due_date 2026-11-22"
     + HORIZON),
])
def test_forecastbench_validation_names_the_field(mutate, message):
    with pytest.raises(SubmissionError) as err:
        validate_forecastbench(mutate(good_forecastbench()))
    assert str(err.value) == message


@pytest.mark.parametrize("days", [7, 30, 90, 180, 365, 1095, 1825, 3650])
def test_dataset_questions_accept_every_horizon(days):
    payload = good_forecastbench()
    resolution = dt.date(2026, 11, 22) + dt.timedelta(days=days)
    payload["forecasts"][1]["resolution_date"] = resolution.isoformat()
    validate_forecastbench(payload)


def test_a_different_direction_or_date_is_not_a_duplicate():
    payload = good_forecastbench()
    payload["forecasts"] += [
        {**payload["forecasts"][1], "direction": "down"},
        {**payload["forecasts"][1], "resolution_date": "2027-11-22"},
        {**payload["forecasts"][0], "source": "manifold"},
    ]
    validate_forecastbench(payload)


def test_market_questions_have_no_horizon_rule():
    payload = good_forecastbench()
    payload["forecasts"][0]["resolution_date"] = "2031-01-01"
    validate_forecastbench(payload)


@pytest.mark.parametrize("as_of", [dt.date(2026, 11, 21), dt.date(2026, 11, 23)],
                         ids=["day-before", "day-after"])
def test_an_update_not_as_of_the_due_date_is_a_problem(as_of):
    assert as_of_problem(as_of, FORECASTBENCH) == (
        f"the latest update is as of {as_of}, not ForecastBench's forecast_due_date 2026-11-22 "
        "(its question set is out at 00:00 UTC that day, forecasts are due by 23:59:59 UTC)")


def test_an_update_as_of_the_due_date_is_on_time():
    assert as_of_problem(dt.date(2026, 11, 22), FORECASTBENCH) is None


def test_validators_do_not_change_the_payload():
    payload = good_forecastbench()
    before = copy.deepcopy(payload)
    validate_forecastbench(payload)
    assert payload == before


# --- config -------------------------------------------------------------------------------------

FULL = {
    "metaculus": {"base_url": "https://example.org/", "token_env": "MY_METACULUS_KEY", "timeout": 3,
                  "retries": 0, "questions": {HYBRID: 990001}},
    "forecastbench": {"organization": "Org", "model": "m", "model_organization": "MO",
                      "question_set": "2026-11-22-llm.json",
                      "forecast_due_date": dt.date(2026, 11, 22),
                      "questions": {HYBRID: {"id": "Q1", "source": "acled", "direction": "up"}}},
}


def test_parse_platforms_reads_both_platforms():
    platforms, problems = parse(FULL)
    assert problems == []
    assert platforms == Platforms(
        MetaculusConfig({HYBRID: 990001}, "https://example.org/", "MY_METACULUS_KEY", 3.0, 0),
        ForecastBenchConfig("Org", "m", "MO", "2026-11-22-llm.json", dt.date(2026, 11, 22),
                            {HYBRID: ForecastBenchQuestion("Q1", "acled", "up")}))


def test_a_metaculus_post_id_is_mapped_as_a_post():
    platforms, problems = parse({"metaculus": {"questions": {HYBRID: {"post": 41234},
                                                             ENERGY: 990002}}})
    assert problems == []
    assert platforms.metaculus == MetaculusConfig({ENERGY: 990002}, posts={HYBRID: 41234})


def test_metaculus_defaults():
    platforms, problems = parse({"metaculus": {"questions": {}}})
    assert problems == []
    assert platforms.metaculus == MetaculusConfig({}, "https://www.metaculus.com",
                                                  "METACULUS_TOKEN", 10.0, 2)
    assert platforms.forecastbench is None


def test_no_platforms_table():
    assert parse_platforms(None) == Platforms(None, None)


def test_parse_platforms_when_platforms_is_not_a_table():
    platforms, problems = parse("metaculus")
    assert platforms == Platforms()
    assert problems == ["platforms: expected a table, got str"]


def _with(section, key, value):
    data = copy.deepcopy(FULL)
    if value is _MISSING:
        del data[section][key]
    else:
        data[section][key] = value
    return data


_MISSING = object()
_POSITIVE = "expected a positive integer (the Metaculus question id, not the post id)"


@pytest.mark.parametrize(("data", "expected"), [
    ({"metaculs": {}}, ["platforms.metaculs: unknown key (did you mean 'metaculus'?)"]),
    (_with("metaculus", "retires", 2),
     ["platforms.metaculus.retires: unknown key (did you mean 'retries'?)"]),
    (_with("metaculus", "questions", {HYBRID: "990001"}),
     [f"platforms.metaculus.questions.{HYBRID}: {_POSITIVE}, got '990001'"]),
    (_with("metaculus", "questions", {HYBRID: True, "b": 0, "c": -3, "d": 1.5}),
     [f"platforms.metaculus.questions.{HYBRID}: {_POSITIVE}, got True",
      f"platforms.metaculus.questions.b: {_POSITIVE}, got 0",
      f"platforms.metaculus.questions.c: {_POSITIVE}, got -3",
      f"platforms.metaculus.questions.d: {_POSITIVE}, got 1.5"]),
    (_with("metaculus", "questions", {HYBRID: {"post": 0}, "b": {"pots": 3}, "c": {}}),
     [f"platforms.metaculus.questions.{HYBRID}.post: expected a positive integer (the number "
      "in the question's address), got 0",
      "platforms.metaculus.questions.b.pots: unknown key (did you mean 'post'?)",
      "platforms.metaculus.questions.b.post: missing",
      "platforms.metaculus.questions.c.post: missing"]),
    (_with("metaculus", "questions", _MISSING), ["platforms.metaculus.questions: missing"]),
    (_with("metaculus", "questions", [990001]),
     ["platforms.metaculus.questions: expected a table, got list"]),
    (_with("metaculus", "base_url", "www.metaculus.com"),
     ["platforms.metaculus.base_url: expected an https:// address, got 'www.metaculus.com'"]),
    (_with("metaculus", "base_url", "http://evil.example/"),
     ["platforms.metaculus.base_url: expected an https:// address, got 'http://evil.example/': "
      "the token would travel in clear text (http is allowed to this machine only)"]),
    (_with("metaculus", "base_url", "ftp://www.metaculus.com"),
     ["platforms.metaculus.base_url: expected an https:// address, got "
      "'ftp://www.metaculus.com'"]),
    (_with("metaculus", "token_env", "AWS_SECRET_ACCESS_KEY"),
     ["platforms.metaculus.token_env: AWS_SECRET_ACCESS_KEY is not a Metaculus token's "
      "variable: its name must contain METACULUS, or be listed in the variable "
      "FORECAST_TOKEN_VARIABLES (comma-separated names), so that no other secret is sent"]),
    (_with("metaculus", "token_env", "abc123 secret-value"),
     ["platforms.metaculus.token_env: expected the NAME of an environment variable (like "
      "METACULUS_TOKEN) that holds the token, never the token itself"]),
    (_with("metaculus", "timeout", 0), ["platforms.metaculus.timeout: expected a number of "
                                        "seconds > 0, got 0"]),
    (_with("metaculus", "timeout", "10"), ["platforms.metaculus.timeout: expected a number, "
                                           "got '10'"]),
    (_with("metaculus", "retries", -1), ["platforms.metaculus.retries: expected an integer "
                                         ">= 0, got -1"]),
    (_with("metaculus", "retries", 1.5), ["platforms.metaculus.retries: expected an integer "
                                          ">= 0, got 1.5"]),
    (_with("forecastbench", "model", _MISSING), ["platforms.forecastbench.model: missing"]),
    (_with("forecastbench", "forecast_due_date", _MISSING),
     ["platforms.forecastbench.forecast_due_date: missing"]),
    (_with("forecastbench", "questions", _MISSING),
     ["platforms.forecastbench.questions: missing"]),
    (_with("forecastbench", "forecast_due_date", "2026-11-22"),
     ["platforms.forecastbench.forecast_due_date: expected a date (YYYY-MM-DD, unquoted), "
      "got '2026-11-22'"]),
    (_with("forecastbench", "question_set", "latest-llm.json"),
     ["platforms.forecastbench.question_set: " + LATEST]),
    (_with("forecastbench", "question_set", "2026-11-08-llm.json"),
     ["platforms.forecastbench.question_set: " + ELEVEN_08]),
    (_with("forecastbench", "question_set", "2026-11-22"), []),
    (_with("forecastbench", "question_set", "2026-02-30-llm.json"),
     ["platforms.forecastbench.question_set: expected the name of the question set due on "
      "2026-11-22, starting with that date (\"2026-11-22-llm.json\"), got "
      "'2026-02-30-llm.json'"]),
    (_with("forecastbench", "organization", ""),
     ["platforms.forecastbench.organization: must not be empty"]),
    (_with("forecastbench", "questions", {HYBRID: "Q1"}),
     [f"platforms.forecastbench.questions.{HYBRID}: expected a table "
      '{ id = "...", source = "..." }, got \'Q1\'']),
    (_with("forecastbench", "questions", {HYBRID: {"id": "Q1", "sorce": "infer"}}),
     [f"platforms.forecastbench.questions.{HYBRID}.sorce: unknown key "
      "(did you mean 'source'?)",
      f"platforms.forecastbench.questions.{HYBRID}.source: missing"]),
    (_with("forecastbench", "questions", {HYBRID: {"id": 7, "source": ""}}),
     [f"platforms.forecastbench.questions.{HYBRID}.id: expected a string, got 7",
      f"platforms.forecastbench.questions.{HYBRID}.source: must not be empty"]),
    (_with("forecastbench", "questions", {HYBRID: {"id": "Q1", "source": "fread"}}),
     [f"platforms.forecastbench.questions.{HYBRID}.source: unknown ForecastBench source "
      "'fread' (did you mean 'fred'?); expected one of acled, dbnomics, fred, infer, manifold, "
      "metaculus, polymarket, wikipedia, yfinance"]),
])
def test_parse_platforms_problems(data, expected):
    problems: list[str] = []
    table = platforms_table(data, problems)
    platforms = parse_platforms(table)
    assert problems == expected
    for name in ("metaculus", "forecastbench"):  # a platform with a problem is not configured
        broken = any(p.startswith(f"platforms.{name}.") for p in expected)
        assert (getattr(platforms, name) is None) == (broken or name not in data)


def test_all_problems_are_reported_at_once():
    data = {"metaculus": {"retries": -1, "questions": {"a": 0}},
            "forecastbench": {"organization": "Org"}}
    _, problems = parse(data)
    assert problems == [
        "platforms.metaculus.retries: expected an integer >= 0, got -1",
        f"platforms.metaculus.questions.a: {_POSITIVE}, got 0",
        "platforms.forecastbench.model: missing",
        "platforms.forecastbench.model_organization: missing",
        "platforms.forecastbench.question_set: missing",
        "platforms.forecastbench.forecast_due_date: missing",
        "platforms.forecastbench.questions: missing",
    ]


def test_another_variable_may_hold_the_token_when_the_user_lists_it(monkeypatch):
    """The allow-list lives in the user's environment, not in forecast.toml (which a shared
    workspace brings along); http is allowed to this machine only."""
    config = _with("metaculus", "token_env", "BOT_KEY")
    assert parse(config)[1]
    monkeypatch.setenv("FORECAST_TOKEN_VARIABLES", "OTHER, BOT_KEY")
    platforms, problems = parse(config)
    assert problems == [] and platforms.metaculus.token_env == "BOT_KEY"
    for url in ("http://127.0.0.1:8080/", "http://localhost/", "http://[::1]:9/"):
        assert parse(_with("metaculus", "base_url", url))[1] == []


def test_a_token_pasted_as_token_env_is_never_echoed():
    _, problems = parse(_with("metaculus", "token_env", TOKEN))
    assert problems and not any(TOKEN in p for p in problems)


# --- the example workspace's section ------------------------------------------------------------

def test_example_toml_round_trips_with_fake_ids():
    due = dt.date(2026, 11, 22)
    text = example_platforms_toml([HYBRID, ENERGY, HYBRID], due=due)
    data = tomllib.loads(text)
    assert list(data) == ["platforms"]
    platforms, problems = parse(data["platforms"])
    assert problems == []
    assert platforms.metaculus == MetaculusConfig({HYBRID: 990001, ENERGY: 990002})
    assert platforms.forecastbench == ForecastBenchConfig(
        "example (simulated)", "forecast toolkit (simulated example)", "example (simulated)",
        "2026-11-22-llm.json", due,
        {HYBRID: ForecastBenchQuestion("FAKE-0001", "infer"),
         ENERGY: ForecastBenchQuestion("FAKE-0002", "infer")})
    assert "FAKE: no such questions" in text and "SIMULATED" in text


def test_example_toml_payloads_validate():
    due = dt.date(2026, 11, 22)
    data = tomllib.loads(example_platforms_toml([HYBRID, ENERGY], due=due))
    platforms, _ = parse(data["platforms"])
    rows = [row(), row(ENERGY, 0.6, dt.date(2027, 6, 30))]
    validate_metaculus(metaculus_payload(rows, platforms.metaculus)[0])
    validate_forecastbench(forecastbench_payload(rows, platforms.forecastbench)[0])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=20), max_size=5))
def test_example_toml_round_trips_any_question_ids(ids):
    data = tomllib.loads(example_platforms_toml(ids, due=dt.date(2026, 11, 22)))
    platforms, problems = parse(data["platforms"])
    assert problems == []
    assert list(platforms.metaculus.questions) == list(dict.fromkeys(ids))
    assert list(platforms.forecastbench.questions) == list(dict.fromkeys(ids))


# --- posting ------------------------------------------------------------------------------------

def config_for(url, **options):
    return MetaculusConfig({HYBRID: 990001}, url, **options)


def post(fake_or_url, *, retries=2, timeout=2.0, token=TOKEN):
    url = fake_or_url if isinstance(fake_or_url, str) else fake_or_url.url
    sleeps: list[float] = []
    status = post_metaculus(good_metaculus(), config_for(url, retries=retries, timeout=timeout),
                            token=token, sleep=sleeps.append, backoff=0.5)
    return status, sleeps


def post_error(fake_or_url, **options):
    sleeps: list[float] = []
    url = fake_or_url if isinstance(fake_or_url, str) else fake_or_url.url
    with pytest.raises(SubmissionError) as err:
        post_metaculus(good_metaculus(), config_for(url, **options), token=TOKEN,
                       sleep=sleeps.append, backoff=0.5)
    assert TOKEN not in str(err.value)
    return str(err.value), sleeps


def assert_forecast_request(request: Request):
    assert request.method == "POST"
    assert request.path == "/api/questions/forecast/"
    assert request.headers["Authorization"] == f"Token {TOKEN}"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Accept"] == "application/json"
    assert json.loads(request.body) == [{"question": 990001, "probability_yes": 0.25},
                                        {"question": 990002, "probability_yes": 0.6}]


def test_post_succeeds_on_201(metaculus):
    fake = metaculus(Reply(201, "[]"))
    assert post(fake) == (201, [])
    assert len(fake.seen) == 1
    assert_forecast_request(fake.seen[0])


# the batch is good_metaculus(): 990001 (mapped from HYBRID by config_for) and 990002
BATCH = f"; the batch held questions 990001 ({HYBRID}), 990002"


@pytest.mark.parametrize(("status", "body", "named"), [
    # the bodies Metaculus's bulk_create_forecasts_api_view gives (questions/views.py)
    (400, '["Wrong question id 990002"]', "; it names question 990002"),
    (405, '{"error": "Question 990001 is already closed to forecasting !"}',
     f"; it names question 990001 ({HYBRID})"),
    (400, '[{}, {"probability_yes": ["Ensure this value is less than or equal to 0.999."]}]',
     "; it names question 990002"),
    (400, '{"question": ["Invalid pk \\"990001\\" - object does not exist."]}',
     f"; it names question 990001 ({HYBRID})"),
    (403, '{"detail": "You do not have permission to perform this action."}', BATCH),
], ids=["wrong-id", "closed", "item-errors", "invalid-pk", "no-question-named"])
def test_a_4xx_is_not_retried_and_names_the_question(metaculus, status, body, named):
    fake = metaculus(Reply(status, body))
    message, sleeps = post_error(fake, retries=2)
    assert message == f"Metaculus refused the forecasts ({fake.url}api/questions/forecast/): " \
                      f"HTTP {status}: {body}{named}"
    assert len(fake.seen) == 1 and sleeps == []
    assert_forecast_request(fake.seen[0])


@pytest.mark.parametrize("suffix", ["api", "api/", "/api//"])
def test_a_base_url_ending_in_api_is_the_site(metaculus, suffix):
    fake = metaculus(Reply(201, "[]"))
    assert post(fake.url.rstrip("/") + "/" + suffix.lstrip("/")) == (201, [])
    assert_forecast_request(fake.seen[0])  # /api/questions/forecast/, not /api/api/...


def test_a_long_reply_is_cut_to_an_excerpt(metaculus):
    fake = metaculus(Reply(400, "x" * 5000))
    message, _ = post_error(fake)
    assert message.endswith(": HTTP 400: " + "x" * 197 + "..." + BATCH)


def test_a_503_is_retried_after_a_backoff(metaculus):
    fake = metaculus(Reply(503, "busy"), Reply(201, "[]"))
    assert post(fake) == (201, [0.5])
    assert len(fake.seen) == 2
    for request in fake.seen:
        assert_forecast_request(request)


def test_a_server_that_keeps_failing_is_given_up_on(metaculus):
    fake = metaculus(Reply(500, "oops"))
    message, sleeps = post_error(fake, retries=2)
    assert message == (f"posting to Metaculus ({fake.url}api/questions/forecast/) failed after "
                       "3 attempts; last failure: HTTP 500: oops")
    assert len(fake.seen) == 3
    assert sleeps == [0.5, 1.0]


def test_a_server_that_does_not_answer_times_out(metaculus):
    fake = metaculus(Reply(201, "[]", delay=30))
    message, sleeps = post_error(fake, retries=1, timeout=0.2)
    assert message.startswith(f"posting to Metaculus ({fake.url}api/questions/forecast/) failed "
                              "after 2 attempts; last failure: ")
    assert "timed out" in message
    assert len(fake.seen) == 2 and sleeps == [0.5]


def test_a_refused_connection_is_retried_then_reported():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    message, sleeps = post_error(f"http://127.0.0.1:{port}", retries=2, timeout=1.0)
    assert message.startswith(f"posting to Metaculus (http://127.0.0.1:{port}/api/questions/"
                              "forecast/) failed after 3 attempts; last failure: ")
    assert "refused" in message.lower()
    assert sleeps == [0.5, 1.0]


def test_the_token_is_redacted_from_an_echoing_server(metaculus):
    fake = metaculus(Reply(400, "bad request", echo_authorization=True))
    message, _ = post_error(fake)
    assert message.endswith("HTTP 400: bad request (you sent Authorization: Token ***)" + BATCH)


def test_the_token_is_redacted_before_the_excerpt_is_cut(metaculus):
    # the token straddles the 200-character cut: no part of it may survive
    fake = metaculus(Reply(400, "x" * 180, echo_authorization=True))
    message, _ = post_error(fake)
    assert TOKEN[:8] not in message


def test_a_redirect_is_not_followed(metaculus):
    # urllib would follow it as a GET without the forecasts
    target = metaculus(Reply(200, "[]"))
    fake = metaculus(Reply(301, headers={"Location": target.url + "api/questions/forecast/"}))
    message, sleeps = post_error(fake)
    assert message == (f"Metaculus refused the forecasts ({fake.url}api/questions/forecast/): "
                       f"HTTP 301 (a redirect to {target.url}api/questions/forecast/: set "
                       "[platforms.metaculus] base_url to that site)")
    assert len(fake.seen) == 1 and target.seen == [] and sleeps == []


def test_an_invalid_payload_is_not_posted(metaculus):
    fake = metaculus(Reply(201, "[]"))
    with pytest.raises(SubmissionError, match=r"^metaculus: no forecasts"):
        post_metaculus([], config_for(fake.url), token=TOKEN, sleep=lambda s: None)
    assert fake.seen == []


@pytest.mark.parametrize("token", ["", "abc\r\nX-Evil: 1", "tökén"])
def test_an_unusable_token_is_refused_without_echoing_it(metaculus, token):
    fake = metaculus(Reply(201, "[]"))
    with pytest.raises(SubmissionError) as err:
        post_metaculus(good_metaculus(), config_for(fake.url), token=token,
                       sleep=lambda s: None)
    assert str(err.value) == "the Metaculus token is empty or not printable ASCII text"
    assert fake.seen == []


def test_token_from_env(monkeypatch):
    config = MetaculusConfig({}, token_env="MY_METACULUS_TOKEN")
    monkeypatch.setenv("MY_METACULUS_TOKEN", f" {TOKEN}\n")
    assert token_from_env(config) == TOKEN


@pytest.mark.parametrize("value", [None, "", "   "])
def test_a_missing_token_names_the_variable(monkeypatch, value):
    config = MetaculusConfig({}, token_env="MY_METACULUS_TOKEN")
    if value is None:
        monkeypatch.delenv("MY_METACULUS_TOKEN", raising=False)
    else:
        monkeypatch.setenv("MY_METACULUS_TOKEN", value)
    with pytest.raises(SubmissionError) as err:
        token_from_env(config)
    assert str(err.value) == ("no Metaculus token: set the environment variable "
                              "MY_METACULUS_TOKEN (see [platforms.metaculus] token_env)")


def test_the_token_is_redacted_from_a_failing_server_after_retries(metaculus):
    fake = metaculus(Reply(502, "upstream", echo_authorization=True))
    message, _ = post_error(fake, retries=1)
    assert message.endswith("failed after 2 attempts; last failure: HTTP 502: upstream "
                            "(you sent Authorization: Token ***)")


# --- post ids resolved to question ids ----------------------------------------------------------

def resolve(fake, posts, *, token=TOKEN, **options):
    config = MetaculusConfig({ENERGY: 990002}, fake.url, posts=posts, **options)
    return resolve_posts(config, token=token, sleep=lambda s: None)


def test_post_ids_are_resolved_to_their_questions_with_the_titles(metaculus):
    fake = metaculus(pages={"/api/posts/41234/": post_reply(41234, 40876, "Will it  happen?\n")})
    config, notes = resolve(fake, {HYBRID: 41234})
    assert config == MetaculusConfig({ENERGY: 990002, HYBRID: 40876}, fake.url)
    assert notes == [f'{HYBRID}: Metaculus post 41234 is question 40876, "Will it happen?"']
    (request,) = fake.seen
    assert (request.method, request.path) == ("GET", "/api/posts/41234/")
    assert request.headers["Authorization"] == f"Token {TOKEN}"
    # the payload then forecasts the question, never the post
    payload, _ = metaculus_payload([row(), row(ENERGY, 0.6)], config)
    assert payload == [{"question": 40876, "probability_yes": 0.25},
                       {"question": 990002, "probability_yes": 0.6}]


def test_a_post_is_read_without_a_token_when_none_is_set(metaculus):
    fake = metaculus(pages={"/api/posts/41234/": post_reply(41234, 40876, "T")})
    resolve(fake, {HYBRID: 41234}, token=None)
    assert "Authorization" not in fake.seen[0].headers


def test_a_base_url_ending_in_api_reads_the_post_from_the_site(metaculus):
    fake = metaculus(pages={"/api/posts/41234/": post_reply(41234, 40876, "T")})
    config = MetaculusConfig({}, fake.url + "api/", posts={HYBRID: 41234})
    assert resolve_posts(config, token=None)[0].questions == {HYBRID: 40876}


def test_an_unmapped_post_is_not_forecast():
    with pytest.raises(SubmissionError) as err:
        metaculus_payload([row()], MetaculusConfig({}, posts={HYBRID: 41234}))
    assert str(err.value) == (f"{HYBRID}: Metaculus post 41234 is not resolved to its question "
                              "(metaculus.resolve_posts)")


@pytest.mark.parametrize(("page", "message"), [
    (None, "Metaculus refused post 41234 (mapped from {q}) ({url}api/posts/41234/): HTTP 404: "
           '{{"detail": "Not found."}}'),
    (Reply(200, json.dumps({"id": 41234, "group_of_questions": {"questions": []}})),
     "Metaculus post 41234 (mapped from {q}) holds no single question (a group or a "
     "conditional?): map the question id you mean instead"),
    (post_reply(41234, 40876, "How many?", kind="numeric"),
     "Metaculus post 41234 (mapped from {q}) is question 40876, \"How many?\", a numeric "
     "question: only binary questions can be forecast"),
    (Reply(200, "<html>"), "Metaculus post 41234 (mapped from {q}): the reply is not a post "
                           "(JSON with a question's id and title)"),
], ids=["no-such-post", "group", "numeric", "not-json"])
def test_a_post_that_is_not_one_binary_question_is_refused(metaculus, page, message):
    fake = metaculus(pages={"/api/posts/41234/": page} if page else {})
    with pytest.raises(SubmissionError) as err:
        resolve(fake, {HYBRID: 41234})
    assert str(err.value) == message.format(q=HYBRID, url=fake.url)


def test_reading_a_post_is_retried_then_given_up_on(metaculus):
    fake = metaculus(pages={"/api/posts/41234/": Reply(503, "busy", echo_authorization=True)})
    with pytest.raises(SubmissionError) as err:
        resolve(fake, {HYBRID: 41234}, retries=1)
    assert str(err.value) == (f"reading post 41234 (mapped from {HYBRID}) from Metaculus "
                              f"({fake.url}api/posts/41234/) failed after 2 attempts; last "
                              "failure: HTTP 503: busy (you sent Authorization: Token ***)")
    assert len(fake.seen) == 2
