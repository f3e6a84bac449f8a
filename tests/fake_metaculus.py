"""A fake Metaculus: local HTTP servers on 127.0.0.1 that record requests and answer as told.
The `metaculus` fixture (in conftest) starts them and shuts them down."""

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Reply:
    status: int
    body: str = ""
    delay: float = 0.0  # seconds before answering (or until the test ends)
    echo_authorization: bool = False
    headers: dict[str, str] = field(default_factory=dict)


def post_reply(post_id, question_id, title, kind="binary"):
    """The reply of `GET /api/posts/<post_id>/` for a post holding one question."""
    return Reply(200, json.dumps({"id": post_id, "title": title, "question": {
        "id": question_id, "title": title, "type": kind}}))


@dataclass
class FakeMetaculus:
    """A local HTTP server that answers POSTs with `replies` in turn (the last one repeats), and
    GETs with `pages[path]` (404 for any other path)."""

    replies: list[Reply]
    pages: dict[str, Reply] = field(default_factory=dict)
    seen: list[Request] = field(default_factory=list)  # GETs and POSTs, in order
    release: threading.Event = field(default_factory=threading.Event)
    url: str = ""

    def reply_to(self, request: Request) -> Reply:
        self.seen.append(request)
        if request.method == "GET":
            return self.pages.get(request.path, Reply(404, '{"detail": "Not found."}'))
        posts = sum(r.method == "POST" for r in self.seen)
        return self.replies[min(posts, len(self.replies)) - 1]


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"

    def do_GET(self):
        self._answer()

    def do_POST(self):
        self._answer()

    def _answer(self):
        fake = self.server.fake
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        reply = fake.reply_to(Request(self.command, self.path, dict(self.headers), body))
        if reply.delay and fake.release.wait(reply.delay):
            return  # the test is over; the client has long gone
        text = reply.body
        if reply.echo_authorization:
            text += f" (you sent Authorization: {self.headers['Authorization']})"
        data = text.encode()
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # so that server_close() joins every handler thread
    fake: FakeMetaculus


def start_servers(monkeypatch):
    """Start fake Metaculus servers on 127.0.0.1; all are shut down and joined at teardown
    (a generator for a fixture)."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                 "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    running: list[tuple[_Server, threading.Thread]] = []

    def start(*replies: Reply, pages: dict[str, Reply] | None = None) -> FakeMetaculus:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = FakeMetaculus(list(replies), dict(pages or {}))
        server.fake.url = f"http://127.0.0.1:{server.server_address[1]}/"
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01})
        thread.start()
        running.append((server, thread))
        return server.fake

    yield start
    for server, thread in running:
        server.fake.release.set()
        server.shutdown()
        server.server_close()
        thread.join()
