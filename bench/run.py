"""The benchmark suite: how fast the toolkit is for daily use, measured in one run on one machine.

It builds the example workspace (6 scenarios, 150+ weeks of simulated events) in a temporary
folder, then measures, each in fresh processes:

- ``cold_update_s``: `forecast update` with empty compile caches (PyTensor's, with its numba
  cache, and Numba's);
- ``warm_update_s``: the same with warm caches, a new seed each time (so nothing is reused),
  median of ``--repeat`` runs, with the smallest bulk ESS over all parameters;
- ``noop_update_s``: `forecast update` again with no new data (reuses the stored fit);
- the baseline: the same model written the straightforward way (`bench/baseline_model.py`),
  sampled with plain ``pm.sample()`` defaults, rebuilt each time (median of ``--repeat``, after
  one uncounted run that fills the caches for its graph, as the cold update does for the
  toolkit's);
  ``ess_per_s_ratio`` is the median over runs of the toolkit's smallest bulk ESS per second of
  wall time, over the baseline's;
- GDELT 2.0 import throughput and peak memory on a 1,000,000-row file beside DuckDB's bare
  filtered read and a plain ``pandas.read_csv``, and the peak memory of importing 1 GiB of junk
  (`bench/import_bench.py`);
- ``help_s``: `forecast --help` wall time (median of 5).

Usage::

    python bench/run.py [--quick] [--repeat K] [--json FILE]

``--quick`` (for trying the script out) fits 52 weeks instead of the workspace's 156, repeats
once and imports 200,000 rows; its figures are not the targets'.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import import_bench  # noqa: E402

FORECAST = Path(sys.executable).parent / "forecast"
AS_OF = "2026-11-22"

BASELINE_CHILD = """
import datetime as dt, json, sys, time
from pathlib import Path
start = time.perf_counter()
import pymc as pm
from baseline_model import build_baseline
from forecast.fit import diagnose, gated
from forecast.priors import load_priors
from forecast.inputs import claim_terms, read_inputs
from forecast.workspace import open_workspace
ws = open_workspace(Path(sys.argv[1]))
priors = load_priors(ws.priors_dir)
with ws.store(read_only=True) as con:
    series, _ = read_inputs(con, priors, dt.date.fromisoformat(sys.argv[2]),
                            ws.config.history_weeks)
model = build_baseline(series, claim_terms(priors))
with model:
    tree = pm.sample(random_seed=int(sys.argv[3]), progressbar=False)
seconds = time.perf_counter() - start
d = diagnose(tree, gated(model))
print(json.dumps({"seconds": seconds, "ess_bulk_min": d.ess_bulk_min, "r_hat_max": d.r_hat_max,
                  "divergences": d.divergences}))
