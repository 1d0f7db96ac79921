"""Shared harness for litegate's integration tests (Python 3 standard library only).

Each test starts the real litegate binary on a free loopback port with a temporary data
directory and talks real HTTP, SSE and WebSocket to it:

- Gateway: writes a config file, starts/stops/kills/restarts the process, waits for /healthz.
- http(): one request on a fresh http.client connection, JSON decoded when it is JSON.
- SSEClient: a raw-socket EventSource that parses events and comments as they arrive.
- WSClient: a raw-socket WebSocket client (masked frames, fragmentation, close codes).
- ChunkedUpload: a raw-socket POST with Transfer-Encoding: chunked, written piece by piece.

The binary comes from argv[1] (as CTest passes it), or $LITEGATE_BIN, or ./build/gateway/litegate.
"""

import base64
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))


def binary_path():
    path = os.environ.get("LITEGATE_BIN") or os.path.join(REPO, "build", "gateway", "litegate")
    return os.path.abspath(path)


def main():
    """unittest.main() that takes the binary path as the first argument (CTest passes it)."""
    if len(sys.argv) > 1 and not sys.argv[1].startswith("-"):
        os.environ["LITEGATE_BIN"] = sys.argv.pop(1)
    unittest.main(verbosity=2)


# An ssl.SSLContext, or None: when set (test_tls.py), every client below speaks TLS to the gateway.
TLS_CONTEXT = None


