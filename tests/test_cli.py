import json
import re
import shlex
import shutil
import subprocess
import sys

import click
import pytest
import xarray as xr

from cli import main
from tests.conftest import ROOT

DESIGN_COMMANDS = {"init", "priors", "events", "update", "show", "history", "explain", "resolve",
                   "report", "submit", "score", "backtest", "judge", "doctor"}


def _run(runner, workspace, *args, env=None):
    return runner.invoke(main, ["--workspace", str(workspace.root), *args], env=env)


def _commands(group: click.Group, prefix=()):
    for name, command in group.commands.items():
        yield (*prefix, name), command
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))


def test_help_lists_every_command_group_of_the_design(runner):
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0
    listed = {line.split()[0] for line in result.output.split("Commands:")[1].splitlines()
              if line.strip()}
    assert listed == DESIGN_COMMANDS


@pytest.mark.parametrize("path", [p for p, _ in _commands(main)], ids=" ".join)
def test_every_command_has_help(runner, path):
    result = runner.invoke(main, [*path, "--help"])
    assert result.exit_code == 0
    assert main.commands[path[0]].help or main.commands[path[0]].short_help


def test_missing_workspace_is_one_line_and_says_how_to_create_one(runner, tmp_path):
    result = runner.invoke(main, ["--workspace", str(tmp_path / "none"), "priors", "check"])
    assert result.exit_code == 1
    assert result.stderr == (f"Error: no workspace at {tmp_path / 'none'}: create one with "
                             f"`forecast init {tmp_path / 'none'}` (or choose another with "
                             "--workspace DIR / FORECAST_WORKSPACE)\n")


def test_a_file_name_with_a_line_break_or_an_escape_stays_on_one_line(runner, workspace,
                                                                    tmp_path):
    bad = tmp_path / "bad\nname\x1b[31m.csv"
    bad.write_text("date,actor1\n")
    result = runner.invoke(main, ["--workspace", str(workspace.root), "events", "import",
                                  str(bad)])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "\x1b" not in result.stderr
    assert result.stderr.startswith(f"Error: {tmp_path}/bad\\nname\\x1b[31m.csv: ")


def test_init_then_check_through_the_environment_variable(runner, tmp_path):
    env = {"FORECAST_WORKSPACE": str(tmp_path / "ws")}
    created = runner.invoke(main, ["init"], env=env)
    assert created.exit_code == 0, created.output
    assert f"Created workspace {tmp_path / 'ws'}" in created.stdout
    checked = runner.invoke(main, ["priors", "check", "--no-model"], env=env)
    assert checked.exit_code == 0, checked.output
    assert "11 claims on 7 scenarios; 0 conflict(s)." in checked.stdout
    again = runner.invoke(main, ["init"], env=env)
    assert again.exit_code == 1
    assert again.stderr == (f"Error: {tmp_path / 'ws'} is already a workspace "
                            "(forecast.toml exists)\n")


