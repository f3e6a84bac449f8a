"""Crash safety: real commands killed with SIGKILL, at seeded random moments and at chosen ones
(while a posterior, a backup, a PNG or a payload is being written; while an import stages or
commits), leave a workspace the next command opens, with every record whole.

After every trial: the store opens and reads whole; rows were only added, a killed command
added all of its record or none of it (one judgment, one manual resolution, one run with a
forecast per question, a submission's every row, an import's events and its `imports` row);
every recorded run's posterior file reads whole; posteriors, backup, report and payload files
are absent or whole (only temporary files may be partial); `show` and `events stats` run.
"""

import csv
import datetime as dt
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main
from forecast import history
from forecast.posterior import read_posterior
from forecast.store import open_store, verify
from forecast.workspace import open_workspace
from tests.conftest import events_csv

pytestmark = pytest.mark.slow

SEED = 20251126
FORECAST = Path(sys.executable).with_name("forecast")
DATA = Path(__file__).resolve().parent / "data"
# events long before the fitted weeks and the questions' opening: an update after importing
# them finds its run again instead of sampling
FILES = [DATA / "native-sample.csv", DATA / "gdelt1-sample.tsv",
         DATA / "gdelt2-20191024143000.export.tsv", DATA / "icews-sample.tsv",
         DATA / "acled-sample.csv"]
UPDATE = ["update", "--as-of", "2026-11-15", "--draws", "100", "--tune", "200",
          "--allow-unconverged"]
JUDGED = "hybrid-retaliation-by-2026-12-31"
QUESTIONS = 21  # of the bundled priors
DOCTOR = [["doctor", "--repair"], ["doctor"]]
ENV = {k: v for k, v in os.environ.items() if k != "FORECAST_WORKSPACE"}


#: A trial's command and the rows it may add (a whole record or nothing), given its number.
Trial = Callable[[int], tuple[list, dict[str, set[int]]]]


