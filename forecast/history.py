"""Forecast history in the event store: one row per update (`runs`), one per question and update
(`forecasts`), every change of a question's resolution (`resolutions`, see
`forecast.resolution`), the forecaster's own probabilities (`judgments`) and every submission
(`submissions`). Rows are only ever added. JSON field names are stable: scripts read them."""

from __future__ import annotations

from typing import Any

import duckdb

from forecast.store import transaction

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY,
    created_at TIMESTAMP NOT NULL DEFAULT now(),
    as_of DATE NOT NULL,
    seed BIGINT NOT NULL,
    draws INTEGER NOT NULL,
    tune INTEGER NOT NULL,
    chains INTEGER NOT NULL,
    data_hash VARCHAR NOT NULL,
    priors_hash VARCHAR NOT NULL,
    code_version VARCHAR NOT NULL,
    posterior_file VARCHAR NOT NULL,
    r_hat_max DOUBLE NOT NULL,
    ess_bulk_min DOUBLE NOT NULL,
    divergences INTEGER NOT NULL,
    worst VARCHAR NOT NULL,
    converged BOOLEAN NOT NULL,
    allow_unconverged BOOLEAN NOT NULL,
    simulated BOOLEAN NOT NULL
);
CREATE TABLE IF NOT EXISTS forecasts (
    run_id VARCHAR NOT NULL,
    question VARCHAR NOT NULL,
    scenario VARCHAR NOT NULL,
    deadline DATE NOT NULL,
    probability DOUBLE NOT NULL,
    low DOUBLE NOT NULL,
    high DOUBLE NOT NULL,
    status VARCHAR NOT NULL,
    PRIMARY KEY (run_id, question)
);
CREATE TABLE IF NOT EXISTS resolutions (
    question VARCHAR NOT NULL,
    state VARCHAR NOT NULL,
    resolved_on DATE,
    method VARCHAR NOT NULL,
    evidence VARCHAR NOT NULL,
    resolved_by VARCHAR NOT NULL,
    recorded_at TIMESTAMP NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS judgments (
    question VARCHAR NOT NULL,
    probability DOUBLE NOT NULL,
    note VARCHAR,
    judged_by VARCHAR NOT NULL,
    recorded_at TIMESTAMP NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS submissions (
    submitted_at TIMESTAMP NOT NULL DEFAULT now(),
    platform VARCHAR NOT NULL,
    question VARCHAR NOT NULL,
    probability DOUBLE NOT NULL,
    model_probability DOUBLE NOT NULL,
    judgment DOUBLE,
    model_weight DOUBLE NOT NULL,
    judgment_weight DOUBLE NOT NULL,
    extremize DOUBLE NOT NULL,
    run_id VARCHAR NOT NULL,
    as_of DATE NOT NULL,
    forced BOOLEAN NOT NULL,
    destination VARCHAR NOT NULL
);
"""

RUN_FIELDS = ("run_id", "inputs_hash", "as_of", "seed", "draws", "tune", "chains", "data_hash",
              "priors_hash", "code_version", "posterior_file", "r_hat_max", "ess_bulk_min",
              "divergences", "worst", "converged", "allow_unconverged", "simulated",
              "claims_pareto_k", "what_if")

SUBMISSION_FIELDS = ("question", "probability", "model_probability", "judgment", "model_weight",
                     "judgment_weight", "extremize", "run_id", "as_of", "forced")


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the history tables that are missing (call outside a transaction)."""
    with transaction(con):
        con.execute(_SCHEMA)
        # stores made before runs kept the fingerprint of their inputs (see `forecast.update`)
        con.execute("ALTER TABLE runs ADD COLUMN IF NOT EXISTS inputs_hash VARCHAR")
        # and before they kept the forecasts without the claims (`forecast.forecasts`)
        con.execute("ALTER TABLE runs ADD COLUMN IF NOT EXISTS claims_pareto_k DOUBLE")
        con.execute("ALTER TABLE forecasts ADD COLUMN IF NOT EXISTS without_claims DOUBLE")
        # and before what-if runs and the current run were told apart (`current_runs`)
        con.execute("ALTER TABLE runs ADD COLUMN IF NOT EXISTS what_if BOOLEAN DEFAULT false")
        con.execute("ALTER TABLE runs ADD COLUMN IF NOT EXISTS current_at TIMESTAMP")


def record_run(con: duckdb.DuckDBPyConnection, run: dict[str, Any],
               forecasts: list[dict[str, Any]]) -> None:
    """Insert a run and its forecasts; call inside a transaction.

    A run already recorded (its posterior was lost, and the same inputs were fitted again, with
    the same numbers) keeps its row and its place in the history; only its fingerprint is
    updated."""
    con.execute(f"INSERT INTO runs ({', '.join(RUN_FIELDS)}) VALUES "
                f"({', '.join('?' * len(RUN_FIELDS))}) "
                "ON CONFLICT (run_id) DO UPDATE SET inputs_hash = excluded.inputs_hash",
                [run.get(f) for f in RUN_FIELDS])  # NOT NULL columns refuse a missing field
    make_current(con, run["run_id"], what_if=bool(run.get("what_if")))
    con.executemany(
        "INSERT INTO forecasts (run_id, question, scenario, deadline, probability, low, high, "
        "status, without_claims) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        [[run["run_id"], f["question"], f["scenario"], f["deadline"], f["probability"],
          f["interval"][0], f["interval"][1], f["status"], f.get("without_claims")]
         for f in forecasts])


