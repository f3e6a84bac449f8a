"""Forecast history in the event store: one row per update (`runs`), one per question and update
(`forecasts`), every change of a question's resolution (`resolutions`, see
`forecast.resolution`), the forecaster's own probabilities (`judgments`) and every submission
(`submissions`). Rows are only ever added. JSON field names are stable: scripts read them."""

from __future__ import annotations

from typing import Any

import duckdb

from forecast.store import HISTORY_TABLES, transaction

RUN_FIELDS = ("run_id", "inputs_hash", "as_of", "seed", "draws", "tune", "chains", "data_hash",
              "priors_hash", "code_version", "posterior_file", "r_hat_max", "ess_bulk_min",
              "divergences", "worst", "converged", "allow_unconverged", "simulated",
              "claims_pareto_k", "what_if")

SUBMISSION_FIELDS = ("question", "probability", "model_probability", "judgment", "model_weight",
                     "judgment_weight", "extremize", "run_id", "as_of", "forced")


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the history tables that are missing, and the columns older stores lack (call
    outside a transaction; the tables are defined in `forecast.store`)."""
    with transaction(con):
        con.execute(HISTORY_TABLES)


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
