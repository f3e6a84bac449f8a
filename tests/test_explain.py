"""`forecast explain`: contributions by cause that add up to the change."""

import json

import pytest

from cli import main

RESIDUAL_TOLERANCE = 1e-6  # the last refit uses the latest update's own inputs, seed and settings


@pytest.fixture(scope="module")
def explained(fitted_example):
    from click.testing import CliRunner

    runner = CliRunner()
    result = runner.invoke(main, ["--workspace", str(fitted_example), "explain", "--json"])
    assert result.exit_code == 0, result.output
    text = runner.invoke(main, ["--workspace", str(fitted_example), "explain",
                                "hybrid-retaliation-by-2027-12-31"])
    return json.loads(result.stdout), text


@pytest.mark.slow
def test_contributions_add_up_to_the_change(explained):
    data, _text = explained
    assert (data["previous_as_of"], data["as_of"]) == ("2026-11-15", "2026-11-22")
    assert len(data["questions"]) == 21
    for q in data["questions"]:
        parts = sum(q["contributions"].values()) + q["residual"]
        assert parts == pytest.approx(q["change"], abs=1e-12)
        assert abs(q["residual"]) <= RESIDUAL_TOLERANCE, q
        assert next(iter(q["contributions"])) == "passage of time (quiet weeks)"
        assert list(q["contributions"])[-1] == "new scenario events and resolutions"


@pytest.mark.slow
def test_resolved_questions_do_not_move_and_new_events_are_listed(explained):
    data, text = explained
    for q in data["questions"]:
        if q["previous"] == 1.0:
            assert all(v == 0 for v in q["contributions"].values())
    for e in data["events"]:
        assert "2026-11-16" <= e["date"] <= "2026-11-22"
        assert set(e) >= {"date", "actor1", "actor2", "event_code", "num_sources", "counts_for"}
    assert text.exit_code == 0
    assert text.stdout.startswith("From 2026-11-15 to 2026-11-22 (sequential counterfactual")
    assert "hybrid-retaliation-by-2027-12-31:" in text.stdout and "residual" in text.stdout


@pytest.mark.slow
def test_an_unconverged_update_is_named_in_a_warning(explained, fitted_example):
    """The example's short fits are published with --allow-unconverged: explain says so."""
    from forecast import history
    from forecast.workspace import open_workspace

    data, text = explained
    with open_workspace(fitted_example).store(read_only=True) as con:
        unconverged = [str(r["as_of"]) for r in history.current_runs(con)[-2:]
                       if not r["converged"]]
    assert unconverged  # the check below would be empty otherwise
    assert [w.split()[4] for w in data["warnings"]] == unconverged
    for warning in data["warnings"]:
        assert f"warning: {warning}\n" in text.stderr


@pytest.mark.slow
def test_explain_needs_an_update(runner, workspace):
    result = runner.invoke(main, ["--workspace", str(workspace.root), "explain"])
    assert result.exit_code == 1
    assert result.stderr == "Error: nothing to explain: run `forecast update` first\n"


@pytest.mark.slow
def test_a_single_update_is_explained_against_the_claims_alone(runner, fitted_example,
                                                               tmp_path):
    """After one update, explain used to say there was nothing to explain; now it says what the
    events changed relative to the document's own forecast."""
    import shutil

    from forecast import history
    from forecast.workspace import open_workspace

    root = tmp_path / "one"
    shutil.copytree(fitted_example, root)
    ws = open_workspace(root)
    with ws.store() as con:  # keep the first update only
        first = history.current_runs(con)[0]["run_id"]
        con.execute("DELETE FROM forecasts WHERE run_id <> ?", [first])
        con.execute("DELETE FROM runs WHERE run_id <> ?", [first])
    text = runner.invoke(main, ["--workspace", str(root), "explain"])  # one explain: 4 refits
    assert text.exit_code == 0, text.output
    assert text.stdout.startswith("From the claims alone (before any event) to 2026-05-31")
    # every question moves from the document's forecast, by causes that add up (residual ~0)
    residuals = [x.split()[0] for x in text.stdout.splitlines()
                 if x.endswith("(refit vs recorded)")]
    assert len(residuals) == 21 and set(residuals) <= {"+0.0", "-0.0"}
    assert "passage of time (quiet weeks)" in text.stdout


@pytest.mark.slow
def test_an_explanation_is_kept_and_asked_again_without_refitting(explained, fitted_example,
                                                                  monkeypatch):
    """`explain QUESTION` and `report --explain` after `explain` used to refit every cause."""
    import forecast.explain as module
    from forecast.workspace import open_workspace

    data, _text = explained
    assert list((fitted_example / "posteriors").glob("explain-*.json"))
    monkeypatch.setattr(module, "_explain_all", lambda *a: pytest.fail("refitted"))
    again = module.explain(open_workspace(fitted_example), "hybrid-retaliation-by-2027-12-31")
    assert json.loads(json.dumps(again.as_dict(), default=str)) == {
        **data, "questions": [q for q in data["questions"]
                              if q["question"] == "hybrid-retaliation-by-2027-12-31"]}