def connect(port, timeout, src=None):
    """A client socket to the gateway on loopback (from address @src if given): TCP, wrapped in TLS
    when TLS_CONTEXT is set."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                 source_address=(src, 0) if src else None)
    if TLS_CONTEXT is not None:
        try:
            s = TLS_CONTEXT.wrap_socket(s, server_hostname="127.0.0.1")
        except Exception:
            s.close()
            raise
    return s


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Short timers so the suite is fast: heartbeat and stall detection in seconds, not minutes.
BASE_CONFIG = {
    "log_level": "warn",
    "heartbeat_s": 1,
    "sse_retry_ms": 500,
    "parents": [
        {"name": "chatbot"},
        {"name": "agent"},
        {"name": "short", "max_retained": 5},
        {"name": "tiny", "max_message_bytes": 1024},
    ],
    "cors_origins": ["http://allowed.example"],
    "timeouts": {"stall_s": 3, "shutdown_grace_s": 5, "keepalive_s": 30, "body_s": 30},
}


def deep_merge(base, extra):
    out = dict(base)
    for k, v in (extra or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


class Gateway:
    """One litegate process; its data dir survives restarts until close()."""

    def __init__(self, config=None, static_files=None):
        self.default_headers = {}  # sent with every http() request (e.g. a bearer token)
        self.tmp = tempfile.mkdtemp(prefix="litegate-it-")
        self.data_dir = os.path.join(self.tmp, "data")
        self.static_dir = os.path.join(self.tmp, "static")
        os.makedirs(self.static_dir)
        for name, content in (static_files or {"index.html": "<!doctype html><title>t</title>ok\n"}).items():
            with open(os.path.join(self.static_dir, name), "w") as f:
                f.write(content)
        self.port = free_port()
        self.config = deep_merge(BASE_CONFIG, config)
        self.config.setdefault("listen", "127.0.0.1:%d" % self.port)
        self.config.setdefault("data_dir", self.data_dir)
        self.config.setdefault("static_root", self.static_dir)
        self.config_path = os.path.join(self.tmp, "litegate.json")
        with open(self.config_path, "w") as f:
            json.dump(self.config, f)
        self.log_path = os.path.join(self.tmp, "litegate.log")
        self.proc = None
        self.starts = 0

    # -- process --------------------------------------------------------------------------------
    def start(self, timeout=15):
        self.starts += 1
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([binary_path(), "--config", self.config_path],
                                     stdout=log, stderr=subprocess.STDOUT, cwd=self.tmp)
        log.close()
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("litegate exited with %s during startup:\n%s"
                                     % (self.proc.returncode, self.log()))
            try:
                status, _, _ = self.http("GET", "/healthz", timeout=1)
                if status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError("litegate did not become healthy:\n" + self.log())

    def stop(self, sig=signal.SIGTERM, timeout=20):
        """Send @sig and wait; returns the exit status."""
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("litegate did not exit after signal %d:\n%s" % (sig, self.log()))

    def kill(self):
        return self.stop(signal.SIGKILL)

    def restart(self):
        self.stop()
        return self.start()

    def close(self):
        """Stop with SIGTERM and check the run was clean: exit status 0 and no sanitizer report
        in the log (tests also run under ASan+UBSan), then remove the temporary directory."""
        rc = None
        try:
            if self.proc and self.proc.poll() is None:
                rc = self.stop(signal.SIGTERM)
            log = self.log()
        finally:
            if self.proc and self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            shutil.rmtree(self.tmp, ignore_errors=True)
        if rc not in (None, 0):
            raise AssertionError("litegate exited with %s at SIGTERM:\n%s" % (rc, log))
        for needle in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            if needle in log:
                raise AssertionError("sanitizer report in the litegate log:\n" + log)

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")[-8000:]
        except OSError:
            return ""

    # -- HTTP -------------------------------------------------------------------------------------
    def http(self, method, path, body=None, headers=None, timeout=10):
        """One request on a fresh connection. Returns (status, headers dict lowercased, body)
        with body decoded from JSON when the response says application/json."""
        if TLS_CONTEXT is not None:
            conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout, context=TLS_CONTEXT)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            h = dict(self.default_headers)
            h.update(headers or {})
            if isinstance(body, (dict, list)):
                body = json.dumps(body).encode()
                h.setdefault("Content-Type", "application/json")
            elif isinstance(body, str):
                body = body.encode()
            conn.request(method, path, body=body, headers=h)
            resp = conn.getresponse()
            data = resp.read()
            hdrs = {k.lower(): v for k, v in resp.getheaders()}
            if hdrs.get("content-type", "").startswith("application/json") and data:
                data = json.loads(data)
            return resp.status, hdrs, data
        finally:
            conn.close()

    def publish(self, topic, msgs, **kw):
        """POST one message (dict) or a batch (list); asserts 200 and returns the reply."""
        status, _, body = self.http("POST", "/v1/topics/%s/messages" % topic, msgs, **kw)
        if status != 200:
            raise AssertionError("publish to %s: %s %r" % (topic, status, body))
        return body

    def history(self, topic, frm=0, limit=1000):
        out = []
        while True:
            status, _, body = self.http("GET", "/v1/topics/%s/messages?from=%d&limit=%d" % (topic, frm, limit))
            if status != 200:
                raise AssertionError("history %s: %s %r" % (topic, status, body))
            out.extend(body["messages"])
            if not body["messages"] or body["next"] >= body["next_offset"]:
                return out
            frm = body["next"]

    def sse(self, path, headers=None, timeout=10):
        return SSEClient(self.port, path, headers, timeout)

    def ws(self, path="/v1/ws", headers=None, timeout=10):
        return WSClient(self.port, path, headers, timeout)


class TestCase(unittest.TestCase):
    """A test with a gateway started per test (override CONFIG for special settings)."""

    CONFIG = None

    def setUp(self):
        self.gw = Gateway(self.CONFIG)
        self.addCleanup(self.gw.close)
        self.addCleanup(self._dump_log_on_failure)
        self.gw.start()

    def _dump_log_on_failure(self):
        # Print the gateway's log when a test failed, so CI output explains itself. Asked of the
        # result: a cleanup runs in a part of its own, whose _outcome.success starts True again.
        result = getattr(getattr(self, "_outcome", None), "result", None)
        if result is not None and any(t is self for t, _ in result.errors + result.failures):
            sys.stderr.write("\n--- litegate log (%s) ---\n%s\n" % (self.id(), self.gw.log()))

    def assert_status(self, resp, status, code=None):
        st, hdrs, body = resp
        self.assertEqual(st, status, "expected %d, got %d: %r" % (status, st, body))
        if code is not None:
            self.assertIsInstance(body, dict, body)
            self.assertEqual(body["error"]["code"], code, body)
            self.assertTrue(body["error"]["message"], body)
        return resp


# ---- Raw HTTP over a socket ---------------------------------------------------------------------

def read_response_head(sock, buf=b""):
    """Read until the end of the response headers. Returns (status, headers, rest-of-buffer)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed before the response headers: %r" % buf)
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, rest


