"""TLS ("tls": {"cert", "key"}) against the real binary: HTTPS and WSS on the listening port, with a
self-signed certificate made at run time by the openssl CLI and Python's ssl module as the client.

Every client of the harness speaks TLS here (harness.TLS_CONTEXT): publishing, history, SSE,
WebSocket and a chunked NDJSON upload all run over it, with authorization on top in one test.
"""

import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import unittest
import warnings

import harness
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
    ctx.set_alpn_protocols(["h2", "http/1.1"])
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

    def test_alpn_is_http11_and_tls12_is_the_floor(self):
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


if __name__ == "__main__":
    harness.main()
