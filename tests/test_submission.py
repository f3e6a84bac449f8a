"""`forecast submit`, `judge` and `score` on the fitted example: payloads rebuilt independently
from `show --json` and forecast.toml, the gate and age checks, and posting to a fake Metaculus."""

import csv
import io
import json
import math
import tomllib

import pytest

from cli import main
from forecast.workspace import open_workspace
from tests.fake_metaculus import Reply, post_reply

pytestmark = pytest.mark.slow
TOKEN = "s3cret-token-value"


def _run(runner, root, *args, env=None):
    return runner.invoke(main, ["--workspace", str(root), *args], env=env)


def _open_rows(runner, root):
    """The latest forecasts of the questions still open, from `show --json`."""
    rows = json.loads(_run(runner, root, "show", "--json").stdout)
    return [r for r in rows if r["status"] == "open"]


def _config(root):
    return tomllib.loads((root / "forecast.toml").read_text())


def _edit(root, old, new):
    path = root / "forecast.toml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_an_unconverged_forecast_is_refused_unless_forced(runner, fitted_copy):
    result = _run(runner, fitted_copy, "submit", "--platform", "csv")
    assert result.exit_code == 1
    assert result.stderr == ("Error: the latest update (as of 2026-11-22) failed the diagnostics "
                             "gate: run `forecast update`, or pass --force to submit it anyway "
                             "(recorded)\n")


def test_a_forecast_older_than_max_age_days_is_refused(runner, fitted_copy):
    _edit(fitted_copy, "max_age_days = 36500", "max_age_days = 0")
    result = _run(runner, fitted_copy, "submit", "--platform", "csv")
    assert result.exit_code == 1
    assert "the latest update is " in result.stderr and "max_age_days = 0 in forecast.toml" in (
        result.stderr)


def test_metaculus_payload_is_the_open_questions_with_their_ids(runner, fitted_copy):
    result = _run(runner, fitted_copy, "submit", "--platform", "metaculus", "--force",
                  "--use", "model")
    assert result.exit_code == 0, result.output
    ids = _config(fitted_copy)["platforms"]["metaculus"]["questions"]
    expected = [{"question": ids[r["question"]],
                 "probability_yes": min(max(r["probability"], 0.001), 0.999)}
                for r in _open_rows(runner, fitted_copy)]
    assert expected and json.loads(result.stdout) == expected
    assert "resolved question(s) not submitted" in result.stderr
    with open_workspace(fitted_copy).store(read_only=True) as con:
        recorded = con.execute("SELECT platform, destination, forced, count(*) FROM submissions "
                               "GROUP BY ALL").fetchall()
    assert recorded == [("metaculus", "stdout", True, len(expected))]


def test_forecastbench_file_has_the_forecast_set_and_a_reasoning(runner, fitted_copy, tmp_path):
    out = tmp_path / "set.json"
    result = _run(runner, fitted_copy, "submit", "--platform", "forecastbench", "--force",
                  "--out", str(out))
    assert result.exit_code == 0, result.output
    fb = _config(fitted_copy)["platforms"]["forecastbench"]
    data = json.loads(out.read_text())
    assert {k: data[k] for k in ("organization", "model", "model_organization",
                                 "question_set")} == {k: fb[k] for k in (
        "organization", "model", "model_organization", "question_set")}
    assert data["forecast_due_date"] == fb["forecast_due_date"].isoformat()
    rows = _open_rows(runner, fitted_copy)
    assert [(f["id"], f["source"], f["forecast"], f["resolution_date"]) for f in
            data["forecasts"]] == [(fb["questions"][r["question"]]["id"],
                                    fb["questions"][r["question"]]["source"], r["probability"],
                                    r["deadline"]) for r in rows]
    for f in data["forecasts"]:
        assert f["reasoning"].startswith("Bayesian model: ") and "op-ed" in f["reasoning"]