def read_http_response(sock, buf=b""):
    """A whole response with Content-Length (1xx interim responses skipped)."""
    while True:
        status, headers, rest = read_response_head(sock, buf)
        if 100 <= status < 200:
            buf = rest
            continue
        break
    n = int(headers.get("content-length", "0"))
    while len(rest) < n:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    body = rest[:n]
    if headers.get("content-type", "").startswith("application/json") and body:
        body = json.loads(body)
    return status, headers, body


class SSEClient:
    """A minimal EventSource over a raw socket: events are dicts with id, event, data (the raw
    data string), plus 'comment' entries for ':' lines and 'retry' when a retry field came."""

    def __init__(self, port, path, headers=None, timeout=10):
        self.sock = connect(port, timeout)
        req = "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAccept: text/event-stream\r\n" % (path, port)
        for k, v in (headers or {}).items():
            req += "%s: %s\r\n" % (k, v)
        self.sock.sendall((req + "\r\n").encode())
        self.status, self.headers, self.buf = read_response_head(self.sock)
        self.body = None
        if self.status != 200:
            n = int(self.headers.get("content-length", "0"))
            while len(self.buf) < n:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                self.buf += chunk
            self.body = json.loads(self.buf[:n]) if n else None
        self.closed = False
        self.pending = []
        self.retry = None
        self.comments = 0

    def _parse(self):
        while True:
            sep = self.buf.find(b"\n\n")
            if sep < 0:
                return
            block, self.buf = self.buf[:sep], self.buf[sep + 2:]
            ev = {"data": []}
            for line in block.decode("utf-8").split("\n"):
                if line.startswith(":"):
                    self.comments += 1
                    continue
                field, _, value = line.partition(":")
                if value.startswith(" "):
                    value = value[1:]
                if field == "data":
                    ev["data"].append(value)
                elif field == "retry":
                    self.retry = int(value)
                elif field in ("id", "event"):
                    ev[field] = value
            if "id" in ev or ev["data"] or "event" in ev:
                ev["data"] = "\n".join(ev["data"])
                self.pending.append(ev)

    def next(self, timeout=10):
        """The next event, or raise TimeoutError / ConnectionError."""
        deadline = time.time() + timeout
        while not self.pending:
            self._parse()
            if self.pending:
                break
            left = deadline - time.time()
            if left <= 0:
                raise TimeoutError("no SSE event within %.1fs" % timeout)
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise TimeoutError("no SSE event within %.1fs" % timeout)
            if not chunk:
                self.closed = True
                self._parse()
                if self.pending:
                    break
                raise ConnectionError("SSE stream closed")
            self.buf += chunk
        return self.pending.pop(0)

    def messages(self, n, timeout=10):
        """The next @n events that carry an id and are not gap/reset; returns (offset, event, data)."""
        out = []
        deadline = time.time() + timeout
        while len(out) < n:
            ev = self.next(max(0.01, deadline - time.time()))
            if ev.get("event") in ("gap", "reset"):
                continue
            out.append((int(ev["id"]), ev.get("event", "message"), json.loads(ev["data"])))
        return out

    def wait_closed(self, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.time()))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                return True
            if not chunk:
                return True
            self.buf += chunk
        return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class WSClosed(Exception):
    def __init__(self, code, reason):
        super().__init__("closed %s %r" % (code, reason))
        self.code = code
        self.reason = reason