class Lab:
    """One example workspace, the commands run on it and what each left."""

    def __init__(self, tmp: Path):
        self.tmp, self.root, self.out = tmp, tmp / "ws", tmp / "out"
        self.out.mkdir(parents=True)
        self.log = tmp / "log"
        self.kills: Counter[str] = Counter()
        self.runs: Counter[str] = Counter()
        self.snapshot: dict[str, list] = {}
        self.trials: list[tuple[str, float, bool]] = []
        self.read: set[tuple[Path, int, int]] = set()  # files read whole, as they were then
        self.whole: dict[str, dict[str, int]] = {}  # rows a whole command added, by table

    def start(self, *args: object) -> subprocess.Popen:
        with open(self.log, "w") as log:
            return subprocess.Popen([str(FORECAST), "--workspace", str(self.root),
                                     *map(str, args)], stdout=log, stderr=subprocess.STDOUT,
                                    env=ENV, cwd=self.tmp)

    def finish(self, name: str, proc: subprocess.Popen, ready: Callable[[], bool] | None = None,
               extra: float = 0.0) -> float:
        """Let `proc` run, or kill it `extra` seconds after `ready()` first holds; returns the
        seconds it ran. A command that finished must have succeeded."""
        t0 = time.monotonic()
        while ready is not None and not ready() and proc.poll() is None:
            time.sleep(0.001)
        if ready is not None:
            time.sleep(extra)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
        proc.wait()
        seconds = time.monotonic() - t0
        self.trials.append((name, round(seconds, 2), proc.returncode == -signal.SIGKILL))
        if proc.returncode == -signal.SIGKILL:
            self.kills[name] += 1
        else:
            assert proc.returncode == 0, (name, proc.args, self.log.read_text())
            self.runs[name] += 1
        return seconds

    def trials_of(self, commands: dict[str, tuple[Trial, int]], rng: random.Random) -> None:
        """Run each command once whole (its length is measured, the rows it added are kept in
        `whole`), then until it was killed `n` times, in a shuffled order, each at a random
        moment within its length. A run that ends before its moment (it went faster, or took
        a shorter path) is tried again, within its own length, up to `n` times."""
        length = {}
        for name, (trial, _) in commands.items():
            args, allowed = trial(0)
            before = {t: len(rows) for t, rows in self.snapshot.items()}
            length[name] = self.finish(name, self.start(*args))
            self.check(allowed)
            self.whole[name] = {t: len(rows) - before[t] for t, rows in self.snapshot.items()}
        order = [(name, n) for name, (_, times) in commands.items() for n in range(1, times + 1)]
        rng.shuffle(order)
        retries = Counter({name: times for name, (_, times) in commands.items()})
        for name, n in order:
            args, allowed = commands[name][0](n)
            kills = self.kills[name]
            seconds = self.finish(name, self.start(*args),
                                  after(rng.uniform(0.05, 0.9) * length[name]))
            self.check(allowed)
            if self.kills[name] == kills and retries[name]:
                length[name], retries[name] = seconds, retries[name] - 1
                order.append((name, n + len(order)))

    def chosen(self, trials: list[tuple[str, list, Callable[[], Callable[[], bool]], float,
                                        dict[str, set[int]]]]) -> None:
        """(name, command, when to kill it (made as it starts), then how long after, the rows
        it may add)."""
        for name, args, when, extra, allowed in trials:
            ready = when()
            self.finish(name, self.start(*args), ready, extra)
            self.check(allowed)

    def check(self, allowed: dict[str, set[int]] | None = None) -> None:
        """The workspace after a trial; `allowed` maps tables to the row counts a trial may
        have added to them (a whole record or nothing)."""
        ws = open_workspace(self.root)
        tables = verify(ws.store_path)  # opens, and every block reads
        con = open_store(ws.store_path, read_only=True)
        try:
            now = {t: sorted(con.execute(f"SELECT * FROM {t}").fetchall(), key=repr)
                   for t in ("judgments", "resolutions", "submissions", "imports")}
            now["runs"] = sorted(r["run_id"] for r in history.runs(con))
            per_run = Counter(r for (r,) in con.execute("SELECT run_id FROM forecasts")
                              .fetchall())
            events, rows, dups, imported = con.execute(
                "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM event_sources), "
                "(SELECT coalesce(sum(duplicates), 0) FROM events), "
                "(SELECT coalesce(sum(imported), 0) FROM imports)").fetchone()
            posteriors = [r["posterior_file"] for r in history.runs(con)]
        finally:
            con.close()
        # an import is whole: its events, its source rows and its `imports` row
        assert events == imported and rows == events + dups
        assert set(per_run) == set(now["runs"]) and len(set(per_run.values())) <= 1
        for table, before in self.snapshot.items():  # rows are only added
            assert not Counter(before) - Counter(now[table]), table
            added = len(now[table]) - len(before)
            assert added in (allowed or {}).get(table, {0}), (table, added)
        if ws.backup_path.exists():
            backup = verify(ws.backup_path)
            assert all(backup[t] <= tables[t] for t in backup)
        assert all((ws.root / name).is_file() for name in posteriors)
        for path in ws.posteriors_dir.glob("*.nc"):  # whole, those of runs and any other
            stat = path.stat()
            if (path, stat.st_mtime_ns, stat.st_size) not in self.read:
                read_posterior(path, "")
                self.read.add((path, stat.st_mtime_ns, stat.st_size))
        self._outputs()
        runner = CliRunner()
        for args in (["show", "--json"], ["events", "stats", "--json"]):
            result = runner.invoke(main, ["--workspace", str(self.root), *args])
            assert result.exit_code == 0, (args, result.output)
        self.snapshot = now

    def _outputs(self) -> None:
        """The report's and the payload's files are absent or whole."""
        report = self.out / "report"
        if (report / "report.md").exists():
            text = (report / "report.md").read_text()
            assert "## Provenance" in text and text.endswith("\n")
        if (report / "report.html").exists():
            assert (report / "report.html").read_text().endswith("</body></html>\n")
        for png in report.glob("*.png"):
            data = png.read_bytes()
            assert data.startswith(b"\x89PNG") and data.endswith(b"IEND\xaeB`\x82"), png
        if (self.out / "sub.csv").exists():
            rows = list(csv.DictReader((self.out / "sub.csv").read_text().splitlines()))
            assert rows and all(0 <= float(r["probability"]) <= 1 for r in rows)


def appears(folder: Path, pattern: str) -> Callable[[], bool]:
    return lambda: any(folder.glob(pattern))


def after(seconds: float) -> Callable[[], bool]:
    """True from `seconds` after its first call (made when the command has started)."""
    start: list[float] = []

    def ready() -> bool:
        start.append(time.monotonic())
        return start[-1] >= start[0] + seconds

    return ready


def changes(path: Path) -> Callable[[], bool]:
    """True once `path` exists and differs from what it was when this was made (a journal a
    killed writer left is replayed, and removed, by the next one)."""
    def stat() -> tuple[int, int, int] | None:
        try:
            s = path.stat()
        except FileNotFoundError:
            return None
        return s.st_ino, s.st_mtime_ns, s.st_size

    before = stat()
    return lambda: stat() not in (None, before)


