"""Import speed and memory on a GDELT 2.0 file of a million rows or more, and memory on a file
of junk (a native CSV whose rows are all rejected but one: rejections must be counted, not kept).

The file repeats the real 2,111-row export in ``tests/data`` with new GLOBALEVENTIDs, in a temporary
directory (never the repository). Each measurement runs in a fresh child process so that its peak
resident memory (``ru_maxrss``) is its own: the import into a fresh store, and, when pandas is
importable, a plain ``pandas.read_csv`` of the same file for comparison. Figures are medians over
``--repeat`` runs; peak memory is the largest seen.

Usage::

    python bench/import_bench.py [--rows N] [--repeat K] [--junk-mib M] [--json FILE]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "tests" / "data" / "gdelt2-20191024143000.export.tsv"

# Each child prints one JSON line: its own wall time for the work and its peak RSS in MiB.
IMPORT_CHILD = """
import json, resource, sys, time
from pathlib import Path
from forecast.events import import_events
from forecast.store import open_store
con = open_store(Path(sys.argv[2]))
cpu = lambda: sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
start, start_cpu = time.perf_counter(), cpu()
result = import_events(con, Path(sys.argv[1]))
seconds, cpu_seconds = time.perf_counter() - start, cpu() - start_cpu
con.close()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds, "peak_mib": peak,
                  "result": result.as_dict()}))