class WSClient:
    """A small RFC 6455 client: masked frames, optional fragmentation, JSON helpers."""

    def __init__(self, port, path="/v1/ws", headers=None, timeout=10):
        self.sock = connect(port, timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n" % (path, port, key))
        for k, v in (headers or {}).items():
            req += "%s: %s\r\n" % (k, v)
        try:
            self.sock.sendall((req + "\r\n").encode())
            self.status, self.headers, self.buf = read_response_head(self.sock)
            if self.status != 101:
                raise ConnectionError("upgrade refused: %d" % self.status)
        except Exception:
            self.sock.close()
            raise
        self.pending = []

    # frames
    def send_frame(self, opcode, payload, fin=True):
        b0 = (0x80 if fin else 0) | opcode
        n = len(payload)
        if n < 126:
            hdr = bytes([b0, 0x80 | n])
        elif n < 65536:
            hdr = bytes([b0, 0x80 | 126]) + n.to_bytes(2, "big")
        else:
            hdr = bytes([b0, 0x80 | 127]) + n.to_bytes(8, "big")
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(hdr + mask + masked)

    def send_text(self, text, fragments=1):
        data = text.encode() if isinstance(text, str) else text
        if fragments <= 1:
            self.send_frame(0x1, data)
            return
        size = max(1, -(-len(data) // fragments))
        parts = [data[i:i + size] for i in range(0, len(data), size)]
        for i, part in enumerate(parts):
            self.send_frame(0x1 if i == 0 else 0x0, part, fin=(i == len(parts) - 1))
            time.sleep(0.01)

    def send(self, obj, fragments=1):
        self.send_text(json.dumps(obj), fragments)

    def _read_exact(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.time()
            if left <= 0:
                raise TimeoutError("no WebSocket frame in time")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise TimeoutError("no WebSocket frame in time")
            if not chunk:
                raise ConnectionError("WebSocket connection closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv_frame(self, timeout=10):
        deadline = time.time() + timeout
        b0, b1 = self._read_exact(2, deadline)
        n = b1 & 0x7F
        if n == 126:
            n = int.from_bytes(self._read_exact(2, deadline), "big")
        elif n == 127:
            n = int.from_bytes(self._read_exact(8, deadline), "big")
        if b1 & 0x80:
            raise AssertionError("server frames must not be masked")
        return b0 & 0x0F, bool(b0 & 0x80), self._read_exact(n, deadline)

    def recv(self, timeout=10):
        """The next JSON message; answers pings, raises WSClosed on a close frame."""
        deadline = time.time() + timeout
        while True:
            op, fin, payload = self.recv_frame(max(0.01, deadline - time.time()))
            if op == 0x9:
                self.send_frame(0xA, payload)
                continue
            if op == 0xA:
                continue
            if op == 0x8:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
                raise WSClosed(code, payload[2:].decode("utf-8", "replace"))
            if op == 0x1:
                if not fin:
                    raise AssertionError("server fragmented a message")
                return json.loads(payload)
            raise AssertionError("unexpected opcode %d" % op)

    def recv_until(self, pred, timeout=10):
        """Messages until one matches @pred; returns (match, skipped)."""
        deadline = time.time() + timeout
        skipped = []
        while True:
            m = self.recv(max(0.01, deadline - time.time()))
            if pred(m):
                return m, skipped
            skipped.append(m)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class ChunkedUpload:
    """POST with Transfer-Encoding: chunked, written chunk by chunk."""

    def __init__(self, port, path, content_type="application/x-ndjson", timeout=10, extra_headers=None):
        self.sock = connect(port, timeout)
        req = ("POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: %s\r\n"
               "Transfer-Encoding: chunked\r\n" % (path, port, content_type))
        for k, v in (extra_headers or {}).items():
            req += "%s: %s\r\n" % (k, v)
        self.sock.sendall((req + "\r\n").encode())

    def send(self, data):
        data = data.encode() if isinstance(data, str) else data
        self.sock.sendall(b"%x\r\n%s\r\n" % (len(data), data))

    def send_raw(self, raw):
        self.sock.sendall(raw.encode() if isinstance(raw, str) else raw)

    def finish(self, timeout=10):
        self.sock.sendall(b"0\r\n\r\n")
        return self.response(timeout)

    def response(self, timeout=10):
        self.sock.settimeout(timeout)
        return read_http_response(self.sock)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