def test_commands_killed_at_any_moment_leave_every_record_whole(tmp_path):
    rng = random.Random(SEED)
    lab = Lab(tmp_path / "main")
    t_start = time.monotonic()
    lab.finish("init", lab.start("init", "--example"))
    config = lab.root / "forecast.toml"
    config.write_text(config.read_text().replace("history_weeks = 156", "history_weeks = 20"))
    lab.check()

    # The first update, killed while its posterior is written or recorded; `priors check`
    # meanwhile caches the claims-only fit that `report` and `submit` need.
    priors = subprocess.Popen([str(FORECAST), "--workspace", str(lab.root), "priors", "check"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    run_posterior = appears(lab.root / "posteriors", "." + "?" * 16 + ".nc.*.tmp")
    lab.finish("update", lab.start(*UPDATE), run_posterior, extra=rng.uniform(0, 0.6))
    assert priors.wait() == 0
    lab.check({"runs": {0, 1}})

    # While the update runs again (a fit compiles on one core), imports and judgments are
    # killed in a twin of the workspace, as the kill left it.
    twin = Lab(tmp_path / "twin")
    shutil.copytree(lab.root, twin.root)
    twin.check()
    refit = lab.start(*UPDATE)
    big = events_csv(tmp_path / "many.csv", 30000)

    def importing(n: int) -> tuple[list, dict[str, set[int]]]:
        files = [FILES[n % len(FILES)]] + ([big] if n % 3 == 1 else [])
        return ["events", "import", *files], {"imports": set(range(len(files) + 1)),
                                              "resolutions": set(range(QUESTIONS + 1))}

    def judging(n: int) -> tuple[list, dict[str, set[int]]]:
        return ["judge", JUDGED, f"{rng.uniform(0.05, 0.95):.3f}"], {"judgments": {0, 1}}

    twin.trials_of({"import": (importing, 7), "judge": (judging, 3)}, rng)
    twin.chosen([  # an import staging its file, and committing it; a judgment's backup copied
        ("import", ["events", "import", big, FILES[0]],
         lambda: appears(twin.root, "forecast-import-*"), 0.05, importing(1)[1]),
        ("import", ["events", "import", events_csv(tmp_path / "more.csv", 30000)],
         lambda: changes(twin.root / "store.duckdb.wal"), 0.0, {"imports": {0, 1}}),
        ("judge", ["judge", JUDGED, "0.5"],
         lambda: appears(twin.root, ".store.backup.duckdb.*.tmp"), 0.0, {"judgments": {0, 1}}),
    ])
    lab.finish("update", refit)
    lab.check({"runs": {0, 1}})
    assert not list((lab.root / "posteriors").glob(".*.tmp"))  # the next writer cleaned up

    # Resolutions by hand, updates (which find their run again), submissions and reports.
    shown = json.loads(CliRunner().invoke(main, ["--workspace", str(lab.root), "show",
                                                 "--json"]).stdout)
    assert len(shown) == QUESTIONS
    # YES already: resolving them by hand leaves the same questions to submit
    resolved = [r["question"] for r in shown if r["status"] == "yes"
                and r["deadline"] >= "2026-12-31"]
    sub, report = ["submit", "--platform", "csv", "--force", "--out", lab.out / "sub.csv"], [
        "report", "--out", lab.out / "report"]

    def resolving(n: int) -> tuple[list, dict[str, set[int]]]:
        day = dt.date(2026, 12, 1) + dt.timedelta(days=n)
        return ["resolve", resolved[n % len(resolved)], "yes", "--date", day], {
            "resolutions": {0, 1}}

    def updating(n: int) -> tuple[list, dict[str, set[int]]]:  # a new run if the code changed
        return UPDATE, {"runs": {0, 1}, "resolutions": set(range(QUESTIONS + 1))}

    def submitting(n: int) -> tuple[list, dict[str, set[int]]]:
        return sub, {"submissions": {0, lab.whole["submit"]["submissions"]} if n else
                     range(1, 100)}

    lab.trials_of({"resolve": (resolving, 3), "update": (updating, 3),
                   "submit": (submitting, 2)}, rng)
    lab.chosen([  # a payload and the report's figures being written
        ("submit", sub, lambda: appears(lab.out, ".sub.csv.*.tmp"), 0.0, submitting(1)[1]),
        ("report", report, lambda: after(rng.uniform(1.0, 5.0)), 0.0, {}),
        ("report", report, lambda: appears(lab.out / "report", ".*.png.*.tmp"),
         rng.uniform(0, 1.0), {}),
    ])

    # The next commands: update again (its run is found again), and nothing left to repair.
    for one, commands in ((lab, [UPDATE]), (lab, DOCTOR), (twin, DOCTOR)):
        for args in commands:
            one.finish("after", one.start(*args))
        one.check(updating(0)[1])
    assert "no problems found" in lab.log.read_text() and "no problems" in twin.log.read_text()
    kills = lab.kills + twin.kills
    print(f"\n(command, seconds, killed): {lab.trials + twin.trials}\nkills {dict(kills)}; "
          f"completed {dict(lab.runs + twin.runs)}; {time.monotonic() - t_start:.0f} s")
    assert sum(kills.values()) >= 20
    assert {"import", "judge", "resolve", "update", "submit", "report"} <= set(kills)
