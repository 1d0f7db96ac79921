"""TLS ("tls": {"cert", "key"}) against the real binary: HTTPS and WSS on the listening port, with a
self-signed certificate made at run time by the openssl CLI and Python's ssl module as the client.

Every client of the harness speaks TLS here (harness.TLS_CONTEXT): publishing, history, SSE,
WebSocket and a chunked NDJSON upload all run over it, with authorization on top in one test. The
request-head limits of test_limits.py (Heads, KeptAlive) and the WebSocket frame checks of
test_badinput.py run again here, unchanged, over TLS (over_tls).
"""

import json
import os
import random
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import unittest
import warnings

import h2raw
import harness
import test_badinput
import test_limits
from harness import Gateway, TestCase, WSClosed

CERT_DIR = None


def make_cert(directory, name="gw", cn="localhost"):
    cert = os.path.join(directory, name + ".crt")
    key = os.path.join(directory, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-days", "2", "-subj", "/CN=" + cn,
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert, key


def setUpModule():
    global CERT_DIR
    if not shutil.which("openssl"):
        raise unittest.SkipTest("the openssl CLI is not installed")
    CERT_DIR = tempfile.mkdtemp(prefix="litegate-tls-")
    cert, _ = make_cert(CERT_DIR)
    ctx = ssl.create_default_context(cafile=cert)  # verifies the chain and the IP in the SAN
    # The harness's clients speak HTTP/1.1: they offer only that, as an HTTP/1.1-only client does
    # (h2 is on by default; the Http2 cases speak it with curl and a raw client).
    ctx.set_alpn_protocols(["http/1.1"])
    harness.TLS_CONTEXT = ctx


def tearDownModule():
    harness.TLS_CONTEXT = None
    if CERT_DIR:
        shutil.rmtree(CERT_DIR, ignore_errors=True)


def tls_config():
    return {"tls": {"cert": os.path.join(CERT_DIR, "gw.crt"), "key": os.path.join(CERT_DIR, "gw.key")}}


class Https(TestCase):
    def setUp(self):
        self.CONFIG = tls_config()
        super().setUp()

    def test_publish_and_history_over_https(self):
        body = self.gw.publish("chatbot/t", [{"data": i} for i in range(3)])
        self.assertEqual((body["first_offset"], body["last_offset"]), (0, 2))
        self.assertEqual([m["data"] for m in self.gw.history("chatbot/t")], [0, 1, 2])
        st, hdrs, _ = self.gw.http("GET", "/healthz")
        self.assertEqual(st, 200)
        self.assertIn("max-age=", hdrs.get("strict-transport-security", ""))

    def test_alpn_offers_h2_then_http11_and_tls12_is_the_floor(self):
        h2 = ssl.create_default_context(cafile=os.path.join(CERT_DIR, "gw.crt"))
        h2.set_alpn_protocols(["h2", "http/1.1"])
        with h2.wrap_socket(socket.create_connection(("127.0.0.1", self.gw.port), timeout=5),
                            server_hostname="127.0.0.1") as s:
            self.assertEqual(s.selected_alpn_protocol(), "h2")  # the default
        s = harness.connect(self.gw.port, 5)
        try:
            self.assertEqual(s.selected_alpn_protocol(), "http/1.1")
            self.assertIn(s.version(), ("TLSv1.2", "TLSv1.3"))
            # keep-alive over one TLS connection
            for i in range(3):
                body = json.dumps({"data": i}).encode()
                s.sendall(b"POST /v1/topics/chatbot/ka/messages HTTP/1.1\r\nHost: x\r\n"
                          b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                st, _, reply = harness.read_http_response(s)
                self.assertEqual((st, reply["first_offset"]), (200, i))
        finally:
            s.close()
        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old.check_hostname = False
        old.verify_mode = ssl.CERT_NONE
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                old.minimum_version = ssl.TLSVersion.TLSv1
                old.maximum_version = ssl.TLSVersion.TLSv1_1
            old.set_ciphers("ALL:@SECLEVEL=0")
        except (ValueError, ssl.SSLError):
            return  # this Python/OpenSSL cannot even offer TLS 1.1
        raw = socket.create_connection(("127.0.0.1", self.gw.port), timeout=5)
        try:
            with self.assertRaises((ssl.SSLError, OSError)):
                old.wrap_socket(raw, server_hostname="127.0.0.1").close()
        finally:
            raw.close()

    def test_sse_over_tls(self):
        self.gw.publish("chatbot/s", {"event": "token", "data": "a"})
        sse = self.gw.sse("/v1/topics/chatbot/s/events")
        try:
            self.assertEqual(sse.status, 200)
            self.assertEqual(sse.messages(1), [(0, "token", "a")])
            self.gw.publish("chatbot/s", {"event": "token", "data": "b"})
            self.assertEqual(sse.messages(1), [(1, "token", "b")])
            ev = None
            deadline = time.time() + 5
            while sse.comments == 0 and time.time() < deadline:  # heartbeats (heartbeat_s 1)
                try:
                    ev = sse.next(timeout=0.5)
                except TimeoutError:
                    pass
            self.assertGreater(sse.comments, 0, ev)
        finally:
            sse.close()
        # The stream's close is noticed; the gateway carries on.
        time.sleep(0.3)
        self.assertEqual(self.gw.http("GET", "/healthz")[0], 200)

    def test_wss(self):
        ws = self.gw.ws()
        try:
            ws.send({"op": "subscribe", "topic": "chatbot/w", "req": 1})
            self.assertEqual(ws.recv()["type"], "subscribed")
            ws.send({"op": "publish", "topic": "chatbot/w", "data": "x" * 70000, "req": 2}, fragments=3)
            got = {}
            while len(got) < 2:
                m = ws.recv()
                got[m["type"]] = m
            self.assertEqual(got["ack"]["offset"], 0)
            self.assertEqual(len(got["message"]["data"]), 70000)
            # A big frame out: many messages in one write, over TLS.
            self.gw.publish("chatbot/w", [{"data": "y" * 1000} for _ in range(300)])
            n = 0
            while n < 300:
                if ws.recv()["type"] == "message":
                    n += 1
        finally:
            ws.close()

    def test_chunked_ndjson_over_tls(self):
        up = harness.ChunkedUpload(self.gw.port, "/v1/topics/agent/nd/messages")
        try:
            for i in range(5):
                up.send(json.dumps({"event": "token", "data": i}) + "\n")
            st, _, body = up.finish()
            self.assertEqual((st, body["count"]), (200, 5))
        finally:
            up.close()
        self.assertEqual([m["data"] for m in self.gw.history("agent/nd")], list(range(5)))

    def test_plain_http_and_broken_handshakes_are_dropped(self):
        # Plain HTTP on the TLS port gets no answer, only a closed connection.
        s = socket.create_connection(("127.0.0.1", self.gw.port), timeout=5)
        try:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            try:
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except (ConnectionResetError, socket.timeout):
                pass
            self.assertNotIn(b"200 OK", data)
        finally:
            s.close()
        # A client that sends half a ClientHello and vanishes, and one that sends garbage.
        for junk in (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", os.urandom(300)):
            s = socket.create_connection(("127.0.0.1", self.gw.port), timeout=5)
            s.sendall(junk)
            s.close()
        # A client that does not trust the certificate gives up; the gateway does not mind.
        strict = ssl.create_default_context()
        raw = socket.create_connection(("127.0.0.1", self.gw.port), timeout=5)
        with self.assertRaises(ssl.SSLError):
            strict.wrap_socket(raw, server_hostname="127.0.0.1")
        raw.close()
        self.assertEqual(self.gw.http("GET", "/healthz")[0], 200)
        self.gw.publish("chatbot/after", {"data": 1})


def over_tls(base, *names):
    """@base's tests (only @names, if given) against a gateway with TLS on: the same assertions,
    every client speaking TLS."""
    class OverTls(base):
        def setUp(self):
            self.CONFIG = dict(base.CONFIG, **tls_config())
            super().setUp()
    for attr in dir(base):
        if attr.startswith("test") and names and attr not in names:
            setattr(OverTls, attr, None)  # not callable: unittest does not collect it
    OverTls.__name__ = OverTls.__qualname__ = base.__name__ + "OverTls"
    return OverTls


HeadsOverTls = over_tls(test_limits.Heads)
KeptAliveOverTls = over_tls(test_limits.KeptAlive)
WebSocketFramesOverTls = over_tls(test_badinput.BadInput, "test_unmasked_client_frames_close_with_1002",
                                  "test_websocket_garbage_and_oversized_frames")


class TlsHeads(test_limits.LimitsCase):
    """What only TLS has: a handshake to wait for, and bytes OpenSSL decrypted ahead of lws."""
    CONFIG = {"limits": {"max_header_bytes": 2048}, "timeouts": {"header_s": 1, "keepalive_s": 3}}

    def setUp(self):
        self.CONFIG = dict(TlsHeads.CONFIG, **tls_config())
        super().setUp()

    def test_a_handshake_that_never_ends_is_closed_and_counted(self):
        for hello in (b"", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"):
            s = socket.create_connection(("127.0.0.1", self.gw.port), timeout=5)
            t0 = time.time()
            try:
                s.sendall(hello)
                self.assertEqual(test_limits.read_all(s, 5), b"")
            finally:
                s.close()
            self.assertLess(time.time() - t0, 3)  # header_s 1, and lws's 1 s tick
        self.assertEqual(self.metric("litegate_limit_exceeded_total", "header_timeout"), 2)

    def test_pipelined_requests_are_served_in_order_behind_a_publish(self):
        s = harness.connect(self.gw.port, 10)
        try:
            body = json.dumps({"data": "p"}).encode()
            post = (b"POST /v1/topics/chatbot/tp/messages HTTP/1.1\r\nHost: x\r\n"
                    b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            get = b"GET /v1/topics/chatbot/tp HTTP/1.1\r\nHost: x\r\n\r\n"
            # One write, so OpenSSL decrypts all of it at once: lws gets each request after the
            # previous one's reply, the publish's durable ack included.
            s.sendall(post + get + post + get + test_limits.KeptAlive.GET)
            got = test_limits.responses(s, 5)
            self.assertEqual([r[0] for r in got], [200] * 5)
            self.assertEqual((got[0][2]["first_offset"], got[1][2]["next_offset"]), (0, 1))
            self.assertEqual((got[2][2]["first_offset"], got[3][2]["next_offset"]), (1, 2))
            # A bad head pipelined behind good ones is refused in its turn.
            s.sendall(get + b"GET /healthz HTTP/1.1\r\nHost : x\r\n\r\n")
            got = test_limits.responses(s, 2)
            self.assertEqual([r[0] for r in got], [200, 400])
            self.assertEqual(test_limits.read_all(s, 3), b"")
        finally:
            s.close()

    def test_frames_sent_with_the_upgrade_are_read(self):
        s = harness.connect(self.gw.port, 10)
        try:
            s.sendall(b"GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n" +
                      test_badinput.ws_frame(1, b'{"op":"ping","req":7}'))
            data = b""
            while b'"pong"' not in data:
                chunk = s.recv(65536)
                self.assertTrue(chunk, data)
                data += chunk
            self.assertTrue(data.startswith(b"HTTP/1.1 101 "), data[:60])
            self.assertIn(b'"req":7', data)
        finally:
            s.close()


class TlsConnectionLimits(test_limits.LimitsCase):
    """A TLS connection over a connection limit gets its 429 (or an h2 GOAWAY) after the handshake."""
    CONFIG = {"limits": {"max_connections_per_ip": 2, "per_ip_loopback": True}}

    def setUp(self):
        self.CONFIG = dict(TlsConnectionLimits.CONFIG, **tls_config())
        super().setUp()

    def test_over_the_per_address_limit(self):
        # Until the setup's own connections are gone, only the probe (from 127.0.0.9) is open.
        deadline = time.time() + 5
        while self.metric("litegate_connections") > 1 and time.time() < deadline:
            time.sleep(0.1)
        held = [harness.connect(self.gw.port, 5) for _ in range(2)]
        try:
            for s in held:  # both admitted and served
                s.sendall(test_limits.KeptAlive.GET)
                self.assertEqual(harness.read_http_response(s)[0], 200)
            st, hdrs, body = test_limits.parse(test_limits.raw(self.gw.port, b""))
            self.assertEqual((st, body["error"]["code"], hdrs["retry-after"]), (429, "too_many_connections", "1"))
            h2 = h2raw.H2Conn(self.gw.port, os.path.join(CERT_DIR, "gw.crt"))
            try:
                h2.pump(lambda: False, 5)
            except (h2raw.GoAway, ConnectionError):
                pass
            finally:
                h2.close()
            self.assertIsNotNone(h2.goaway, "no GOAWAY")
            _, code, debug = h2.goaway
            self.assertEqual(code, 0xb)  # ENHANCE_YOUR_CALM
            self.assertIn(b"max_connections_per_ip", debug)
        finally:
            for s in held:
                s.close()
        self.assertEqual(self.metric("litegate_limit_exceeded_total", "max_connections_per_ip"), 2)
        # The refused connections held no count: two connections from the address work again.
        time.sleep(0.5)
        again = [harness.connect(self.gw.port, 5) for _ in range(2)]
        try:
            for s in again:
                s.sendall(test_limits.KeptAlive.GET)
                self.assertEqual(harness.read_http_response(s)[0], 200)
        finally:
            for s in again:
                s.close()


class HttpsWithAuth(TestCase):
    def setUp(self):
        secret = "tls-secret-0123456789abcdef0123456789"
        self.CONFIG = dict(tls_config(), auth={"mode": "jwt", "hs256_secrets": [secret]})
        super().setUp()

    def test_bearer_over_https_and_wss(self):
        self.assertEqual(self.gw.http("POST", "/v1/topics/chatbot/a/messages", {"data": 1})[0], 401)
        r = subprocess.run([harness.binary_path(), "token", "--config", self.gw.config_path,
                            "--publish", "chatbot/*", "--subscribe", "chatbot/*"],
                           capture_output=True, text=True, check=True)
        tok = r.stdout.strip()
        self.gw.publish("chatbot/a", {"data": 1}, headers={"Authorization": "Bearer " + tok})
        ws = self.gw.ws("/v1/ws?access_token=" + tok)
        try:
            ws.send({"op": "subscribe", "topic": "chatbot/a", "req": 1})
            m, _ = ws.recv_until(lambda m: m["type"] == "message")
            self.assertEqual(m["data"], 1)
        finally:
            ws.close()


class BadTlsConfig(unittest.TestCase):
    def run_config(self, tls):
        gw = Gateway({"tls": tls})
        try:
            r = subprocess.run([harness.binary_path(), "--config", gw.config_path], capture_output=True,
                               text=True, timeout=10, cwd=gw.tmp)
            return r.returncode, r.stderr
        finally:
            shutil.rmtree(gw.tmp, ignore_errors=True)

    def test_unusable_cert_or_key_exits_2(self):
        other_cert, other_key = make_cert(CERT_DIR, "other")
        cert, key = os.path.join(CERT_DIR, "gw.crt"), os.path.join(CERT_DIR, "gw.key")
        cases = [({"cert": "/nonexistent.crt", "key": key}, "tls.cert"),
                 ({"cert": cert, "key": "/nonexistent.key"}, "tls.key"),
                 ({"cert": cert, "key": other_key}, "does not match"),
                 ({"cert": key, "key": key}, "tls.cert"),
                 ({"cert": cert}, "needs both")]
        for tls, needle in cases:
            with self.subTest(needle):
                rc, err = self.run_config(tls)
                self.assertEqual(rc, 2, err)
                self.assertIn(needle, err)


def curl_available():
    """Debian's curl, built with nghttp2 (HTTP/2)."""
    if not shutil.which("curl"):
        return False
    out = subprocess.run(["curl", "--version"], capture_output=True, text=True).stdout
    return "HTTP2" in out


@unittest.skipUnless(curl_available(), "curl with HTTP/2 (nghttp2) is not installed")
class Http2(TestCase):
    """TLS's default: h2 by ALPN, every HTTP API on h2 streams, spoken by curl --http2 and h2raw.py.

    The harness's own clients speak HTTP/1.1 only, so they offer only http/1.1 (and still get it:
    ALPN keeps HTTP/1.1 on the same port)."""

    def setUp(self):
        self.CONFIG = tls_config()  # h2 is the default
        self.CONFIG["limits"] = {"max_body_bytes": 65536}
        super().setUp()
        self.base = "https://127.0.0.1:%d" % self.gw.port

    def curl(self, *args, data=None, timeout=20):
        """Run curl --http2 (status, http_version and num_connects of each transfer after a marker)."""
        cmd = ["curl", "-sS", "--http2", "--cacert", os.path.join(CERT_DIR, "gw.crt"),
               "-w", "\n@@%{http_code} %{http_version} %{num_connects}\n"] + list(args)
        r = subprocess.run(cmd, input=data, capture_output=True, timeout=timeout)
        return r.returncode, r.stdout.decode(), r.stderr.decode()

    def request(self, *args, data=None):
        rc, out, err = self.curl(*args, data=data)
        self.assertEqual(rc, 0, err)
        body, _, tail = out.rpartition("\n@@")
        code, version, _ = tail.split()
        self.assertEqual(version, "2", "ALPN did not pick h2")
        return int(code), body.strip()

    def post_json(self, path, obj, *extra):
        return self.request("-H", "content-type: application/json", "--data-binary", json.dumps(obj),
                            *extra, self.base + path)

    def test_alpn_picks_h2_and_http11_stays_available(self):
        code, body = self.request(self.base + "/healthz")
        self.assertEqual((code, json.loads(body)), (200, {"status": "ok"}))
        s = harness.connect(self.gw.port, 5)
        try:
            self.assertEqual(s.selected_alpn_protocol(), "http/1.1")
        finally:
            s.close()
        st, _, body = self.gw.http("GET", "/healthz")
        self.assertEqual(st, 200)

    def test_publish_history_and_sse_resume_with_exact_offsets(self):
        code, body = self.post_json("/v1/topics/chatbot/h/messages", {"event": "token", "data": "a"})
        self.assertEqual((code, json.loads(body)["first_offset"]), (200, 0))
        code, body = self.post_json("/v1/topics/chatbot/h/messages", [{"data": i} for i in range(1, 4)])
        self.assertEqual((code, json.loads(body)["first_offset"], json.loads(body)["last_offset"]), (200, 1, 3))
        code, body = self.request("-H", "content-type: text/plain", "--data-binary", "plain words",
                                  self.base + "/v1/topics/chatbot/h/messages")
        self.assertEqual((code, json.loads(body)["first_offset"]), (200, 4))
        code, body = self.request(self.base + "/v1/topics/chatbot/h/messages?from=1&limit=2")
        hist = json.loads(body)
        self.assertEqual(([m["offset"] for m in hist["messages"]], hist["next"]), ([1, 2], 3))
        code, body = self.request(self.base + "/v1/topics/chatbot/h")
        self.assertEqual((code, json.loads(body)["next_offset"]), (200, 5))
        # Resume after offset 2, as EventSource does: the Last-Event-ID header (which lws 4.1.6
        # drops on h2: the gateway's frame tap reads it), and the query parameter.
        for args in (("-H", "Last-Event-ID: 2", self.base + "/v1/topics/chatbot/h/events"),
                     (self.base + "/v1/topics/chatbot/h/events?last_event_id=2",)):
            rc, out, err = self.curl("-N", "--max-time", "2", *args)
            self.assertEqual(rc, 28, err)  # the stream was open until curl's timer
            ids = [int(l[4:]) for l in out.splitlines() if l.startswith("id: ")]
            self.assertEqual(ids, [3, 4])
            self.assertIn("data: \"plain words\"", out)

    def test_idempotency_key_and_expected_offset_reach_the_gateway(self):
        path = "/v1/topics/chatbot/idem/messages"
        code, first = self.post_json(path, {"data": "once"}, "-H", "Idempotency-Key: req-1")
        code2, again = self.post_json(path, {"data": "once"}, "-H", "Idempotency-Key: req-1")
        self.assertEqual((code, code2), (200, 200))
        self.assertEqual(json.loads(again)["first_offset"], json.loads(first)["first_offset"])
        self.assertTrue(json.loads(again).get("duplicate"), again)
        self.assertEqual(len(self.gw.history("chatbot/idem")), 1)
        code, body = self.post_json(path, {"data": "x"}, "-H", "Litegate-Expected-Offset: 0")
        self.assertEqual(code, 409, body)
        code, body = self.post_json(path, {"data": "x"}, "-H", "Litegate-Expected-Offset: 1")
        self.assertEqual((code, json.loads(body)["first_offset"]), (200, 1))
        code, body = self.post_json(path, {"data": "x"}, "-H", "Idempotency-Key: bad key!")
        self.assertEqual((code, json.loads(body)["error"]["code"]), (400, "bad_request"))

    def test_many_event_streams_and_publishes_on_one_connection(self):
        n = 12
        topics = ["chatbot/m%d" % i for i in range(n)]
        for i, t in enumerate(topics):
            self.gw.publish(t, [{"data": "before-%d" % i}])
        outs = [os.path.join(self.gw.tmp, "sse%d.out" % i) for i in range(n)]
        args = ["--parallel", "--parallel-max", str(n + 1), "-N", "--max-time", "6"]
        for t, o in zip(topics, outs):
            args += ["-o", o, self.base + "/v1/topics/%s/events?from=0" % t]
        cmd = ["curl", "-sS", "--http2", "--cacert", os.path.join(CERT_DIR, "gw.crt"),
               "-w", "%{num_connects} %{http_version}\n"] + args
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            time.sleep(1.5)
            for k in range(1, 4):  # publishes while the streams are open
                for i, t in enumerate(topics):
                    self.gw.publish(t, [{"data": "live-%d-%d" % (i, k)}])
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        lines = out.decode().split()
        self.assertEqual(lines[1::2], ["2"] * n)
        self.assertEqual(sum(int(c) for c in lines[0::2]), 1, "the streams did not share one connection")
        for i, o in enumerate(outs):
            with open(o) as f:
                text = f.read()
            ids = [int(l[4:]) for l in text.splitlines() if l.startswith("id: ")]
            self.assertEqual(ids, [0, 1, 2, 3], text)
            self.assertIn('"live-%d-3"' % i, text)
        st, _, body = self.gw.http("GET", "/metrics")
        self.assertIn("litegate_sse_connections 0", body.decode())

    def test_ndjson_body_with_and_without_a_content_length(self):
        lines = "".join(json.dumps({"event": "token", "data": "t%d" % i}) + "\n" for i in range(200))
        # With a length (curl reads the file first): every line appended, in order.
        path = os.path.join(self.gw.tmp, "body.ndjson")
        with open(path, "w") as f:
            f.write(lines)
        code, body = self.request("-H", "content-type: application/x-ndjson", "--data-binary", "@" + path,
                                  self.base + "/v1/topics/chatbot/nd/messages")
        self.assertEqual((code, json.loads(body)["count"]), (200, 200), body)
        # Streamed from stdin: no length. lws 4.1.6 never reports such a body's end on h2; the
        # frame tap sees the END_STREAM, so the publish is answered like any other.
        code, body = self.request("-X", "POST", "-H", "content-type: application/x-ndjson", "-T", "-",
                                  self.base + "/v1/topics/chatbot/nd/messages", data=lines.encode())
        self.assertEqual((code, json.loads(body)["count"], json.loads(body)["first_offset"]), (200, 200, 200),
                         body)
        # A JSON body without a length too, and an empty one (its END_STREAM on an empty DATA frame).
        code, body = self.request("-X", "POST", "-H", "content-type: application/json", "-T", "-",
                                  self.base + "/v1/topics/chatbot/nd/messages", data=b'{"data":"j"}')
        self.assertEqual((code, json.loads(body)["first_offset"]), (200, 400), body)
        code, body = self.request("-X", "POST", "-H", "content-type: application/json", "-T", "-",
                                  self.base + "/v1/topics/chatbot/nd/messages", data=b"")
        self.assertEqual(code, 400, body)
        self.assertEqual(self.gw.history("chatbot/nd")[-1]["offset"], 400)

    def metric(self, name):
        st, _, body = self.gw.http("GET", "/metrics")
        m = re.search("^" + re.escape(name) + r" (\d+)$", body.decode(), re.M)
        return int(m.group(1))

    def test_a_stream_the_client_resets_is_closed_and_its_neighbours_go_on(self):
        self.gw.publish("chatbot/rst-a", {"data": "a"})
        self.gw.publish("chatbot/rst-b", {"data": "b"})
        c = self.h2()
        a = c.request("GET", "/v1/topics/chatbot/rst-a/events?from=0")
        b = c.request("GET", "/v1/topics/chatbot/rst-b/events?from=0")
        c.data_until(a, b"id: 0")
        c.data_until(b, b"id: 0")
        self.assertEqual(self.metric("litegate_sse_connections"), 2)
        c.rst(a)  # RST_STREAM(CANCEL), as a page closing one EventSource
        deadline = time.time() + 5
        while self.metric("litegate_sse_connections") > 1 and time.time() < deadline:
            c.pump_for(0.2)
        self.assertEqual(self.metric("litegate_sse_connections"), 1)
        self.gw.publish("chatbot/rst-b", {"data": "b-after"})  # the other stream goes on
        self.assertIn(b"b-after", c.data_until(b, b"b-after"))
        self.healthz_on(c, open_window=False)  # and the connection too
        self.assertIsNone(c.goaway)

    def test_a_body_on_a_get_closes_the_connection_not_the_gateway(self):
        # lws 4.1.6 asserts (the whole process aborts) on DATA for a GET without content-length.
        c = self.h2()
        c.request("GET", "/healthz", body=b"x", one_write=True)
        try:
            c.pump(lambda: False, 5)
        except (h2raw.GoAway, ConnectionError, ssl.SSLError):
            pass
        self.assertEqual(self.gw.http("GET", "/healthz")[0], 200)
        self.assertEqual(self.metric("litegate_h2_connections_refused_total"), 1)

    def test_random_frame_sequences_leave_the_gateway_well(self):
        # The h2 counterpart of test_badinput: seeded random conversations of well-formed and broken
        # frames (HEADERS on any stream id, DATA on GETs, resets, bad SETTINGS and WINDOW_UPDATEs,
        # CONTINUATION out of place, unknown types, raw junk) on fresh connections; the gateway
        # lives on and every acknowledged message stays.
        acked = self.gw.publish("chatbot/keep", [{"data": i} for i in range(5)])
        rng = random.Random(20261126)

        def frame(t, f, sid, p=b""):
            return len(p).to_bytes(3, "big") + bytes([t, f]) + sid.to_bytes(4, "big") + p

        def block(method, path, extra=()):
            fields = [(":method", method), (":scheme", "https"), (":path", path), (":authority", "x")]
            return h2raw.encode_headers(fields + list(extra))

        paths = ["/healthz", "/v1/topics/chatbot/r/events", "/v1/topics/chatbot/r/messages",
                 "/v1/groups/g/pop", "/", "/v1/ws", "/metrics"]
        methods = ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT"]
        extras = [(), (("content-length", "5"),), (("content-type", "application/json"),),
                  (("last-event-id", "3"),), ((":protocol", "websocket"),)]
        for _ in range(120):
            out = b""
            for _ in range(rng.randint(1, 12)):
                sid = rng.choice([1, 3, 5, 0, 2, 7, 0x7fffffff])
                k = rng.randint(0, 9)
                if k == 0:
                    out += frame(1, rng.choice([0x4, 0x5, 0x0, 0x1, 0x24, 0x2c]), sid,
                                 block(rng.choice(methods), rng.choice(paths), rng.choice(extras)))
                elif k == 1:
                    out += frame(0, rng.choice([0, 1, 8, 9]), sid, rng.randbytes(rng.randint(0, 40)))
                elif k == 2:
                    out += frame(3, 0, sid, rng.randint(0, 14).to_bytes(4, "big"))
                elif k == 3:
                    out += frame(8, 0, sid, rng.choice([0, 1, 0x7fffffff, 65535]).to_bytes(4, "big"))
                elif k == 4:
                    out += frame(4, rng.choice([0, 1]), rng.choice([0, 1]), rng.randbytes(rng.choice([0, 5, 6, 12])))
                elif k == 5:
                    out += frame(9, rng.choice([0, 4]), sid, block("GET", "/healthz"))
                elif k == 6:
                    out += frame(rng.randint(2, 255), rng.randint(0, 255), sid, rng.randbytes(rng.randint(0, 20)))
                elif k == 7:
                    out += rng.randbytes(rng.randint(1, 30))
                elif k == 8:
                    out += frame(1, 0x4, sid, block("POST", "/v1/topics/chatbot/r/messages",
                                                    [("content-type", "application/x-ndjson")]))
                    out += frame(0, 0, sid, b'{"data":1}\n') + frame(0, 1, sid, b"")
                else:
                    out += frame(1, 0x4, sid, rng.randbytes(rng.randint(1, 30)))
            # Half the time, a GET left open first (an event stream, answered and streaming), then
            # sent a body: the shape that made lws 4.1.6 abort the whole process (an assert in
            # lws_read_h1, for a body on a stream already in its transaction).
            late = rng.random() < 0.5
            try:
                c = self.h2()
                if late:
                    c.sock.sendall(frame(1, 0x4, 1, block("GET", "/v1/topics/chatbot/r/events")))
                    c.pump_for(0.05)
                    out = frame(0, rng.choice([0, 1]), 1, rng.randbytes(rng.randint(1, 40))) + out
                c.sock.sendall(out)
                c.pump_for(0.05)
                c.close()
            except (OSError, ConnectionError, ssl.SSLError, h2raw.GoAway, ValueError, KeyError):
                pass
        self.assertEqual(self.gw.proc.poll(), None, "the gateway died")
        code, body = self.request(self.base + "/healthz")
        self.assertEqual((code, json.loads(body)), (200, {"status": "ok"}))
        got = self.gw.history("chatbot/keep")
        self.assertEqual([(m["offset"], m["data"]) for m in got],
                         [(acked["first_offset"] + i, i) for i in range(5)])

    def test_error_bodies_and_statuses(self):
        code, body = self.request(self.base + "/v1/nope")
        self.assertEqual((code, json.loads(body)["error"]["code"]), (404, "not_found"))
        code, body = self.request(self.base + "/v1/topics/chatbot/x/messages?limit=abc")
        self.assertEqual((code, json.loads(body)["error"]["code"]), (400, "bad_request"))
        code, body = self.post_json("/v1/topics/chatbot/x", {"data": 1})
        self.assertEqual(code, 405)
        code, body = self.post_json("/v1/topics/chatbot/big/messages", {"data": "x" * 80000})
        self.assertEqual((code, json.loads(body)["error"]["code"]), (413, "too_large"))
        code, body = self.request("-X", "OPTIONS", "-H", "origin: https://example.com",
                                  self.base + "/v1/topics/chatbot/x/messages")
        self.assertEqual(code, 204)
        code, body = self.request(self.base + "/metrics")
        self.assertEqual(code, 200)
        self.assertIn("litegate_http_errors_total", body)
        # A large reply leaves in many DATA frames within the peer's window.
        for _ in range(15):
            self.gw.publish("chatbot/large", [{"data": "y" * 3000} for _ in range(20)])
        code, body = self.request(self.base + "/v1/topics/chatbot/large/messages?limit=300")
        self.assertEqual((code, len(json.loads(body)["messages"])), (200, 300))
        # Static files of the demo page.
        code, body = self.request(self.base + "/")
        self.assertEqual((code, body), (200, "<!doctype html><title>t</title>ok"))

    def test_delete_and_groups(self):
        self.gw.publish("chatbot/g1", [{"data": 1}, {"data": 2}])
        code, _ = self.request("-X", "PUT", "-H", "content-type: application/json", "--data-binary",
                               json.dumps({"parent": "chatbot", "events": ["message"],
                                           "max_inflight_per_topic": 10, "invisible_ms": 30000,
                                           "max_deliveries": 5}), self.base + "/v1/groups/w")
        self.assertIn(code, (200, 201))
        code, body = self.post_json("/v1/groups/w/pop", {"max": 10, "wait_ms": 2000})
        popped = json.loads(body)
        self.assertEqual(code, 200, body)
        self.assertEqual([m["offset"] for m in popped["messages"]], [0, 1])
        code, body = self.post_json("/v1/groups/w/ack", {"receipts": [m["receipt"] for m in popped["messages"]]})
        self.assertEqual(code, 200, body)
        # A long poll on h2 answered by a publish.
        t0 = time.time()
        timer = __import__("threading").Timer(0.5, lambda: self.gw.publish("chatbot/g2", [{"data": 3}]))
        timer.start()
        code, body = self.post_json("/v1/groups/w/pop", {"max": 1, "wait_ms": 5000})
        timer.join()
        self.assertEqual((code, json.loads(body)["messages"][0]["topic"]), (200, "chatbot/g2"))
        self.assertLess(time.time() - t0, 4)
        code, body = self.request("-X", "DELETE", self.base + "/v1/topics/chatbot/g1")
        self.assertEqual((code, json.loads(body)), (200, {"topic": "chatbot/g1", "deleted": True}))

    def test_settings_do_not_offer_websocket_over_h2(self):
        # lws 4.1.6 writes SETTINGS_ENABLE_CONNECT_PROTOCOL (0x8) = 1 (RFC 8441) in every server
        # preface; h2settings.c rewrites it to 0, so browsers open their WebSockets on HTTP/1.1.
        c = self.h2()
        self.healthz_on(c, open_window=False)  # the connection goes on: a request is answered
        self.assertEqual(c.first_frame, h2raw.SETTINGS, "the server's first frame is its SETTINGS")
        self.assertEqual(c.server_settings.get(0x8, 0), 0, c.server_settings)
        # The rest of lws's settings are as tls.c set them.
        self.assertEqual(c.server_settings.get(0x3), 128, c.server_settings)  # MAX_CONCURRENT_STREAMS
        code, body = self.request(self.base + "/healthz")
        self.assertEqual((code, json.loads(body)), (200, {"status": "ok"}))

    def test_websocket_stays_on_http11(self):
        ws = self.gw.ws()  # the harness offers http/1.1 only: a WSS upgrade works as before
        ws.send({"op": "ping", "req": 1})
        self.assertEqual(ws.recv(), {"type": "pong", "req": 1})
        ws.close()

    # -- what curl cannot do: a raw h2 client (h2raw.py) -------------------------------------------

    def h2(self, rcvbuf=None, **settings):
        conn = h2raw.H2Conn(self.gw.port, os.path.join(CERT_DIR, "gw.crt"),
                            {getattr(h2raw, "SETTINGS_" + k.upper()): v for k, v in settings.items()},
                            rcvbuf=rcvbuf)
        self.addCleanup(conn.close)
        return conn

    def healthz_on(self, conn, open_window=True):
        """GET /healthz on another stream of @conn (its window opened by hand when the client's
        initial window is tiny)."""
        sid = conn.request("GET", "/healthz")
        if open_window:
            conn.window_update(sid, 65535)
        self.assertEqual(conn.response(sid), (200, b'{"status":"ok"}\n'))

    def test_a_stream_whose_window_stays_shut_is_dropped_after_stall_s(self):
        # timeouts.stall_s is 3 (harness). The client lets 100 bytes through, then never opens its
        # window: the gateway ends the stream with END_STREAM, counts it, and the connection lives.
        self.gw.publish("chatbot/st", [{"data": "x" * 2000} for _ in range(5)])
        conn = self.h2(initial_window_size=100)
        sid = conn.request("GET", "/v1/topics/chatbot/st/events?from=0")
        st = conn.streams[sid]
        conn.pump(lambda: st.headers is not None)
        self.assertEqual(st.headers[":status"], "200")
        t0 = time.time()
        conn.pump(lambda: st.ended or st.reset is not None, timeout=12)
        self.assertTrue(st.ended)
        self.assertGreater(time.time() - t0, 2)  # not before stall_s
        self.assertEqual(len(st.data), 100)
        self.assertEqual(self.metric("litegate_stalled_dropped_total"), 1)
        self.assertEqual(self.metric("litegate_sse_connections"), 0)
        self.healthz_on(conn)
        self.assertIsNone(conn.goaway)
        # A slow reader is not a stalled one: 100 bytes a second, for longer than stall_s, and the
        # stream (one event is 2 KB: it waits in the gateway's queue meanwhile) stays.
        slow = self.h2(initial_window_size=100)
        sid = slow.request("GET", "/v1/topics/chatbot/st/events?from=0")
        st = slow.streams[sid]
        for _ in range(6):
            slow.pump_for(1)
            slow.window_update(sid, 100)
            slow.window_update(0, 100)
        slow.pump_for(0.5)
        self.assertFalse(st.ended or st.reset is not None)
        self.assertGreater(len(st.data), 600)
        self.assertEqual(self.metric("litegate_stalled_dropped_total"), 1)
        self.assertEqual(self.metric("litegate_sse_connections"), 1)

    def test_a_stream_on_a_connection_nobody_reads_is_dropped_after_stall_s(self):
        # The client opens every window wide, then stops reading the socket: no WRITEABLE comes any
        # more, so the END_STREAM cannot leave either, and the stream is dropped without it.
        conn = self.h2(rcvbuf=4096, initial_window_size=2 ** 31 - 1)
        conn.window_update(0, 2 ** 31 - 1 - 65535)
        sid = conn.request("GET", "/v1/topics/chatbot/nr/events")
        st = conn.streams[sid]
        conn.pump(lambda: st.headers is not None)
        payload = "y" * 2000
        for i in range(0, 3000, 25):  # about 6 MB, far more than the socket buffers hold
            self.gw.publish("chatbot/nr", [{"data": [j, payload]} for j in range(i, i + 25)])
        deadline = time.time() + 15
        while self.metric("litegate_sse_connections") and time.time() < deadline:
            time.sleep(0.25)
        self.assertEqual(self.metric("litegate_sse_connections"), 0)
        self.assertEqual(self.metric("litegate_stalled_dropped_total"), 1)
        # The connection itself lives: once the client reads again, it gets what was written
        # (the stream cut short, with no END_STREAM) and a new stream works.
        conn.pump_for(1)
        self.assertFalse(st.ended)
        self.assertIsNone(conn.goaway)
        self.healthz_on(conn, open_window=False)

    def test_a_pop_counts_its_messages_once_its_reply_is_sent(self):
        st, _, _ = self.gw.http("PUT", "/v1/groups/w", {"parent": "chatbot", "max_inflight_per_topic": 10,
                                                      "invisible_ms": 30000})
        self.assertEqual(st, 201)
        self.gw.publish("chatbot/pc", [{"data": 1}, {"data": 2}])
        # A client whose window is shut gets the reply's HEADERS (not flow-controlled), never its
        # DATA, and goes away: the messages were never delivered, so they are handed back at once.
        conn = self.h2(initial_window_size=0)
        body = json.dumps({"max": 10}).encode()
        sid = conn.request("POST", "/v1/groups/w/pop", [("content-type", "application/json"),
                                                        ("content-length", str(len(body)))], body)
        stream = conn.streams[sid]
        conn.pump(lambda: stream.headers is not None)
        self.assertEqual((stream.headers[":status"], stream.data), ("200", b""))
        conn.close()
        time.sleep(0.3)
        st, _, popped = self.gw.http("POST", "/v1/groups/w/pop", {"max": 10})
        self.assertEqual(st, 200)
        self.assertEqual([(m["offset"], m["delivery"]) for m in popped["messages"]], [(0, 1), (1, 1)])
        self.assertEqual(self.metric("litegate_messages_popped_total"), 2)
        # A reply that does leave counts: these are in flight now (30 s), not handed out again.
        self.gw.publish("chatbot/pc2", [{"data": 3}])
        code, body = self.post_json("/v1/groups/w/pop", {"max": 10})
        self.assertEqual([m["offset"] for m in json.loads(body)["messages"]], [0])
        code, body = self.post_json("/v1/groups/w/pop", {"max": 10})
        self.assertEqual((code, json.loads(body)["messages"]), (200, []))
        self.assertEqual(self.metric("litegate_messages_popped_total"), 3)

    def test_a_refused_body_stops_costing_and_the_connection_stays(self):
        # 128 publishes (the connection's SETTINGS_MAX_CONCURRENT_STREAMS, tls.h) each announce a
        # 1 MB body, over limits.max_body_bytes: each is answered 413 at once. Their client then
        # stops sending without a word (no END_STREAM, no RST_STREAM): lws would keep each stream
        # until timeouts.body_s, and a 129th stream would cost the connection a GOAWAY. Each is
        # closed a second after its answer instead, so the connection has room for more.
        conn = self.h2()
        headers = [("content-type", "application/json"), ("content-length", "1000000")]
        sids = [conn.request("POST", "/v1/topics/chatbot/big/messages", headers, b"[" * 100,
                             end_stream=False) for _ in range(128)]
        for sid in sids:
            status, body = conn.response(sid)
            self.assertEqual((status, json.loads(body)["error"]["code"]), (413, "too_large"))
        conn.pump_for(2.5)
        self.assertIsNone(conn.goaway)
        self.healthz_on(conn)
        # A client that sends its body on after the early answer, but ends it within the grace
        # period, is read to the end: the stream ends with its body, the connection stays.
        sid = conn.request("POST", "/v1/topics/chatbot/big/messages",
                           [("content-type", "application/json"), ("content-length", "100000")],
                           b"x" * 100000)
        self.assertEqual(conn.response(sid)[0], 413)
        conn.pump_for(1.5)
        self.assertIsNone(conn.goaway)
        self.healthz_on(conn)
        self.assertEqual(self.gw.http("GET", "/v1/topics/chatbot/big")[0], 404)  # nothing stored

    def test_pull_bodies_need_a_content_length(self):
        st, _, _ = self.gw.http("PUT", "/v1/groups/w", {"parent": "chatbot"})
        self.assertEqual(st, 201)
        self.gw.publish("chatbot/cl", [{"data": 1}])
        # Without a Content-Length lws 4.1.6 cannot tell where an h2 body ends: 411, and nothing
        # ran (an empty body would have popped with the defaults).
        for args in (["-T", "-"], []):
            code, body = self.request("-X", "POST", "-H", "content-type: application/json", *args,
                                      self.base + "/v1/groups/w/pop", data=b'{"max": 1}')
            self.assertEqual((code, json.loads(body)["error"]["code"]), (411, "length_required"), args)
        code, body = self.request("-X", "PUT", "-H", "content-type: application/json", "-T", "-",
                                  self.base + "/v1/groups/w", data=b'{"parent": "agent"}')
        self.assertEqual(code, 411)
        self.assertEqual(self.gw.http("GET", "/v1/groups/w")[2]["parent"], "chatbot")
        # With one (0 for none), as browsers send it.
        code, body = self.request("-X", "POST", "-H", "content-length: 0", self.base + "/v1/groups/w/pop")
        self.assertEqual(code, 200, body)
        self.assertEqual([(m["offset"], m["delivery"]) for m in json.loads(body)["messages"]], [(0, 1)])


class Http2Off(TestCase):
    """"http2": false: ALPN offers http/1.1 only, so an h2-capable client uses HTTP/1.1."""

    def setUp(self):
        self.CONFIG = tls_config()
        self.CONFIG["tls"]["http2"] = False
        super().setUp()

    @unittest.skipUnless(curl_available(), "curl with HTTP/2 (nghttp2) is not installed")
    def test_curl_gets_http11(self):
        r = subprocess.run(["curl", "-sS", "--http2", "--cacert", os.path.join(CERT_DIR, "gw.crt"),
                            "-o", "/dev/null", "-w", "%{http_version}",
                            "https://127.0.0.1:%d/healthz" % self.gw.port], capture_output=True, text=True)
        self.assertEqual((r.returncode, r.stdout), (0, "1.1"), r.stderr)


if __name__ == "__main__":
    harness.main()