def test_priors_check_json_has_each_claims_range_and_constraint(runner, workspace):
    result = _run(runner, workspace, "priors", "check", "--no-model", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["conflicts"] == []
    by_id = {c["id"]: c for c in data["claims"]}
    c = by_id["no-direct-strike"]
    assert (c["scenario"], c["horizon"], c["stated"], c["stated_range"], c["rating"]) == (
        "direct-military-action", "24 months", "very unlikely", [0.05, 0.2], "C3")
    low, high = c["constraint"]["interval"]
    assert low < c["constraint"]["mean"] < high


def test_priors_check_flags_conflicts_with_exit_1(runner, workspace):
    path = workspace.priors_dir / "claims" / "allies-to-adversaries.toml"
    path.write_text(path.read_text().replace('term = "almost certain"', 'term = "very unlikely"'))
    result = _run(runner, workspace, "priors", "check")
    assert result.exit_code == 1
    assert ("conflict: 'hybrid-will-act' says P(hybrid-retaliation within 24 months) >= 80%, but "
            "'retaliation-eventually' says P(any-retaliation eventually) <= 20%, which contains it"
            ) in result.stderr
    assert result.stderr.splitlines()[-1].startswith("Error: 3 pair(s) of claims contradict")


@pytest.mark.parametrize(("old", "new", "problem"), [
    ('horizon = "4 weeks"', 'horizon = "soon"',
     "claims[1].horizon: expected a duration like '3 months', '4 weeks' or 'ever', got 'soon'"),
    ('term = "unlikely"', 'term = "improbable-ish"', "claims[5].term: unknown term"),
    ("credibility = 3", "credibilty = 3", "claims[0].credibilty: unknown key (did you mean "
     "'credibility'?)"),
    ('term = "very unlikely"', "probability = 1.2",
     "claims[1].probability: expected a probability strictly between 0 and 1, got 1.2"),
    ("[source]", "[source", "invalid TOML: "),
])
def test_a_malformed_claims_file_is_one_line_naming_file_and_key(runner, workspace, old, new,
                                                                 problem):
    path = workspace.priors_dir / "claims" / "allies-to-adversaries.toml"
    path.write_text(path.read_text().replace(old, new, 1))
    result = _run(runner, workspace, "priors", "check")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {path}: {problem}")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output


def test_priors_show_a_scenario(runner, workspace):
    result = _run(runner, workspace, "priors", "show", "direct-military-action", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["resolution"]["actor1"] == ["RUS"]
    assert [q["question"] for q in data["questions"]] == [
        "direct-military-action-by-2026-06-30", "direct-military-action-by-2026-12-31",
        "direct-military-action-by-2027-12-31"]
    assert [c["id"] for c in data["claims"]] == ["no-direct-strike"]
    text = _run(runner, workspace, "priors", "show", "any-retaliation")
    assert "Resolves YES when any of these does: hybrid-retaliation" in text.stdout


def test_priors_show_an_unknown_scenario_is_bad_usage(runner, workspace):
    result = _run(runner, workspace, "priors", "show", "hybrid-retalation")
    assert result.exit_code == 2
    assert "Error: Invalid value for SCENARIO: unknown scenario 'hybrid-retalation' (did you " \
        "mean 'hybrid-retaliation'?)" in result.stderr


def test_the_readmes_tour_runs(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tests" / "data").mkdir(parents=True)
    shutil.copy(NATIVE, tmp_path / "tests" / "data")
    readme = (ROOT / "README.md").read_text()
    tour = readme.split("## A tour of the commands")[1].split("```sh")[1].split("```")[0]
    env: dict[str, str] = {}
    ran = 0
    for line in tour.splitlines():
        command = line.split("#")[0].strip()
        if command.startswith("export "):
            key, value = command.removeprefix("export ").split("=")
            env[key] = value
        elif command:
            args = shlex.split(command)
            assert args[0] == "forecast"
            result = runner.invoke(main, args[1:], env=env)
            assert result.exit_code == 0, (command, result.output)
            ran += 1
    assert ran >= 4


def test_ci_runs_the_readmes_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test      #" in readme and "make example   #" in readme
    assert (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1] == "make test"


NATIVE = ROOT / "tests" / "data" / "native-sample.csv"


def test_events_import_prints_counts_that_add_up(runner, workspace):
    result = _run(runner, workspace, "events", "import", str(NATIVE), "--json")
    assert result.exit_code == 0, result.output
    counts = json.loads(result.stdout)
    assert counts["read"] == sum(counts[k] for k in ("imported", "duplicate", "outside_region",
                                                     "rejected"))
    assert counts["read"] == len(NATIVE.read_text().splitlines()) - 1
    text = _run(runner, workspace, "events", "import", str(NATIVE))
    assert text.exit_code == 0
    assert text.stdout.startswith(f"{NATIVE} (native): read {counts['read']}, imported 0, ")
    assert f"{NATIVE}: detected format native" in text.stderr
    assert f"{NATIVE}:4: rejected: " in text.stderr


def test_events_import_of_the_wrong_format_is_one_line_and_imports_nothing(runner, workspace):
    result = _run(runner, workspace, "events", "import", "--format", "gdelt2", str(NATIVE))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {NATIVE}: expected ")
    assert result.stderr.count("\n") == 1
    stats = json.loads(_run(runner, workspace, "events", "stats", "--json").stdout)
    assert stats["events"] == 0


def test_events_list_and_stats(runner, workspace):
    _run(runner, workspace, "events", "import", str(NATIVE))
    listed = json.loads(_run(runner, workspace, "events", "list", "--scenario",
                             "hybrid-retaliation", "--json").stdout)
    assert [(e["date"], e["event_code"]) for e in listed] == [("2025-05-16", "163")]
    since = json.loads(_run(runner, workspace, "events", "list", "--since", "2025-05-19",
                            "--json").stdout)
    assert {e["date"] for e in since} == {"2025-05-19"}
    stats = json.loads(_run(runner, workspace, "events", "stats", "--json").stdout)
    assert stats["by_indicator"]["rus-aze-sanction-threats"] == 0
    bad = _run(runner, workspace, "events", "list", "--scenario", "hybrid")
    assert bad.exit_code == 2 and "unknown scenario 'hybrid'" in bad.stderr


def test_init_example_loads_the_documents_events_and_a_labelled_simulated_world(runner,
                                                                                 tmp_path):
    result = runner.invoke(main, ["--workspace", str(tmp_path / "ex"), "init", "--example"])
    assert result.exit_code == 0, result.output
    assert "SIMULATED" in result.stdout
    lines = [line for line in result.stdout.splitlines() if "(native): read" in line]
    assert len(lines) == 2 and all("rejected 0" in line for line in lines)
    listed = json.loads(runner.invoke(main, ["--workspace", str(tmp_path / "ex"), "events",
                                             "list", "--until", "2024-12-31", "--limit", "100000",
                                             "--json"]).stdout)
    document = [e for e in listed if "allies-to-adversaries" in (e["source_url"] or "")]
    assert {e["event_code"] for e in document} == {"1663", "172", "174"}
    simulated = [e for e in listed if e not in document]
    assert simulated and all("simulated.invalid" in e["source_url"] for e in simulated)
    truth = json.loads((tmp_path / "ex" / "examples" / "simulated-world-truth.json").read_text())
    assert truth["note"].startswith("SIMULATED")


@pytest.mark.slow
def test_update_gate_refuses_a_starved_fit_and_allow_unconverged_marks_it(runner, tmp_path):
    ws = ["--workspace", str(tmp_path / "ex")]
    assert runner.invoke(main, [*ws, "init", "--example"]).exit_code == 0
    config = tmp_path / "ex" / "forecast.toml"  # the gate's plumbing: a short window will do
    config.write_text(config.read_text().replace("history_weeks = 156", "history_weeks = 20"))
    starved = [*ws, "update", "--as-of", "2026-11-22", "--draws", "60", "--tune", "60"]
    refused = runner.invoke(main, starved)
    assert refused.exit_code == 1
    assert refused.stderr.startswith("Error: the fit did not converge: ")
    assert "worst parameter " in refused.stderr and refused.stderr.count("\n") == 1
    assert json.loads(runner.invoke(main, [*ws, "show", "--json"]).stdout) == []

    allowed = runner.invoke(main, [*starved, "--allow-unconverged", "--json"])
    assert allowed.exit_code == 0, allowed.output
    data = json.loads(allowed.stdout)
    assert data["reused"] is False
    rows = data["forecasts"]
    assert {r["question"] for r in rows} >= {"proxy-strikes-by-2026-12-31",
                                             "any-retaliation-by-2027-12-31"}
    for r in rows:
        assert set(r) >= {"question", "scenario", "deadline", "as_of", "probability", "interval",
                          "diagnostics"}
        assert set(r["diagnostics"]) == {"r_hat_max", "ess_bulk_min", "divergences", "converged",
                                         "claims_pareto_k"}
        assert r["diagnostics"]["converged"] is False and r["allow_unconverged"] is True
        assert r["simulated"] is True
        low, high = r["interval"]
        assert 0 <= low <= high <= 1 and 0 <= r["probability"] <= 1  # the mean may lie outside

    shown = runner.invoke(main, [*ws, "show"])
    assert "WARNING: published with --allow-unconverged" in shown.stdout
    assert "SIMULATED" in shown.stdout
    assert json.loads(runner.invoke(main, [*ws, "show", "--json"]).stdout) == rows

    again = runner.invoke(main, [*starved, "--allow-unconverged", "--json"])
    assert json.loads(again.stdout) == {"reused": True, "forecasts": rows}
    history = json.loads(runner.invoke(main, [*ws, "history", "proxy-strikes-by-2026-12-31",
                                              "--json"]).stdout)
    assert len(history) == 1 and history[0] == next(
        r for r in rows if r["question"] == "proxy-strikes-by-2026-12-31")
    posterior = tmp_path / "ex" / "posteriors" / f"{rows[0]['run_id']}.nc"
    tree = xr.open_datatree(posterior, engine="h5netcdf")
    assert tree.attrs["run_id"] == rows[0]["run_id"] and tree.attrs["allow_unconverged"] == 1
    saved = json.loads(tree.attrs["priors_files"])
    assert saved["claims/allies-to-adversaries.toml"] == (
        tmp_path / "ex" / "priors" / "claims" / "allies-to-adversaries.toml").read_text()
    assert set(tree.children) == {"posterior", "sample_stats", "constant_data"}


@pytest.mark.slow
def test_priors_check_shows_the_models_prior_next_to_each_claim(runner, workspace, tmp_path):
    png = tmp_path / "check.png"
    result = _run(runner, workspace, "priors", "check", "--json", "--plot", str(png))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["model_diagnostics"]["divergences"] == 0
    for claim in data["claims"]:
        low, high = claim["model_prior"]["interval"]
        assert 0 <= low <= claim["model_prior"]["mean"] <= high <= 1
    by_id = {c["id"]: c["model_prior"] for c in data["claims"]}
    # the claims pull the model's prior where they point
    assert by_id["no-direct-strike"]["mean"] < 0.3 < by_id["hybrid-will-act"]["mean"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # per question, the document's forecast beside the broad priors' (both fits pass the gate)
    assert all(d["converged"] for d in data["questions_diagnostics"].values())
    asked = {q["question"]: q for q in data["questions"]}
    assert all(0 <= q["claims_only"] <= 1 and 0 <= q["no_claims"] <= 1 for q in asked.values())
    for question in ("any-retaliation-by-2027-12-31", "hybrid-retaliation-by-2027-12-31"):
        assert asked[question]["claims_only"] > asked[question]["no_claims"] + 0.05
    cached = _run(runner, workspace, "priors", "check", "--json")
    assert json.loads(cached.stdout) == data
    assert list(workspace.posteriors_dir.glob("claims-only-*.nc"))


def test_the_cli_starts_without_importing_the_heavy_libraries():
    code = ("import sys, cli; heavy = {'pymc', 'pytensor', 'preliz', 'duckdb', 'arviz', 'xarray'}"
            " & set(sys.modules); print(sorted(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_an_update_with_nothing_new_reuses_the_run_without_the_numerical_libraries(fitted_copy):
    args = ["--workspace", str(fitted_copy), "update", "--as-of", "2026-11-22", "--draws", "100",
            "--tune", "200", "--allow-unconverged", "--json"]
    code = ("import json, sys, cli\n"
            f"try:\n    cli.main({args!r})\nexcept SystemExit:\n    pass\n"
            "heavy = {'pymc', 'pytensor', 'preliz', 'arviz', 'xarray', 'numpy', 'scipy'}\n"
            "print(json.dumps(sorted(heavy & set(sys.modules))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ROOT)
    result, heavy = out.stdout.strip().rsplit("\n", 1)
    assert json.loads(result)["reused"] is True
    assert json.loads(heavy) == []


def test_an_as_of_in_the_future_or_before_the_data_is_refused(runner, workspace):
    """A mistyped --as-of (2030, 1970) used to be fitted and recorded, and show then said
    "as of 1970-01-01". Now it is refused in one line, and nothing is recorded."""
    import datetime as dt

    from forecast import history

    empty = _run(runner, workspace, "update", "--as-of", "2026-01-01")
    assert empty.exit_code == 1
    assert empty.stderr == ("Error: no events stored: import some with "
                            "`forecast events import`\n")
    assert _run(runner, workspace, "events", "import", str(NATIVE)).exit_code == 0
    with workspace.store(read_only=True) as con:
        (first,) = con.execute("SELECT min(date) FROM events").fetchone()
    for as_of, why in ((dt.date.today() + dt.timedelta(days=1),
                        f"is after today ({dt.date.today()})"),
                       (dt.date(1970, 1, 1), f"is before the first stored event ({first})")):
        result = _run(runner, workspace, "update", "--as-of", as_of.isoformat())
        assert result.exit_code == 1
        assert result.stderr.startswith(f"Error: --as-of {as_of} {why}")
        assert result.stderr.endswith("pass --what-if to fit it anyway (recorded as a what-if, "
                                      "never the current forecast)\n")
        assert result.stderr.count("\n") == 1
    with workspace.store(read_only=True) as con:
        assert history.runs(con) == []


@pytest.mark.slow
def test_the_current_forecast_is_the_run_last_asked_for_and_never_a_what_if(runner,
                                                                            fitted_copy):
    """Re-running an earlier as-of (its stored fit reused) makes it current again; a what-if
    is recorded as asked, but show keeps the current forecast."""
    ws = ["--workspace", str(fitted_copy)]
    fit = ["--draws", "100", "--tune", "200", "--allow-unconverged"]

    def current() -> set[str]:
        return {r["as_of"] for r in json.loads(runner.invoke(main, [*ws, "show", "--json"]).stdout)}

    assert current() == {"2026-11-22"}
    again = runner.invoke(main, [*ws, "update", "--as-of", "2026-05-31", *fit])
    assert again.exit_code == 0 and "reused the stored fit" in again.stderr
    assert current() == {"2026-05-31"}
    what_if = runner.invoke(main, [*ws, "update", "--as-of", "2026-11-22", "--what-if", *fit])
    assert what_if.exit_code == 0, what_if.output
    assert current() == {"2026-05-31"}
    back = runner.invoke(main, [*ws, "update", "--as-of", "2026-11-22", *fit])
    assert back.exit_code == 0 and current() == {"2026-11-22"}


def test_workspace_is_accepted_after_the_command_too(runner, workspace):
    """`forecast show --workspace ws` failed: the option was only the group's."""
    command = ["priors", "show", "proxy-strikes", "--json"]
    before = runner.invoke(main, ["--workspace", str(workspace.root), *command])
    after = runner.invoke(main, [*command, "--workspace", str(workspace.root)])
    assert before.exit_code == after.exit_code == 0, after.output
    assert after.stdout == before.stdout
    missing = runner.invoke(main, ["--workspace", str(workspace.root), *command,
                                   "--workspace", str(workspace.root / "nowhere")])
    assert missing.exit_code == 1 and "nowhere" in missing.stderr  # the later one wins


def test_the_readmes_native_csv_example_imports_whole(runner, workspace, tmp_path):
    """The README's example of hand-coded events is a correct file: every row imported."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```csv\n(.*?)```", readme, re.S)
    assert block is not None
    path = tmp_path / "hand-coded.csv"
    path.write_text(block[1])
    result = runner.invoke(main, ["--workspace", str(workspace.root), "events", "import",
                                  str(path), "--json"])
    assert result.exit_code == 0, result.output
    counts = json.loads(result.stdout)
    assert (counts["read"], counts["imported"], counts["rejected"]) == (3, 3, 0)


def test_events_sql_prints_the_warehouse_query(runner, workspace):
    result = runner.invoke(main, ["--workspace", str(workspace.root), "events", "sql",
                                  "--since", "2025-01-01", "--until", "2025-12-31"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("SELECT GLOBALEVENTID, SQLDATE,")
    assert "FROM `gdelt-bq.gdeltv2.events`" in result.stdout
    assert "SQLDATE >= 20250101\n  AND SQLDATE <= 20251231" in result.stdout
    assert "Actor1CountryCode IN ('RUS', 'AZE', 'IRN', 'ARM', 'GEO', 'TUR')" in result.stdout
    assert "--format gdelt2" in result.stderr


@pytest.mark.slow  # a subprocess
def test_writing_commands_start_without_the_modelling_libraries(workspace):
    """`events import`, `judge` and `resolve` took 2.2 s each, 1.6 s of it importing PyMC,
    ArviZ, SciPy and xarray through the resolution module; they need none of them."""
    ws = ["--workspace", str(workspace.root)]
    commands = [[*ws, "events", "import", str(ROOT / "tests" / "data" / "acled-sample.csv")],
                [*ws, "judge", "hybrid-retaliation-by-2027-12-31", "0.3"],
                [*ws, "resolve", "proxy-strikes-by-2026-12-31", "annulled"]]
    code = ("import json, sys, cli\n"
            f"for args in {commands!r}:\n"
            "    try:\n        cli.main(args)\n"
            "    except SystemExit as exc:\n        assert not exc.code, (args, exc.code)\n"
            "heavy = {'pymc', 'pytensor', 'arviz', 'arviz_stats', 'xarray', 'scipy'}\n"
            "print(json.dumps(sorted(heavy & set(sys.modules))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert json.loads(out.stdout.strip().rsplit("\n", 1)[-1]) == []


@pytest.mark.parametrize(("args", "message"), [
    (["update", "--seed", "99999999999999999999"], "'--seed': 99999999999999999999 is not in the "
     "range 0<=x<=4294967295"),
    (["update", "--draws", "999999999999"], "'--draws': 999999999999 is not in the range"),
    (["update", "--as-of", "0001-01-01", "--what-if"],
     "--as-of 0001-01-01: expected a day from 1979-01-01 to 2199-12-31"),
    (["update", "--as-of", "9999-12-31", "--what-if"],
     "--as-of 9999-12-31: expected a day from 1979-01-01 to 2199-12-31"),
    (["events", "list", "--limit", "99999999999999999999"], "'--limit': 99999999999999999999 is "
     "not in the range 1<=x<=1000000000"),
    (["backtest", "--window", "999999999"], "'--window': 999999999 is not in the range 8<=x<=5200"),
    (["backtest", "--horizons", "999999999"], "expected a number of weeks from 1w to 5200w"),
    (["backtest", "--step", "99999999w"], "expected a number of weeks from 1w to 5200w"),
    (["backtest", "--start", "0001-01-01", "--end", "0001-06-01"], "no backtest step between"),
])
def test_numbers_past_any_sense_are_one_line_errors(runner, workspace, tmp_path, args, message):
    """Each used to end in a traceback (OverflowError, a DuckDB error) or a native abort."""
    path = tmp_path / "e.csv"
    path.write_text("date,actor1,actor2,event_code,num_sources,source_url,note\n" + "".join(
        f"2026-0{m}-1{d},AZE,TUR,042,1,u{m}{d},volume\n" for m in range(1, 8) for d in range(5)))
    ws = ["--workspace", str(workspace.root)]
    assert runner.invoke(main, [*ws, "events", "import", str(path)]).exit_code == 0
    result = runner.invoke(main, [*ws, *args])
    assert result.exit_code in (1, 2), result.output
    assert message in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("Error")