"""


def timed(args: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    """Wall time of a command in a fresh process, and its stdout."""
    start = time.perf_counter()
    done = subprocess.run(args, env={**os.environ, **(env or {})}, capture_output=True,
                          text=True, check=True)
    return time.perf_counter() - start, done.stdout


def update(ws: Path, seed: int, env: dict[str, str] | None = None) -> dict:
    # a fit that fails the gate is timed all the same, and reported
    seconds, out = timed([str(FORECAST), "--workspace", str(ws), "update", "--as-of", AS_OF,
                          "--seed", str(seed), "--allow-unconverged", "--json"], env)
    data = json.loads(out)
    return {"seconds": seconds, "reused": data["reused"],
            **data["forecasts"][0]["diagnostics"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args()
    repeat = 1 if args.quick else args.repeat

    with tempfile.TemporaryDirectory(prefix="forecast-bench-") as tmp:
        ws = Path(tmp) / "example"
        subprocess.run([str(FORECAST), "--workspace", str(ws), "init", "--example"], check=True,
                       capture_output=True)
        if args.quick:
            config = ws / "forecast.toml"
            config.write_text(config.read_text().replace("history_weeks = 156",
                                                         "history_weeks = 52"))
        caches = {"PYTENSOR_FLAGS": f"base_compiledir={Path(tmp) / 'pytensor'}",
                  "NUMBA_CACHE_DIR": str(Path(tmp) / "numba")}
        cold = update(ws, 1, caches)
        warm = [update(ws, 2 + i, caches) for i in range(repeat)]
        noop = statistics.median(update(ws, 2, caches)["seconds"] for _ in range(max(repeat, 3)))
        # the first baseline run fills the caches for its own graph and is not counted
        baseline = [json.loads(subprocess.run(
            [sys.executable, "-c", BASELINE_CHILD, str(ws), AS_OF, str(10 + i)],
            env={**os.environ, **caches, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'bench'}"},
            capture_output=True,
            text=True, check=True).stdout.splitlines()[-1]) for i in range(-1, repeat)][1:]
        weeks = 52 if args.quick else 156
    imports = import_bench.measure(200_000 if args.quick else 1_000_000, repeat,
                                   100 if args.quick else 1024)
    help_s = statistics.median(timed([str(FORECAST), "--help"])[0] for _ in range(5))

    warm_s = statistics.median(r["seconds"] for r in warm)
    warm_ess = min(r["ess_bulk_min"] for r in warm)
    unconverged = sum(not r["converged"] for r in [cold, *warm])
    base_s = statistics.median(r["seconds"] for r in baseline)
    base_ess = min(r["ess_bulk_min"] for r in baseline)
    # each run's smallest bulk ESS per second of wall time, then the median over runs
    ess_per_s = statistics.median(r["ess_bulk_min"] / r["seconds"] for r in warm)
    base_ess_per_s = statistics.median(r["ess_bulk_min"] / r["seconds"] for r in baseline)
    figures = {
        "cpus": os.cpu_count(), "quick": args.quick, "repeat": repeat, "weeks": weeks,
        "warm_update_s": round(warm_s, 2), "warm_ess_bulk_min": round(warm_ess),
        "warm_runs": warm, "cold_update_s": round(cold["seconds"], 2),
        "updates_failing_the_gate": unconverged,
        "noop_update_s": round(noop, 3),
        "baseline_s": round(base_s, 2), "baseline_ess_bulk_min": round(base_ess),
        "baseline_runs": baseline,
        "ess_per_s": round(ess_per_s, 2), "baseline_ess_per_s": round(base_ess_per_s, 2),
        "ess_per_s_ratio": round(ess_per_s / base_ess_per_s, 2),
        "import_rows": imports["rows"], "import_rows_per_s": imports["rows_per_second"],
        "import_ratio_vs_pandas": imports.get("speedup_vs_pandas"),
        "import_vs_duckdb_scan": imports["import_vs_duckdb_scan"],
        "import_peak_mb": imports["import_peak_mib"], "junk_mib": imports["junk_mib"],
        "junk_peak_mb": imports["junk_peak_mib"], "help_s": round(help_s, 3),
    }
    rows = [
        ("update, warm caches (median)", f"{warm_s:.1f} s", f"min bulk ESS of the runs "
                                                             f"{warm_ess:.0f}"),
        ("update, cold caches", f"{cold['seconds']:.1f} s",
         f"min bulk ESS {cold['ess_bulk_min']:.0f}"),
        ("update, no new data", f"{noop:.2f} s", "target <= 0.5 s"),
        ("updates failing the gate", f"{unconverged} of {repeat + 1}", "timed all the same"),
        ("baseline: plain pm.sample (median)", f"{base_s:.1f} s",
         f"min bulk ESS of the runs {base_ess:.0f}"),
        ("ESS/s toolkit / baseline", f"{figures['ess_per_s_ratio']:.2f}x",
         f"median {figures['ess_per_s']} vs {figures['baseline_ess_per_s']} ESS/s; "
         "target >= 3x"),
        (f"GDELT 2.0 import, {imports['rows']:,} rows", f"{imports['rows_per_second']:,} rows/s",
         f"{imports['import_vs_duckdb_scan']}x DuckDB's filtered read; "
         f"{imports.get('speedup_vs_pandas')}x pandas; peak {imports['import_peak_mib']} MiB"),
        (f"import of {imports['junk_mib']} MiB of junk", f"{imports['junk_peak_mib']} MiB",
         f"peak memory, {imports['junk_rejected']:,} rejected rows; target < 400 MB"),
        ("forecast --help", f"{help_s:.3f} s", "target <= 0.3 s"),
    ]
    print(f"forecast benchmarks: {os.cpu_count()} cores, {weeks} weeks, median of {repeat}"
          + (" (QUICK: not the targets' figures)" if args.quick else ""))
    for name, value, note in rows:
        print(f"  {name:<38} {value:>16}   {note}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
