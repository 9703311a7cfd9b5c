"""A lean HTTP/1.1 client for the generic HTTP target's one request per arrival.

Locust's `FastHttpSession` stacks three layers over the socket per request: the session (context
merge, header copies, a `ResponseContextManager` copying the response's `__dict__`), the
`UserAgent` (a `CompatRequest` with a full URL parse and requote, the cookie jar's scan even when
it is empty, retries and redirects), and `HTTPClient.request` (two case-insensitive header merges,
a regex per header, the C parser's Python callbacks per header). At 2,000 req/s that was more
than half of the generator's CPU per request. Here the request head is built from parts fixed
when the run starts, written in one `send`, and the answer is read with `bytes.find`:

- the same bytes on the wire as before (request line with the requoted target, `User-Agent`,
  the request's headers, `Accept-Encoding: gzip, deflate, br` as Locust adds it, `Host`,
  `Content-Length`), on up to `size` keep-alive connections;
- answers with `Content-Length`, `Transfer-Encoding: chunked` or read-until-close; 1xx interim
  answers skipped; `HEAD`, 204 and 304 without a body; `Connection: close` (and HTTP/1.0 without
  keep-alive) honoured; gzip / deflate / br bodies decoded as geventhttpclient did;
- a pooled connection is checked before reuse (a zero-timeout poll: the peer closed it, or it
  holds bytes nobody asked for, and it is replaced), and an idempotent request that found its
  reused connection closed before any answer byte is sent again once, as geventhttpclient does;
- `connect_timeout` for the connection; `timeout` for the exchange after it (send and the
  whole answer), kept by one watchdog greenlet that closes a connection past its deadline
  (the waiting request then fails with an OSError). geventhttpclient put the timeout on every
  socket operation, which cost a gevent Timeout (a libev timer started and stopped) per
  `recv`; an answer trickling in slower than the timeout now fails where it did not.

What it does not do itself stays with Locust's session (loadtests/adapters/http_user.py): a
request to another origin or with `Expect` / `Transfer-Encoding` (`Exotic`, raised before
anything is sent) goes through it; a redirect answer is followed through it from the
`Location`; `Set-Cookie` answers go into the session's cookie jar, and while the jar holds a
cookie every request goes through the session. The behaviour is the one it always had, at the
old cost, only there.

No Locust import here (gevent only), so it is tested in-process.
"""

from __future__ import annotations

import re
import time
import zlib
from typing import Any
from urllib.parse import urlsplit

import gevent
import gevent.event
import gevent.socket
import gevent.ssl

try:
    from gevent import monkey

    _select = monkey.get_original("select", "select")
except (ImportError, AttributeError):  # pragma: no cover - gevent always has it
    from select import select as _select

REDIRECTS = frozenset((301, 302, 303, 307, 308))
IDEMPOTENT = frozenset(("GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"))
BODY_METHODS = frozenset(("POST", "PUT", "PATCH"))
ACCEPT_ENCODING = "gzip, deflate, br"  # what Locust's FastHttpSession adds to every request
MAX_HEAD = 1 << 20
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")


def user_agent() -> str:
    """The User-Agent geventhttpclient sent (HTTPClient.DEFAULT_HEADERS)."""
    try:
        from geventhttpclient.client import HTTPClient

        return HTTPClient.DEFAULT_HEADERS["User-Agent"]
    except (ImportError, KeyError):  # pragma: no cover
        return "python/gevent-http-client"


class Exotic(Exception):
    """This request needs the full client (another origin, Expect, Transfer-Encoding); raised
    before anything is sent."""


class ProtocolError(OSError):
    """The peer broke HTTP/1.1 (or closed the connection mid-answer)."""


