"""The generic target's lean HTTP client (loadtests/adapters/lean_http.py) against a raw socket
server that answers what each test scripts: framing, keep-alive, stale connections, encodings.
gevent only, no Locust import, no monkey-patching: the client runs in the test's main greenlet,
the server on a real thread."""

from __future__ import annotations

import gzip
import socket
import threading

import pytest

from loadtests.adapters import lean_http


class Server:
    """Accepts connections; for each request read calls `answer(request_bytes, conn_index)`,
    which returns the bytes to send (and None to close the connection instead)."""

    def __init__(self, answer):
        self.answer = answer
        self.requests: list[bytes] = []
        self.connections = 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn, self.connections), daemon=True).start()

    def _serve(self, conn, index):
        buf = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, rest = buf.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(rest) < length:
                    rest += conn.recv(65536)
                request, buf = head + b"\r\n\r\n" + rest[:length], rest[length:]
                self.requests.append(request)
                out = self.answer(request, index)
                if out is None:
                    return
                conn.sendall(out)

    def close(self):
        self.sock.close()


CLIENTS: list[lean_http.LeanClient] = []


def client(server, **kw):
    c = lean_http.LeanClient(f"http://127.0.0.1:{server.port}", timeout=kw.pop("timeout", 5),
                             connect_timeout=5, size=kw.pop("size", 4), **kw)
    CLIENTS.append(c)
    return c


def exchange(c, method="GET", path="/x", headers=None, body=None):
    block, own = c.fixed_headers(headers or {}, bool(body))
    return c.send(method, c.head(method, c.target(path), block, own, body), body)


def ok(body=b'{"a":1}', extra=b""):
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%s\r\n%s" % (len(body), extra, body)


@pytest.fixture
def serve():
    servers = []

    def make(answer):
        servers.append(Server(answer))
        return servers[-1]

    yield make
    while CLIENTS:
        CLIENTS.pop().close()
    for s in servers:
        s.close()


def test_request_head_is_what_geventhttpclient_sent(serve):
    server = serve(lambda req, i: ok())
    c = client(server)
    answer = exchange(c, "POST", "/api/a b?x=1", {"content-type": "application/json",
                                                 "X-Id": "7"}, b'{"v":1}')
    assert answer.status == 200 and answer.content == b'{"a":1}'
    head = server.requests[0].decode()
    assert head.startswith("POST /api/a%20b?x=1 HTTP/1.1\r\nUser-Agent: python/gevent-http-client")
    assert "\r\ncontent-type: application/json\r\nX-Id: 7\r\nAccept-Encoding: gzip, deflate, br" \
           f"\r\nHost: 127.0.0.1:{server.port}\r\nContent-Length: 7\r\n\r\n" in head
    assert head.endswith('{"v":1}')
    # a body without a type: geventhttpclient's octet-stream; a POST without a body: length 0
    exchange(c, "PUT", "/p", {}, b"text")
    assert "content-type: application/octet-stream" in server.requests[1].decode()
    exchange(c, "POST", "/p", {}, None)
    assert "Content-Length: 0\r\n" in server.requests[2].decode()
    exchange(c, "GET", "/p", {}, None)
    assert "Content-Length" not in server.requests[3].decode()
    assert server.connections == 1  # one keep-alive connection for all four


def test_invalid_header_is_refused_before_sending(serve):
    c = client(serve(lambda req, i: ok()))
    with pytest.raises(ValueError):
        c.fixed_headers({"X-Bad": "a\r\nInjected: 1"}, False)
    with pytest.raises(lean_http.Exotic):
        c.fixed_headers({"Expect": "100-continue"}, True)
    with pytest.raises(lean_http.Exotic):
        c.target("http://elsewhere.example/x")
    assert c.target(f"http://127.0.0.1:{c.port}/y?z") == "/y?z"


def test_framing_chunked_interim_head_and_204(serve):
    answers = iter([
        (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4;ext=1\r\nab\r\n\r\n3\r\n"
         b"cde\r\n0\r\nx-trailer: 1\r\n\r\n"),
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n",  # HEAD: no body follows
        b"HTTP/1.1 204 No Content\r\n\r\n",
    ])
    server = serve(lambda req, i: next(answers))
    c = client(server)
    a = exchange(c, path="/chunked")
    assert (a.status, a.content) == (200, b"ab\r\ncde")
    a = exchange(c, "POST", "/interim", {}, b"x")
    assert (a.status, a.content) == (201, b"ok")
    a = exchange(c, "HEAD", "/head")
    assert (a.status, a.content) == (200, b"")
    a = exchange(c, path="/nocontent")
    assert (a.status, a.content) == (204, b"")
    assert server.connections == 1