"""
# DuckDB's bare filtered read of the same file: the region's rows by either actor's country
# (fields 8 and 18), split into columns and counted; no validation, no store. What the import
# adds to reading the file is measured against it.
SCAN_CHILD = """
import json, resource, sys, time
import duckdb
from forecast.config import DEFAULT_REGION
con = duckdb.connect()
columns = "{" + ", ".join(f"'c{i}': 'VARCHAR'" for i in range(1, 62)) + "}"
region = list(DEFAULT_REGION)
start = time.perf_counter()
(rows,) = con.execute(
    "SELECT count(*) FROM read_csv(?, delim='\\t', header=false, quote='', escape='', "
    f"auto_detect=false, columns={columns}) "
    "WHERE list_contains(?, c8) OR list_contains(?, c18)", [sys.argv[1], region, region]
).fetchone()
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_mib": peak, "rows": rows}))
"""
PANDAS_CHILD = """
import json, resource, sys, time
import pandas
start = time.perf_counter()
frame = pandas.read_csv(sys.argv[1], sep="\\t", header=None)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_mib": peak, "rows": len(frame)}))
"""


def build(path: Path, rows: int) -> int:
    """Write at least `rows` rows: the sample repeated, each row with a new GLOBALEVENTID."""
    lines = SAMPLE.read_bytes().splitlines()
    written = 0
    with path.open("wb") as out:
        while written < rows:
            for line in lines:
                _, rest = line.split(b"\t", 1)
                out.write(b"%d\t%s\n" % (1_000_000_000 + written, rest))
                written += 1
    return written


def build_junk(path: Path, mib: int) -> int:
    """A native CSV of one valid row and `mib` MiB of rows that are each rejected; their count."""
    line = b"junk\n"
    count = mib * 2**20 // len(line)
    with path.open("wb") as out:
        out.write(b"date,actor1,actor2,event_code,num_sources,source_url,note\n"
                  b"2026-03-04,RUS,AZE,163,2,u,a valid row\n")
        for _ in range(count // 100_000):
            out.write(line * 100_000)
    return count // 100_000 * 100_000


def child(code: str, *args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(rows: int, repeat: int, junk_mib: int = 1024) -> dict:
    """Median import time, rows/s and peak memory of `repeat` imports of a `rows`-row GDELT 2.0
    file into fresh stores, beside a plain `pandas.read_csv` of the same file; and the peak
    memory of importing `junk_mib` MiB of rejected rows."""
    with tempfile.TemporaryDirectory(prefix="import-bench-") as tmp:
        data = Path(tmp) / "events.export.tsv"
        rows = build(data, rows)
        runs = [child(IMPORT_CHILD, str(data), str(Path(tmp) / f"store{i}.duckdb"))
                for i in range(repeat)]
        scan_runs = [child(SCAN_CHILD, str(data)) for _ in range(repeat)]
        pandas_runs = ([child(PANDAS_CHILD, str(data)) for _ in range(repeat)]
                       if importlib.util.find_spec("pandas") else [])
        size = data.stat().st_size
        data.unlink()
        junk = Path(tmp) / "junk.csv"
        junk_rows = build_junk(junk, junk_mib)
        junk_run = child(IMPORT_CHILD, str(junk), str(Path(tmp) / "junk.duckdb"))
    seconds = statistics.median(r["seconds"] for r in runs)
    figures = {
        "rows": rows,
        "file_mib": round(size / 2**20, 1),
        "cpus": os.cpu_count(),
        "import_seconds": round(seconds, 3),
        "import_seconds_runs": [round(r["seconds"], 3) for r in runs],
        "rows_per_second": round(rows / seconds),
        "import_cpu_seconds": round(statistics.median(r["cpu_seconds"] for r in runs), 3),
        "import_peak_mib": round(max(r["peak_mib"] for r in runs), 1),
        "result": runs[0]["result"],
        "duckdb_scan_seconds": round(statistics.median(r["seconds"] for r in scan_runs), 3),
        "import_vs_duckdb_scan": round(seconds / statistics.median(r["seconds"]
                                                                  for r in scan_runs), 2),
        "junk_mib": junk_mib,
        "junk_rejected": junk_run["result"]["rejected"],
        "junk_seconds": round(junk_run["seconds"], 3),
        "junk_peak_mib": round(junk_run["peak_mib"], 1),
    }
    assert junk_run["result"]["rejected"] == junk_rows
    if pandas_runs:
        pandas_seconds = statistics.median(r["seconds"] for r in pandas_runs)
        figures |= {
            "pandas_seconds": round(pandas_seconds, 3),
            "pandas_peak_mib": round(max(r["peak_mib"] for r in pandas_runs), 1),
            "speedup_vs_pandas": round(pandas_seconds / seconds, 2),
        }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--junk-mib", type=int, default=1024,
                        help="size of the file of junk (the target is for 1 GiB: some 3 minutes)")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args()
    figures = measure(args.rows, args.repeat, args.junk_mib)
    rows, seconds = figures["rows"], figures["import_seconds"]
    print(f"GDELT 2.0 import, {rows:,} rows ({figures['file_mib']} MiB), median of {args.repeat}")
    print(f"{'':24}{'seconds':>10}{'rows/s':>14}{'peak MiB':>10}")
    print(
        f"{'forecast import_events':24}{seconds:>10.3f}{rows / seconds:>14,.0f}"
        f"{figures['import_peak_mib']:>10.1f}   (CPU {figures['import_cpu_seconds']:.3f} s)"
    )
    print(f"{'duckdb filtered read':24}{figures['duckdb_scan_seconds']:>10.3f}"
          f"{rows / figures['duckdb_scan_seconds']:>14,.0f}   (the import takes "
          f"{figures['import_vs_duckdb_scan']}x its time)")
    if "pandas_seconds" in figures:
        print(
            f"{'pandas.read_csv':24}{figures['pandas_seconds']:>10.3f}"
            f"{rows / figures['pandas_seconds']:>14,.0f}{figures['pandas_peak_mib']:>10.1f}"
        )
        print(f"speed-up over pandas: {figures['speedup_vs_pandas']}x")
    print(f"{figures['junk_mib']} MiB of junk ({figures['junk_rejected']:,} rejected rows): "
          f"{figures['junk_seconds']:.1f} s, peak {figures['junk_peak_mib']:.0f} MiB")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