def test_forecastbench_refuses_an_update_not_as_of_the_due_date(runner, fitted_copy, tmp_path):
    # the example's update is as of 2026-11-22; the forecast set is now due a week later
    _edit(fitted_copy, "2026-11-22-llm.json", "2026-11-29-llm.json")
    _edit(fitted_copy, "forecast_due_date = 2026-11-22", "forecast_due_date = 2026-11-29")
    out = tmp_path / "set.json"
    late = ("the latest update is as of 2026-11-22, not ForecastBench's forecast_due_date "
            "2026-11-29 (its question set is out at 00:00 UTC that day, forecasts are due by "
            "23:59:59 UTC)")
    refused = _run(runner, fitted_copy, "submit", "--platform", "forecastbench", "--out", str(out))
    assert refused.exit_code == 1
    assert refused.stderr == ("Error: the latest update (as of 2026-11-22) failed the diagnostics "
                              f"gate; {late}: run `forecast update`, or pass --force to submit "
                              "it anyway (recorded)\n")
    assert not out.exists()
    forced = _run(runner, fitted_copy, "submit", "--platform", "forecastbench", "--force",
                  "--out", str(out))
    assert forced.exit_code == 0, forced.output
    assert f"warning: submitting although {late} (--force)\n" in forced.stderr
    assert json.loads(out.read_text())["question_set"] == "2026-11-29-llm.json"


@pytest.mark.parametrize(("question_set", "problem"), [
    ("latest-llm.json", "expected the name of the question set due on 2026-11-22, starting with "
                        "that date (\"2026-11-22-llm.json\"), got 'latest-llm.json'"),
    ("2026-11-08-llm.json", "'2026-11-08-llm.json' is the question set due on 2026-11-08, not "
                            "on forecast_due_date 2026-11-22 (ForecastBench reads the due date "
                            "from the name)"),
], ids=["latest", "another-date"])
def test_a_question_set_not_named_after_the_due_date_is_refused(runner, fitted_copy,
                                                                 question_set, problem):
    _edit(fitted_copy, "2026-11-22-llm.json", question_set)
    result = _run(runner, fitted_copy, "submit", "--platform", "forecastbench", "--force")
    assert result.exit_code == 1
    assert result.stderr == (f"Error: {fitted_copy / 'forecast.toml'}: "
                             f"platforms.forecastbench.question_set: {problem}\n")


def test_judgment_is_pooled_in_log_odds(runner, fitted_copy):
    _edit(fitted_copy, "extremize = 1", "extremize = 1.5")
    _edit(fitted_copy, "judgment_weight = 1", "judgment_weight = 3")
    question = "hybrid-retaliation-by-2027-12-31"
    assert _run(runner, fitted_copy, "judge", question, "0.4", "--note", "gut").exit_code == 0
    result = _run(runner, fitted_copy, "submit", "--platform", "csv", "--force")
    assert result.exit_code == 0, result.output
    rows = {r["question"]: r for r in csv.DictReader(io.StringIO(result.stdout))}
    model = next(r["probability"] for r in _open_rows(runner, fitted_copy)
                 if r["question"] == question)
    logit = math.log(model / (1 - model)) + 3 * math.log(0.4 / 0.6)
    expected = 1 / (1 + math.exp(-1.5 * logit / 4))
    assert float(rows[question]["probability"]) == pytest.approx(expected, rel=1e-9)
    # an unjudged question gets the model's probability, extremized
    other = next(r for r in _open_rows(runner, fitted_copy) if r["question"] != question)
    p = other["probability"]
    assert float(rows[other["question"]]["probability"]) == pytest.approx(
        1 / (1 + math.exp(-1.5 * math.log(p / (1 - p)))), rel=1e-9)


def test_posting_sends_the_payload_with_the_token_and_never_shows_it(runner, fitted_copy,
                                                                      metaculus):
    fake = metaculus(Reply(201, "[]"))
    _edit(fitted_copy, "example = true", "example = false")
    _edit(fitted_copy, 'base_url = "https://www.metaculus.com"', f'base_url = "{fake.url}"')
    result = _run(runner, fitted_copy, "submit", "--platform", "metaculus", "--post", "--force",
                  env={"METACULUS_TOKEN": TOKEN})
    assert result.exit_code == 0, result.output
    (request,) = fake.seen
    assert (request.method, request.path) == ("POST", "/api/questions/forecast/")
    assert request.headers["Authorization"] == f"Token {TOKEN}"
    assert json.loads(request.body) == [
        {"question": _config(fitted_copy)["platforms"]["metaculus"]["questions"][r["question"]],
         "probability_yes": min(max(r["probability"], 0.001), 0.999)}
        for r in _open_rows(runner, fitted_copy)]
    assert TOKEN not in result.output
    assert not any(TOKEN in p.read_text(errors="ignore") for p in fitted_copy.rglob("*")
                   if p.is_file() and p.suffix in (".toml", ".json", ".csv", ""))