def make_current(con: duckdb.DuckDBPyConnection, run_id: str, *, what_if: bool) -> None:
    """Mark a run asked for now (fitted or reused) as the current forecast; a what-if run is
    recorded as such and never becomes current, nor changes the run it reuses."""
    if not what_if:
        con.execute("UPDATE runs SET what_if = false, current_at = now() WHERE run_id = ?",
                    [run_id])


def has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether the history table exists (a read-only store may predate it)."""
    row = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?",
                      [name]).fetchone()
    return bool(row and row[0])


def runs(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Every recorded run, oldest first; none when the store has no history tables yet."""
    if not has_table(con, "runs"):
        return []
    return query(con, "SELECT * FROM runs ORDER BY created_at", [])


def current_runs(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """The runs that are not what-ifs, in the order they were last asked for: the last is the
    current forecast (an earlier as-of fitted or reused again becomes current again)."""
    if not has_table(con, "runs"):
        return []
    return query(con, "SELECT * FROM runs WHERE NOT coalesce(what_if, false) "
                 "ORDER BY coalesce(current_at, created_at), created_at", [])


def find_run(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, Any] | None:
    rows = query(con, "SELECT * FROM runs WHERE run_id = ?", [run_id])
    return rows[0] if rows else None


def question_rows(con: duckdb.DuckDBPyConnection, *, run_id: str | None = None,
                  question: str | None = None) -> list[dict[str, Any]]:
    """Forecast rows in the stable JSON shape: of one run (default: the current one,
    `current_runs`), or every run's row for one question (oldest first)."""
    if question is not None:
        where, params = "f.question = ?", [question]
    else:
        if run_id is None:
            current = current_runs(con)
            if not current:
                return []
            run_id = current[-1]["run_id"]
        where, params = "f.run_id = ?", [run_id]
    rows = query(con, "SELECT f.*, r.* EXCLUDE (run_id) FROM forecasts f JOIN runs r USING "
                 f"(run_id) WHERE {where} ORDER BY r.created_at, f.scenario, f.deadline", params)
    return [_shape(r) for r in rows]


def _shape(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "question": r["question"], "scenario": r["scenario"], "deadline": r["deadline"],
        "as_of": r["as_of"], "probability": r["probability"], "interval": [r["low"], r["high"]],
        "status": r["status"],
        # the forecast without the document's claims; None for runs recorded before it was kept
        "without_claims": r.get("without_claims"),
        "diagnostics": {"r_hat_max": r["r_hat_max"], "ess_bulk_min": r["ess_bulk_min"],
                        "divergences": r["divergences"], "converged": r["converged"],
                        "claims_pareto_k": r.get("claims_pareto_k")},
        "allow_unconverged": r["allow_unconverged"], "simulated": r["simulated"],
        "what_if": bool(r.get("what_if")),
        "run_id": r["run_id"], "seed": r["seed"], "data_hash": r["data_hash"],
        "priors_hash": r["priors_hash"], "code_version": r["code_version"],
    }


def query(con: duckdb.DuckDBPyConnection, sql: str, params: list) -> list[dict[str, Any]]:
    """The result of a query as dicts by column name."""
    cursor = con.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