class Headers(dict):
    """Answer headers: lower-case names; a repeated field combined with ', ' (RFC 9110 5.3),
    Set-Cookie kept apart. `get` takes any case."""

    __slots__ = ("set_cookie",)

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return dict.get(self, name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return dict.__getitem__(self, name.lower())

    def __contains__(self, name: object) -> bool:
        return dict.__contains__(self, name.lower() if isinstance(name, str) else name)


class Answer:
    __slots__ = ("content", "headers", "status")

    def __init__(self, status: int, headers: Headers, content: bytes):
        self.status = status
        self.headers = headers
        self.content = content


class _Conn:
    __slots__ = ("buf", "expired", "sock", "used")

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.used = False
        self.expired = False


def _decode(encoding: str, body: bytes) -> bytes:
    """geventhttpclient's CompatResponse._content for a content-encoding."""
    if encoding == "gzip":
        return zlib.decompress(body, 16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        try:
            return zlib.decompress(body, -zlib.MAX_WBITS)
        except zlib.error:
            return zlib.decompress(body)
    if encoding == "br":
        import brotli

        return brotli.decompress(body)
    if encoding == "identity":
        return body
    raise ProtocolError(f"unsupported content encoding: {encoding}")


class LeanClient:
    def __init__(self, base_url: str, *, timeout: float, connect_timeout: float, size: int,
                 insecure: bool = True):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.base_url = base_url
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.size = size
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.host_header = host if self.port in (80, 443) else f"{host}:{self.port}"
        self.origin = (self.scheme, self.host.lower(), self.port)
        self._idle: list[_Conn] = []
        self._open = 0
        self._freed = gevent.event.Event()
        self._ssl = None
        if self.scheme == "https":
            ctx = gevent.ssl.create_default_context()
            if insecure:  # Locust's FastHttpSession default: no verification
                ctx.check_hostname = False
                ctx.verify_mode = gevent.ssl.CERT_NONE
            self._ssl = ctx
        self._targets: dict[str, str | None] = {}
        self._deadlines: dict[_Conn, float] = {}  # connections in an exchange -> deadline
        self._watchdog = None
        self.user_agent = user_agent()

    # --- the request head --------------------------------------------------------------------

    def target(self, path: str) -> str:
        """The request target for a path joined to the base URL (geventhttpclient's URL parse and
        requote, cached per distinct path); Exotic for another origin."""
        found = self._targets.get(path, "")
        if found == "":
            found = self._targets[path] = self._compute_target(path)
            if len(self._targets) > 65536:
                self._targets.clear()
        if found is None:
            raise Exotic("another origin")
        return found

    def _compute_target(self, path: str) -> str | None:
        from geventhttpclient.url import URL

        full = path if re.match(r"^https?://", path, re.IGNORECASE) else self.base_url + path
        url = URL(full)
        port = url.port or (443 if url.scheme == "https" else 80)
        if (url.scheme, (url.host or "").lower(), port) != self.origin:
            return None
        uri = getattr(url, "quoted_uri", url.request_uri)
        if not uri.startswith("/"):
            uri = "/" + uri
        return uri

    def fixed_headers(self, headers: dict[str, str], has_body: bool) -> tuple[str, bool]:
        """The header block of a request (without Content-Length), in the order and spelling
        geventhttpclient merged them: User-Agent first unless the request sets it, then the
        request's, Accept-Encoding unless set, a body's content-type unless set, Host unless set. Second: whether the request sets
        its own Content-Length. Raises ValueError for an invalid field, as HTTPClient did."""
        fields: dict[str, tuple[str, str]] = {"user-agent": ("User-Agent", self.user_agent)}
        for name, value in headers.items():
            value = str(value)
            if not _TOKEN.fullmatch(name):
                raise ValueError(f"invalid header field name {name!r}")
            if not _FIELD_VALUE.fullmatch(value):
                raise ValueError(f"invalid value for header field {name!r}: {value!r}")
            fields[name.lower()] = (name, value)
        if "accept-encoding" not in fields:
            fields["accept-encoding"] = ("Accept-Encoding", ACCEPT_ENCODING)
        if has_body and "content-type" not in fields:
            # what geventhttpclient's _make_request added to a body without a type
            fields["content-type"] = ("content-type", "application/octet-stream")
        if "host" not in fields:
            fields["host"] = ("Host", self.host_header)
        if "expect" in fields or "transfer-encoding" in fields:
            raise Exotic("header the lean path does not send itself")
        own_length = "content-length" in fields
        return "".join(f"{n}: {v}\r\n" for n, v in fields.values()), own_length

    def head(self, method: str, target: str, header_block: str, own_length: bool,
             body: bytes | None) -> bytes:
        if own_length:
            length = ""
        elif body:
            length = f"Content-Length: {len(body)}\r\n"
        elif method in BODY_METHODS:
            length = "Content-Length: 0\r\n"
        else:
            length = ""
        return f"{method} {target} HTTP/1.1\r\n{header_block}{length}\r\n".encode("latin-1")

    # --- connections ------------------------------------------------------------------------

    def _checkout(self) -> _Conn:
        idle = self._idle
        while idle:
            conn = idle.pop()
            try:
                readable = _select([conn.sock.fileno()], [], [], 0)[0]
            except (OSError, ValueError):
                readable = True
            if not readable:
                return conn
            self._discard(conn)  # closed by the peer, or bytes nobody asked for
        while self._open >= self.size:
            self._freed.clear()
            self._freed.wait()
            if idle:
                return self._checkout()
        self._open += 1
        try:
            sock = gevent.socket.create_connection((self.host, self.port),
                                                   timeout=self.connect_timeout)
            sock.setsockopt(gevent.socket.IPPROTO_TCP, gevent.socket.TCP_NODELAY, 1)
            if self._ssl is not None:
                sock = self._ssl.wrap_socket(sock, server_hostname=self.host)
            sock.settimeout(None)  # the watchdog keeps the deadline
        except BaseException:
            self._open -= 1
            self._freed.set()
            raise
        return _Conn(sock)

    def _discard(self, conn: _Conn) -> None:
        self._open -= 1
        self._freed.set()
        try:
            conn.sock.close()
        except OSError:
            pass

    def _release(self, conn: _Conn) -> None:
        conn.used = True
        self._idle.append(conn)
        self._freed.set()

    def _watch(self) -> None:
        """Close every connection whose exchange ran past its deadline; runs while any exchange
        is in flight, every tenth of the timeout (at most 0.1 s)."""
        step = min(0.1, self.timeout / 10)
        deadlines = self._deadlines
        while deadlines:
            gevent.sleep(step)
            now = time.monotonic()
            for conn, deadline in list(deadlines.items()):
                if now >= deadline:
                    del deadlines[conn]
                    conn.expired = True
                    try:
                        conn.sock.close()  # the waiting greenlet gets an OSError
                    except OSError:
                        pass
        self._watchdog = None

    def close(self) -> None:
        for conn in self._idle:
            self._discard(conn)
        self._idle = []

    # --- one exchange -----------------------------------------------------------------------

    def send(self, method: str, head: bytes, body: bytes | None) -> Answer:
        """Send one request (head and body) and read its answer (a redirect and Set-Cookie are
        the caller's: `REDIRECTS`, `answer.headers.set_cookie`). Raises OSError: socket errors,
        timeouts, ProtocolError."""
        payload = head + body if body else head
        deadlines = self._deadlines
        for attempt in (0, 1):
            conn = self._checkout()
            reused = conn.used
            deadlines[conn] = time.monotonic() + self.timeout
            if self._watchdog is None:
                self._watchdog = gevent.spawn(self._watch)
            try:
                sock = conn.sock
                sent = sock.send(payload)  # one syscall for a request that fits the buffer
                if sent < len(payload):
                    sock.sendall(payload[sent:])
                answer, keep = self._read(conn, method)
            except _ClosedEarly:
                deadlines.pop(conn, None)
                self._discard(conn)
                if attempt == 0 and reused and method in IDEMPOTENT:
                    continue
                raise ProtocolError("connection closed before any answer") from None
            except BaseException as exc:
                deadlines.pop(conn, None)
                self._discard(conn)
                if conn.expired and isinstance(exc, OSError):
                    raise TimeoutError(f"no complete answer within {self.timeout:g} s") from exc
                raise
            del deadlines[conn]
            if keep:
                self._release(conn)
            else:
                self._discard(conn)
            return answer
        raise AssertionError("unreachable")

    def _read(self, conn: _Conn, method: str) -> tuple[Answer, bool]:
        sock = conn.sock
        data = conn.buf
        conn.buf = b""
        got_any = bool(data)
        if self._ssl is None:
            # the answer is not there yet right after the send: wait for the socket to be
            # readable first, rather than a recv that fails with EAGAIN (a syscall and an
            # exception) before gevent's recv waits anyway (TLS may hold bytes the fd does not
            # show: its sockets just recv)
            sock._wait(sock._read_event)
        while True:  # 1xx answers are skipped
            end = data.find(b"\r\n\r\n")
            while end < 0:
                chunk = sock.recv(65536)
                if not chunk:
                    if not got_any:
                        raise _ClosedEarly
                    raise ProtocolError("connection closed in the answer's head")
                got_any = True
                data += chunk
                if len(data) > MAX_HEAD:
                    raise ProtocolError("answer head too large")
                end = data.find(b"\r\n\r\n")
            lines = data[:end].decode("latin-1").split("\r\n")
            data = data[end + 4:]
            version, _, rest = lines[0].partition(" ")
            try:
                status = int(rest[:3])
            except ValueError:
                raise ProtocolError(f"bad status line {lines[0]!r}") from None
            if not version.startswith("HTTP/1.") or not 100 <= status <= 999:
                raise ProtocolError(f"bad status line {lines[0]!r}")
            if 100 <= status < 200 and status != 101:
                continue
            break
        headers = Headers()
        headers.set_cookie = None
        last = None
        for line in lines[1:]:
            if line[:1] in (" ", "\t") and last is not None:  # obsolete line folding
                headers[last] = f"{dict.__getitem__(headers, last)} {line.strip()}"
                continue
            name, sep, value = line.partition(":")
            if not sep:
                raise ProtocolError(f"bad header line {line!r}")
            last = name = name.strip().lower()
            value = value.strip()
            if name == "set-cookie":
                (headers.set_cookie if headers.set_cookie is not None else
                 _set(headers, [])).append(value)
            old = dict.get(headers, name)
            dict.__setitem__(headers, name, value if old is None else f"{old}, {value}")
        connection = dict.get(headers, "connection", "").lower()
        keep = ("close" not in connection) if version == "HTTP/1.1" else ("keep-alive" in connection)
        if method == "HEAD" or status in (204, 304):
            body = b""
        elif "chunked" in dict.get(headers, "transfer-encoding", "").lower():
            body, data = _read_chunked(sock, data)
        elif "content-length" in headers:
            try:
                length = int(dict.__getitem__(headers, "content-length").split(",")[0])
            except ValueError:
                raise ProtocolError("bad Content-Length") from None
            while len(data) < length:
                chunk = sock.recv(max(65536, length - len(data)))
                if not chunk:
                    raise ProtocolError("connection closed in the answer's body")
                data += chunk
            body, data = data[:length], data[length:]
        else:  # read until the peer closes
            parts = [data]
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                parts.append(chunk)
            body, data, keep = b"".join(parts), b"", False
        if data:
            keep = False  # bytes beyond the answer: nothing asked for them
        encoding = dict.get(headers, "content-encoding")
        if encoding and body:
            body = _decode(encoding.split(",")[0].strip().lower(), body)
        return Answer(status, headers, body), keep


def _set(headers: Headers, value: list) -> list:
    headers.set_cookie = value
    return value


class _ClosedEarly(Exception):
    pass


def _read_line(sock, data: bytes, where: str) -> tuple[bytes, bytes]:
    """The next CRLF-terminated line of `data` (receiving more as needed) and what follows it."""
    end = data.find(b"\r\n")
    while end < 0:
        chunk = sock.recv(65536)
        if not chunk:
            raise ProtocolError(f"connection closed in {where}")
        data += chunk
        end = data.find(b"\r\n")
    return data[:end], data[end + 2:]


def _read_chunked(sock, data: bytes) -> tuple[bytes, bytes]:
    parts = []
    while True:
        line, data = _read_line(sock, data, "a chunked body")
        try:
            size = int(line.split(b";")[0].strip(), 16)
        except ValueError:
            raise ProtocolError("bad chunk size") from None
        if size == 0:
            # trailers, then the blank line
            while True:
                line, data = _read_line(sock, data, "chunked trailers")
                if not line:
                    return b"".join(parts), data
        while len(data) < size + 2:
            chunk = sock.recv(max(65536, size + 2 - len(data)))
            if not chunk:
                raise ProtocolError("connection closed in a chunk")
            data += chunk
        parts.append(data[:size])
        data = data[size + 2:]