def test_a_post_id_is_resolved_to_its_question_and_shown(runner, fitted_copy, metaculus):
    question = _open_rows(runner, fitted_copy)[0]["question"]
    ident = _config(fitted_copy)["platforms"]["metaculus"]["questions"][question]
    fake = metaculus(Reply(201, "{}"), pages={
        "/api/posts/41234/": post_reply(41234, 40876, "Will hybrid retaliation happen?")})
    _edit(fitted_copy, "example = true", "example = false")
    _edit(fitted_copy, f"= {ident}\n", "= { post = 41234 }\n")
    # a base_url ending in /api is the site, not /api/api/...
    _edit(fitted_copy, 'base_url = "https://www.metaculus.com"', f'base_url = "{fake.url}api"')
    result = _run(runner, fitted_copy, "submit", "--platform", "metaculus", "--post", "--force",
                  env={"METACULUS_TOKEN": TOKEN})
    assert result.exit_code == 0, result.output
    assert (f'{question}: Metaculus post 41234 is question 40876, "Will hybrid retaliation '
            'happen?"\n') in result.stderr
    assert [(r.method, r.path) for r in fake.seen] == [("GET", "/api/posts/41234/"),
                                                       ("POST", "/api/questions/forecast/")]
    sent = {item["question"]: item["probability_yes"] for item in json.loads(fake.seen[1].body)}
    assert 40876 in sent and 41234 not in sent and ident not in sent
    with open_workspace(fitted_copy).store(read_only=True) as con:
        assert con.execute("SELECT count(*) FROM submissions WHERE question = ?",
                           [question]).fetchone() == (1,)


def test_a_failed_post_is_one_line_without_the_token(runner, fitted_copy, metaculus):
    fake = metaculus(Reply(403, '{"detail": "bad token"}', echo_authorization=True))
    _edit(fitted_copy, "example = true", "example = false")
    _edit(fitted_copy, 'base_url = "https://www.metaculus.com"', f'base_url = "{fake.url}"')
    result = _run(runner, fitted_copy, "submit", "--platform", "metaculus", "--post", "--force",
                  env={"METACULUS_TOKEN": TOKEN})
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1].startswith("Error: ") and "403" in result.stderr
    assert TOKEN not in result.output and len(fake.seen) == 1
    with open_workspace(fitted_copy).store(read_only=True) as con:
        assert con.execute("SELECT count(*) FROM submissions").fetchone() == (0,)


def test_posting_is_refused_for_the_simulated_example_and_other_platforms(runner, fitted_copy):
    simulated = _run(runner, fitted_copy, "submit", "--platform", "metaculus", "--post",
                     "--force", env={"METACULUS_TOKEN": TOKEN})
    assert simulated.exit_code == 1
    assert "SIMULATED example" in simulated.stderr
    usage = _run(runner, fitted_copy, "submit", "--platform", "csv", "--post")
    assert usage.exit_code == 2 and "--post sends to Metaculus only" in usage.stderr


def test_score_counts_the_questions_whose_deadline_passed(runner, fitted_example):
    data = json.loads(_run(runner, fitted_example, "score", "--json").stdout)
    history = json.loads(_run(runner, fitted_example, "history", "--json").stdout)
    forecast_on_may_31 = {r["question"]: r["probability"] for r in history
                          if r["as_of"] == "2026-05-31" and r["status"] == "open"}
    assert data["questions"], "the example has questions by 2026-06-30 open on 2026-05-31"
    for q in data["questions"]:
        assert q["question"].endswith("-by-2026-06-30")
        assert q["probability"] == forecast_on_may_31[q["question"]]
        trail = json.loads(_run(runner, fitted_example, "resolve", q["question"],
                                "--json").stdout)
        assert q["outcome"] == (trail[-1]["state"] == "yes")
        assert q["brier"] == pytest.approx((q["probability"] - q["outcome"]) ** 2, abs=1e-12)
