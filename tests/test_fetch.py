"""`forecast events fetch gdelt2` end to end against a local HTTP server on 127.0.0.1, serving
real-format exports (the real GDELT 2.0 export split in three, zipped as GDELT zips them) and a
master list made from them, with a wrong MD5, a 404 and a truncated zip among them."""

import datetime as dt
import hashlib
import io
import os
import random
import signal
import subprocess
import sys
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cli import main
from forecast.events import import_events
from forecast.fetch import fetch_gdelt2
from forecast.store import open_store
from forecast.workspace import open_workspace

SAMPLE = Path(__file__).parent / "data" / "gdelt2-20191024143000.export.tsv"
STAMPS = ["20191024143000", "20191024144500", "20191024150000"]
BAD = {"md5": "20191024151500", "missing": "20191024153000", "truncated": "20191024154500"}


def _zip(stamp: str, rows: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{stamp}.export.CSV", rows)
    return out.getvalue()


class Feed:
    """The files, the master list and the requests the server saw."""

    def __init__(self) -> None:
        lines = SAMPLE.read_bytes().splitlines(keepends=True)
        parts = [lines[:700], lines[700:1400], lines[1400:]]
        self.files = {f"/gdeltv2/{s}.export.CSV.zip": _zip(s, b"".join(p))
                      for s, p in zip(STAMPS, parts, strict=True)}
        self.requests: list[str] = []
        self.base = ""
        self.delay = 0.0  # seconds before each export's reply
        listed = list(self.files.items())
        bad_md5 = _zip(BAD["md5"], b"".join(lines[:10]))
        truncated = _zip(BAD["truncated"], b"".join(lines[10:20]))
        self.files[f"/gdeltv2/{BAD['md5']}.export.CSV.zip"] = bad_md5
        self.files[f"/gdeltv2/{BAD['truncated']}.export.CSV.zip"] = truncated[:-40]
        self.master = [f"{len(data)} {hashlib.md5(data).hexdigest()} {{base}}{path}"
                       for path, data in listed]
        self.master += [f"{len(bad_md5)} {'0' * 32} {{base}}/gdeltv2/{BAD['md5']}.export.CSV.zip",
                        f"100 {'1' * 32} {{base}}/gdeltv2/{BAD['missing']}.export.CSV.zip",
                        f"{len(truncated)} {hashlib.md5(truncated).hexdigest()} "
                        f"{{base}}/gdeltv2/{BAD['truncated']}.export.CSV.zip",
                        f"5 {'2' * 32} {{base}}/gdeltv2/20191024143000.mentions.CSV.zip",
                        f"5 {'3' * 32} {{base}}/gdeltv2/20191025000000.export.CSV.zip",
                        "a line that is not size md5 url"]

    def handler(self) -> type[BaseHTTPRequestHandler]:
        feed = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                feed.requests.append(self.path)
                if self.path == "/gdeltv2/masterfilelist.txt":
                    body = "\n".join(feed.master).replace("{base}", feed.base).encode()
                elif self.path in feed.files:
                    time.sleep(feed.delay)
                    body = feed.files[self.path]
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        return Handler


@pytest.fixture
def feed(workspace):
    feed = Feed()
    server = ThreadingHTTPServer(("127.0.0.1", 0), feed.handler())
    feed.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    config = workspace.root / "forecast.toml"
    text = config.read_text()
    assert 'gdelt2_master = "http://data.gdeltproject.org/gdeltv2/masterfilelist.txt"' in text
    config.write_text(text.replace("http://data.gdeltproject.org", feed.base))
    yield feed
    server.shutdown()
    server.server_close()


def _events(root: Path) -> list[tuple]:
    con = open_store(root / "store.duckdb", read_only=True)
    try:
        return con.execute("SELECT * EXCLUDE (file, line) FROM events ORDER BY ALL").fetchall()
    finally:
        con.close()


def test_fetch_imports_each_listed_export_once_and_names_each_bad_one(runner, workspace, feed,
                                                                      tmp_path):
    args = ["--workspace", str(workspace.root), "events", "fetch", "gdelt2", "--since",
            "2019-10-24", "--until", "2019-10-24"]
    direct = tmp_path / "direct"  # the whole export imported directly
    direct.mkdir()
    con = open_store(direct / "store.duckdb")
    whole = import_events(con, SAMPLE)
    con.close()
    result = runner.invoke(main, args)
    assert result.exit_code == 1
    assert result.stdout == (f"gdelt2: 6 file(s) from 2019-10-24; 3 imported ({whole.imported} "
                             "new events), 0 imported before, 3 failed\n")
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    url = f"{feed.base}/gdeltv2/{{}}.export.CSV.zip".format
    served = {stamp: feed.files[f"/gdeltv2/{stamp}.export.CSV.zip"]
              for stamp in (BAD["md5"], BAD["truncated"])}
    md5, cut = hashlib.md5(served[BAD["md5"]]).hexdigest(), len(served[BAD["truncated"]])
    assert errors == [
        f"error: {url(BAD['md5'])}: MD5 {md5}, but the master list says {'0' * 32}: not imported",
        f"error: {url(BAD['missing'])}: not downloaded (HTTP 404 Not Found)",
        f"error: {url(BAD['truncated'])}: {cut} bytes, but the master list says {cut + 40}: "
        "not imported",
    ]
    assert "1 line(s) of the master list are not 'size md5 url'" in result.stderr
    assert result.stderr.rstrip().endswith("3 file(s) could not be fetched whole (named above): "
                                           "run the command again to retry them")
    assert _events(workspace.root) == _events(direct)  # the same events

    # a second run fetches only what is missing: the good files are not downloaded again
    feed.requests.clear()
    again = runner.invoke(main, [*args, "--json"])
    assert again.exit_code == 1
    assert '"already": 3' in again.stdout
    assert not any(STAMPS[0] in r or STAMPS[1] in r or STAMPS[2] in r for r in feed.requests)


def test_a_fetch_killed_between_files_resumes(workspace, feed):
    """Each export is imported in its own transaction: a fetch stopped after its first file
    keeps it, and the next run fetches the others."""
    ws = open_workspace(workspace.root)

    def stop(done: int, total: int, problem: str | None) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fetch_gdelt2(ws, since=dt.date(2019, 10, 24),
                     until=dt.date(2019, 10, 24), progress=stop)
    con = open_store(ws.store_path, read_only=True)
    assert con.execute("SELECT count(*) FROM imports").fetchone() == (1,)
    con.close()
    result = fetch_gdelt2(ws, since=dt.date(2019, 10, 24),
                          until=dt.date(2019, 10, 24))
    assert (result.listed, result.already, len(result.imported), len(result.failed)) == (6, 1,
                                                                                          2, 3)


@pytest.mark.slow
def test_a_fetch_killed_at_any_moment_keeps_whole_files_and_finishes_when_run_again(
        workspace, feed, tmp_path):
    """SIGKILL (nothing can catch it) at seeded moments of real `forecast events fetch`
    processes: the store reads whole and holds whole files only; the next run fetches the rest,
    and the events are those of the three good files imported directly."""
    forecast = Path(sys.executable).with_name("forecast")
    env = {k: v for k, v in os.environ.items() if k != "FORECAST_WORKSPACE"}
    args = [str(forecast), "--workspace", str(workspace.root), "events", "fetch", "gdelt2",
            "--since", "2019-10-24", "--until", "2019-10-24"]
    direct = tmp_path / "direct"
    direct.mkdir()
    con = open_store(direct / "store.duckdb")
    for stamp in STAMPS:
        with zipfile.ZipFile(io.BytesIO(feed.files[f"/gdeltv2/{stamp}.export.CSV.zip"])) as z:
            (tmp_path / stamp).write_bytes(z.read(f"{stamp}.export.CSV"))
        import_events(con, tmp_path / stamp)
    con.close()
    feed.delay = 0.5
    rng = random.Random(20261201)
    for _ in range(3):
        proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(1.0, 4.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        con = open_store(workspace.store_path, read_only=True)
        try:
            imported, events = con.execute("SELECT (SELECT coalesce(sum(imported), 0) FROM "
                                           "imports), (SELECT count(*) FROM events)").fetchone()
        finally:
            con.close()
        assert imported == events  # whole files only
    feed.delay = 0.0
    done = subprocess.run(args, env=env, capture_output=True, text=True)
    assert done.returncode == 1, done.stderr  # the three bad files fail again, named
    assert _events(workspace.root) == _events(direct)
    doctor = subprocess.run([str(forecast), "--workspace", str(workspace.root), "doctor"],
                            env=env, capture_output=True, text=True)
    assert doctor.returncode == 0, doctor.stdout