def test_a_body_without_length_runs_to_the_close(serve):
    server = serve(None)

    def closing(conn, index):
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nserver-timing: app;dur=1.5\r\nServer-Timing: "
                         b"db;dur=2\r\nX-Variant: fast\r\n\r\nuntil close")

    server._serve = closing
    c = client(server)
    a = exchange(c, path="/close")
    assert (a.status, a.content) == (200, b"until close")
    assert a.headers.get("Server-Timing") == "app;dur=1.5, db;dur=2"  # repeated fields combined
    assert a.headers.get("x-variant") == "fast"
    assert c._idle == [] and c._open == 0  # not reused


def test_connection_close_and_http10(serve):
    server = serve(lambda req, i: ok(extra=b"connection: close\r\n") if b"/a" in req else
                   b"HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\nz")
    c = client(server)
    assert exchange(c, path="/a").content == b'{"a":1}'
    assert c._idle == []
    assert exchange(c, path="/b").content == b"z"
    assert c._idle == []  # HTTP/1.0 without keep-alive


def test_a_stale_connection_is_replaced_and_an_idempotent_request_retried(serve):
    # the first connection answers once, then the server drops it while it is parked
    state = {"n": 0}

    def answer(req, i):
        state["n"] += 1
        return ok() if i > 1 or state["n"] == 1 else None

    server = serve(answer)
    c = client(server)
    assert exchange(c).status == 200
    assert len(c._idle) == 1
    # the next request finds the connection closed without an answer (answer() gives None)
    a = exchange(c, path="/again")
    assert a.status == 200  # GET: sent again once on a new connection
    assert server.connections == 2
    # a POST that meets the same is not sent twice
    state["n"] = 0

    def post_answer(req, i):
        state["n"] += 1
        return ok() if state["n"] == 1 else None

    server.answer = post_answer
    c3 = client(server)
    assert exchange(c3, "POST", "/p", {}, b"1").status == 200
    with pytest.raises(lean_http.ProtocolError):
        exchange(c3, "POST", "/p", {}, b"2")


def test_gzip_cookies_redirects_are_the_callers(serve):
    body = gzip.compress(b'{"z":1}')
    server = serve(lambda req, i: (
        b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: %d\r\n"
        b"set-cookie: a=1; Path=/\r\nset-cookie: b=2\r\n\r\n%s" % (len(body), body))
        if b"/gz" in req else
        b"HTTP/1.1 302 Found\r\nlocation: /elsewhere\r\ncontent-length: 0\r\n\r\n")
    c = client(server)
    a = exchange(c, path="/gz")
    assert a.content == b'{"z":1}'
    assert a.headers.set_cookie == ["a=1; Path=/", "b=2"]
    a = exchange(c, path="/redirect")
    assert a.status == 302 and a.headers["Location"] == "/elsewhere"
    assert a.headers.set_cookie is None


def test_timeout_and_refused_are_oserrors(serve):
    server = serve(lambda req, i: None)

    def hang(conn, index):
        conn.recv(65536)
        threading.Event().wait(2)
        conn.close()

    server._serve = hang
    c = client(server, timeout=0.2)
    with pytest.raises(OSError):
        exchange(c)
    assert c._open == 0
    port = server.port
    server.close()
    c = lean_http.LeanClient(f"http://127.0.0.1:{port}", timeout=1, connect_timeout=1, size=2)
    with pytest.raises(OSError):
        exchange(c)
    assert c._open == 0


def test_connections_are_bounded(serve):
    import gevent

    server = serve(lambda req, i: ok())
    c = client(server, size=2)
    jobs = [gevent.spawn(exchange, c, "GET", f"/{n}") for n in range(20)]
    gevent.joinall(jobs, raise_error=True)
    assert all(j.value.status == 200 for j in jobs)
    assert server.connections <= 2 and c._open <= 2
