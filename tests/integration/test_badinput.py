"""Bad input against the running binary, over raw sockets: malformed HTTP, invalid UTF-8, huge and
duplicated headers, path traversal and encoded slashes, bad JSON, wrong content types, truncated and
over-long chunked bodies, garbage and oversized WebSocket frames, and clients that vanish mid-request.

Each gets its clear error (a status with a JSON error code, or a WebSocket close code). Every test
starts by publishing messages that are acknowledged, and ends by checking that the gateway is healthy
and that every one of those messages is still there, byte for byte; one test also restarts it.
"""

import json
import os
import random
import socket
import struct
import time

import harness
from harness import TestCase, WSClosed

BASELINE = {
    "chatbot/keep-1": [{"event": "token", "data": "α-%d" % i} for i in range(20)],
    "agent/keep-2": [{"event": "e", "data": {"n": i, "s": "x" * i}} for i in range(10)],
}


def exchange(port, data, timeout=5, close_write=False):
    """Send @data on a fresh connection; return everything until the server closes (or timeout)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        if close_write:
            s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                break
            out += chunk
            if b"\r\n\r\n" in out and _complete(out):
                break
        return out
    finally:
        s.close()


def _complete(out):
    head, _, body = out.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            return len(body) >= int(v)
    return False


def status_of(out):
    """(status, error code or None) of a raw response; (None, None) when the server sent nothing."""
    if not out:
        return None, None
    head, _, body = out.partition(b"\r\n\r\n")
    status = int(head.split(b"\r\n")[0].split()[1])
    try:
        code = json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        code = None
    return status, code


def post(path, body, ctype="application/json", extra=b""):
    body = body.encode() if isinstance(body, str) else body
    return (b"POST %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: %s\r\n%sContent-Length: %d\r\n\r\n"
            % (path.encode(), ctype.encode(), extra, len(body)) + body)


def ws_frame(op, payload, fin=True, mask=True, rsv=0, length=None):
    """A client frame; @length declares another payload length than the bytes that follow."""
    b0 = (0x80 if fin else 0) | rsv | op
    n = len(payload) if length is None else length
    m = 0x80 if mask else 0
    if n < 126:
        hdr = bytes([b0, m | n])
    elif n < 65536:
        hdr = bytes([b0, m | 126]) + struct.pack(">H", n)
    else:
        hdr = bytes([b0, m | 127]) + struct.pack(">Q", n)
    if mask:
        key = os.urandom(4)
        payload = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
        hdr += key
    return hdr + payload


class BadInput(TestCase):
    CONFIG = {"limits": {"max_body_bytes": 65536, "max_line_bytes": 8192, "max_ws_message_bytes": 65536},
              "timeouts": {"header_s": 2, "body_s": 3, "request_s": 5}}

    def setUp(self):
        super().setUp()
        self.acked = {}
        for topic, msgs in BASELINE.items():
            reply = self.gw.publish(topic, msgs)
            self.acked[topic] = (reply["first_offset"], msgs)

    def tearDown(self):
        self.assert_intact()

    def assert_intact(self):
        st, _, body = self.gw.http("GET", "/healthz")
        self.assertEqual((st, body), (200, {"status": "ok"}))
        for topic, (first, msgs) in self.acked.items():
            got = self.gw.history(topic)
            mine = [m for m in got if first <= m["offset"] < first + len(msgs)]
            self.assertEqual([(m["event"], m["data"]) for m in mine],
                             [(m["event"], m["data"]) for m in msgs], topic)
        self.gw.publish("chatbot/after", {"data": "still works"})

    def expect(self, cases):
        for name, data, status, code in cases:
            with self.subTest(name):
                got = status_of(exchange(self.gw.port, data))
                self.assertEqual(got, (status, code), "%s: %r" % (name, data[:120]))

    # ---- HTTP heads ------------------------------------------------------------------------------

    def test_malformed_http(self):
        H = b"Host: x\r\nConnection: close\r\n"
        self.expect([
            ("garbage", b"HELLO WORLD\r\n\r\n", 400, "bad_request"),
            ("binary", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + os.urandom(40) + b"\r\n\r\n",
             400, "bad_request"),
            ("no version", b"GET /healthz\r\n\r\n", 400, "bad_request"),
            ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 405, "method_not_allowed"),
            ("unknown method", b"BREW /healthz HTTP/1.1\r\n" + H + b"\r\n", 405, "method_not_allowed"),
            ("lower-case method", b"get /healthz HTTP/1.1\r\n" + H + b"\r\n", 405, "method_not_allowed"),
            ("CONNECT", b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n", 405,
             "method_not_allowed"),
            ("TRACE", b"TRACE /healthz HTTP/1.1\r\n" + H + b"\r\n", 405, "method_not_allowed"),
            ("version 9.9", b"GET /healthz HTTP/9.9\r\n" + H + b"\r\n", 400, "bad_request"),
            ("absolute form", b"GET http://x/healthz HTTP/1.1\r\n" + H + b"\r\n", 400, "bad_request"),
            ("asterisk form", b"OPTIONS * HTTP/1.1\r\n" + H + b"\r\n", 400, "bad_request"),
            ("double space", b"GET  /healthz HTTP/1.1\r\n" + H + b"\r\n", 400, "bad_request"),
            ("NUL in path", b"GET /heal\x00thz HTTP/1.1\r\n" + H + b"\r\n", 400, "bad_request"),
            ("control in header", b"GET /healthz HTTP/1.1\r\n" + H + b"X-A: a\x01b\r\n\r\n", 400, "bad_request"),
            ("bare CR", b"GET /healthz HTTP/1.1\r\n" + H + b"X-A: a\rb\r\n\r\n", 400, "bad_request"),
            ("no colon", b"GET /healthz HTTP/1.1\r\n" + H + b"Junk\r\n\r\n", 400, "bad_request"),
            ("space before colon", b"GET /healthz HTTP/1.1\r\nHost : x\r\n\r\n", 400, "bad_request"),
            ("folded line", b"GET /healthz HTTP/1.1\r\n" + H + b"X-A: a\r\n b\r\n\r\n", 400, "bad_request"),
            ("empty line first", b"\r\nGET /healthz HTTP/1.1\r\n" + H + b"\r\n", 400, "bad_request"),
            ("LF only is fine", b"GET /healthz HTTP/1.1\nHost: x\nConnection: close\n\n", 200, None),
            ("HTTP/1.0 is fine", b"GET /healthz HTTP/1.0\r\n\r\n", 200, None),
        ])
        # Content-Length that is not one decimal number, and both framings at once.
        self.expect([
            ("CL negative", post("/v1/topics/chatbot/x/messages", "", extra=b"")
             .replace(b"Content-Length: 0", b"Content-Length: -5"), 400, "bad_request"),
            ("CL junk", post("/v1/topics/chatbot/x/messages", "").replace(b"Content-Length: 0", b"Content-Length: 1x"),
             400, "bad_request"),
            ("CL overflow", post("/v1/topics/chatbot/x/messages", "")
             .replace(b"Content-Length: 0", b"Content-Length: 99999999999999999999"), 400, "bad_request"),
            ("CL and TE", post("/v1/topics/chatbot/x/messages", "0\r\n\r\n", extra=b"Transfer-Encoding: chunked\r\n"),
             400, "bad_request"),
            ("TE gzip", post("/v1/topics/chatbot/x/messages", "").replace(
                b"Content-Length: 0", b"Transfer-Encoding: gzip, chunked"), 400, "bad_request"),
            ("no framing", b"POST /v1/topics/chatbot/x/messages HTTP/1.1\r\nHost: x\r\n"
                           b"Content-Type: application/json\r\n\r\n", 400, "bad_request"),
        ])

    def test_huge_and_duplicated_headers(self):
        H = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        self.expect([
            ("one huge header", H + b"X-Big: " + b"a" * 20000 + b"\r\n\r\n", 431, "headers_too_large"),
            ("huge cookie", H + b"Cookie: " + b"c=" * 6000 + b"\r\n\r\n", 431, "headers_too_large"),
            ("many headers", H + b"".join(b"X-%d: v\r\n" % i for i in range(100)) + b"\r\n", 431,
             "headers_too_large"),
            ("many duplicates", H + b"Cookie: a=b\r\n" * 100 + b"\r\n", 431, "headers_too_large"),
            ("huge URL", b"GET /v1/topics/chatbot/" + b"x" * 20000 + b" HTTP/1.1\r\n\r\n", 414, "uri_too_long"),
            ("many query params", b"GET /healthz?" + b"&".join(b"p%d=1" % i for i in range(100)) +
             b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 400, "bad_request"),
            ("two Hosts", b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "bad_request"),
            ("two Content-Lengths", post("/v1/topics/chatbot/x/messages", '{"data":1}', extra=b"Content-Length: 10\r\n"),
             400, "bad_request"),
            ("two Transfer-Encodings", post("/v1/topics/chatbot/x/messages", "").replace(
                b"Content-Length: 0", b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked"), 400, "bad_request"),
            ("some duplicates are fine", H + b"Accept: a\r\nAccept: b\r\nX-A: 1\r\nX-A: 2\r\n\r\n", 200, None),
        ])

    def test_invalid_utf8(self):
        self.expect([
            ("JSON body", post("/v1/topics/chatbot/u/messages", b'{"data":"\xff\xfe"}'), 400, "bad_json"),
            ("JSON overlong encoding", post("/v1/topics/chatbot/u/messages", b'{"data":"\xc0\xaf"}'), 400, "bad_json"),
            ("JSON surrogate", post("/v1/topics/chatbot/u/messages", b'{"data":"\xed\xa0\x80"}'), 400, "bad_json"),
            ("text body", post("/v1/topics/chatbot/u/messages", b"caf\xe9", "text/plain"), 400, "bad_text"),
            ("NDJSON line", post("/v1/topics/chatbot/u/messages", b'{"data":"\x80"}\n', "application/x-ndjson"),
             400, "bad_json"),
            ("raw bytes in the path", b"GET /v1/topics/chatbot/\xc3\xa9/messages HTTP/1.1\r\nHost: x\r\n\r\n",
             400, "bad_request"),
            ("escaped bytes in the path", b"GET /v1/topics/chatbot/%C3%A9/messages HTTP/1.1\r\nHost: x\r\n"
                                          b"Connection: close\r\n\r\n", 400, "bad_name"),
            ("header value", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Name: \xe9\r\n\r\n", 400, "bad_request"),
        ])
        ws = self.gw.ws()
        try:
            ws.sock.sendall(ws_frame(1, b'{"op":"ping","req":"\xff"}'))
            with self.assertRaises(WSClosed) as cm:
                while True:
                    ws.recv()
            self.assertEqual(cm.exception.code, 1007)
        finally:
            ws.close()
        self.assertEqual(self.gw.history("chatbot/u") if self.gw.http("GET", "/v1/topics/chatbot/u")[0] == 200
                         else [], [])

    def test_traversal_and_encoded_slashes(self):
        C = b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        for name, path in (("dot-dot in a topic route", b"/v1/topics/chatbot/../../../etc/passwd"),
                           ("dot-dot at the root", b"/../../../../etc/passwd"),
                           ("encoded dot-dot", b"/%2e%2e/%2e%2e/%2e%2e/etc/passwd"),
                           ("encoded dot-dot in a topic", b"/v1/topics/chatbot/%2e%2e%2f%2e%2e%2fetc%2fpasswd"),
                           ("backslashes", b"/..\\..\\..\\etc\\passwd")):
            with self.subTest(name):
                out = exchange(self.gw.port, b"GET " + path + C)
                st, _ = status_of(out)
                self.assertIn(st, (400, 403, 404), out[:200])
                self.assertNotIn(b"root:", out)
        self.expect([
            ("encoded slash in an id", b"GET /v1/topics/chatbot/a%2Fb/messages" + C, 404, "not_found"),
            ("encoded slash in a publish", post("/v1/topics/chatbot/a%2Fb/messages", '{"data":1}'), 404, "not_found"),
            ("double-encoded slash", b"GET /v1/topics/chatbot/a%252Fb/messages" + C, 400, "bad_name"),
            ("encoded NUL", b"GET /v1/topics/chatbot/a%00b/messages" + C, 400, "bad_request"),
            ("broken escape", b"GET /v1/topics/chatbot/a%zz/messages" + C, 400, "bad_request"),
            ("dot id", b"GET /v1/topics/chatbot/.hidden/messages" + C, 400, "bad_name"),
            ("encoded dot id", b"GET /v1/topics/chatbot/%2ehidden/messages" + C, 400, "bad_name"),
            ("parent traversal", b"GET /v1/topics/..%2Fchatbot/x/messages" + C, 404, "not_found"),
        ])
        # Nothing outside the declared parents was written.
        st, _, text = self.gw.http("GET", "/metrics")
        self.assertEqual(st, 200)

    def test_bad_json(self):
        P = "/v1/topics/chatbot/j/messages"
        cases = [
            ("truncated", '{"data":', 400, "bad_json"),
            ("trailing garbage", '{"data":1} x', 400, "bad_json"),
            ("single quotes", "{'data':1}", 400, "bad_json"),
            ("comment", '{"data":1 /* c */}', 400, "bad_json"),
            ("NaN", '{"data":NaN}', 400, "bad_json"),
            ("leading zero", '{"data":01}', 400, "bad_json"),
            ("deep nesting", '{"data":' + "[" * 10000 + "]" * 10000 + "}", 400, "bad_json"),
            ("unknown member", '{"data":1,"x":2}', 400, None),
            ("duplicate member", '{"data":1,"data":2}', 400, None),
            ("event not a string", '{"event":1,"data":1}', 400, None),
            ("empty batch", "[]", 400, None),
            ("not an object", '"x"', 400, None),
            ("empty body", "", 400, None),
            ("control character", '{"data":"a\x01b"}', 400, "bad_json"),
        ]
        for name, body, status, code in cases:
            with self.subTest(name):
                st, c = status_of(exchange(self.gw.port, post(P, body)))
                self.assertEqual(st, status, name)
                if code:
                    self.assertEqual(c, code, name)
                else:
                    self.assertIn(c, ("bad_json", "bad_message", "bad_event", "bad_request"), name)
        self.assertEqual(self.gw.http("GET", "/v1/topics/chatbot/j")[0], 404)  # nothing appended
        self.expect([("too big", post(P, '{"data":"%s"}' % ("x" * 70000)), 413, "too_large")])

    def test_wrong_content_types(self):
        P = "/v1/topics/chatbot/ct/messages"
        for ctype in ("text/html", "application/xml", "multipart/form-data; boundary=x", "application/jsonx",
                      "application", "*/*", "application/x-www-form-urlencoded"):
            with self.subTest(ctype):
                self.assertEqual(status_of(exchange(self.gw.port, post(P, '{"data":1}', ctype))),
                                 (415, "unsupported_media_type"))
        no_type = (b"POST %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 10\r\n\r\n{\"data\":1}"
                   % P.encode())
        self.assertEqual(status_of(exchange(self.gw.port, no_type)), (415, "unsupported_media_type"))
        # Parameters and case do not matter.
        self.assertEqual(status_of(exchange(self.gw.port, post(P, '{"data":1}', "Application/JSON; charset=utf-8")))[0],
                         200)
        self.assertEqual(len(self.gw.history("chatbot/ct")), 1)

    # ---- Chunked bodies --------------------------------------------------------------------------

    def chunked(self, ctype, raw, timeout=5):
        return exchange(self.gw.port, b"POST /v1/topics/chatbot/ch/messages HTTP/1.1\r\nHost: x\r\n"
                                      b"Content-Type: %s\r\nTransfer-Encoding: chunked\r\n\r\n" % ctype.encode() + raw,
                        timeout=timeout)

    def test_truncated_and_overlong_chunked_bodies(self):
        J, N = "application/json", "application/x-ndjson"
        for name, ctype, raw, status, code in (
                ("bad size", J, b"zz\r\n{}\r\n0\r\n\r\n", 400, "bad_request"),
                ("negative size", J, b"-1\r\n", 400, "bad_request"),
                ("size overflow", J, b"fffffffffffffffffffff\r\n", 413, "too_large"),
                ("chunk over the body limit", J, b"20000\r\n" + b"x" * 100, 413, "too_large"),
                ("no CRLF after data", J, b"3\r\nabcX\r\n0\r\n\r\n", 400, "bad_request"),
                ("NDJSON line over the limit", N, b"3000\r\n" + b"x" * 0x3000 + b"\r\n0\r\n\r\n", 413, "too_large"),
                ("bad trailer", J, b"2\r\n{}\r\n0\r\nX: \x01\r\n\r\n", 400, "bad_request")):
            with self.subTest(name):
                self.assertEqual(status_of(self.chunked(ctype, raw)), (status, code))
        # A JSON body cut off mid-chunk: the client goes away, nothing is appended.
        s = socket.create_connection(("127.0.0.1", self.gw.port), timeout=5)
        s.sendall(b"POST /v1/topics/chatbot/cut/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n20\r\n{\"data\":\"abc")
        time.sleep(0.2)
        s.close()
        # An NDJSON stream cut off: the lines that arrived whole are appended, the torn one is not.
        s = socket.create_connection(("127.0.0.1", self.gw.port), timeout=5)
        lines = b'{"data":1}\n{"data":2}\n'
        s.sendall(b"POST /v1/topics/chatbot/cutnd/messages HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"%x\r\n%s\r\n10\r\n{\"data\":3" % (len(lines), lines))
        time.sleep(0.5)
        s.close()
        time.sleep(0.3)
        self.assertEqual(self.gw.http("GET", "/v1/topics/chatbot/cut")[0], 404)
        self.assertEqual([m["data"] for m in self.gw.history("chatbot/cutnd")], [1, 2])
        # A chunked body that just stops is closed after timeouts.body_s.
        t0 = time.time()
        out = self.chunked(J, b"5\r\n{\"da", timeout=10)
        self.assertLess(time.time() - t0, 8)
        self.assertNotIn(b"200 OK", out)

    # ---- WebSocket --------------------------------------------------------------------------------

    def ws_close_code(self, data):
        ws = self.gw.ws()
        try:
            ws.sock.sendall(data)
            try:
                while True:
                    ws.recv(timeout=5)
            except WSClosed as e:
                return e.code
            except (ConnectionError, OSError):
                return "dropped"
        finally:
            ws.close()

    def test_websocket_garbage_and_oversized_frames(self):
        for name, data, codes in (
                # Fixed "random" bytes: random input can also parse as a header declaring a huge
                # frame (1009) or be cut off before a close frame goes out; any of these is a
                # clear refusal, and the checks below prove the gateway stayed healthy.
                ("random bytes", random.Random(1).randbytes(200), (1002, 1009, "dropped")),
                ("reserved bits", ws_frame(1, b'{"op":"ping"}', rsv=0x40), (1002,)),
                ("unknown opcode", ws_frame(3, b"x"), (1002,)),
                ("continuation first", ws_frame(0, b"x"), (1002,)),
                ("fragmented ping", ws_frame(9, b"x", fin=False), (1002,)),
                ("ping over 125 bytes", ws_frame(9, b"x" * 200), (1002, "dropped")),
                ("binary frame", ws_frame(2, b"\x00\x01"), (1003,)),
                ("unmasked frame", ws_frame(1, b'{"op":"ping"}', mask=False), (1002,)),
                ("unmasked ping", ws_frame(9, b"x", mask=False), (1002,)),
                ("invalid UTF-8", ws_frame(1, b'"\xc3\x28"'), (1007,)),
                ("message over the limit", ws_frame(1, b"x" * 70000), (1009,)),
                ("declared 2^62 bytes", ws_frame(1, b"x" * 1000, length=2 ** 62), (1009,)),
                ("fragments over the limit", b"".join(ws_frame(0 if i else 1, b"x" * 20000, fin=False)
                                                      for i in range(4)), (1009,))):
            with self.subTest(name):
                self.assertIn(self.ws_close_code(data), codes)
        # Bad JSON and bad ops get error frames; the connection stays and still works.
        ws = self.gw.ws()
        try:
            for text, code in (("{{{{", "bad_json"), ("[" * 5000, "bad_json"), ('{"op":"nope"}', "bad_request"),
                               ('{"op":"subscribe","topic":"../etc"}', "bad_topic"),
                               ('{"op":"subscribe","topic":"chatbot/a%2Fb"}', "bad_topic"),
                               ('{"op":"publish","topic":"nope/x","data":1}', "unknown_parent"),
                               ('{"op":"ping","req":' + "9" * 100 + "}", "bad_request")):
                ws.send_text(text)
                m = ws.recv()
                self.assertEqual((m["type"], m["code"]), ("error", code), text[:40])
            ws.send({"op": "subscribe", "topic": "chatbot/keep-1", "req": 1})
            m, _ = ws.recv_until(lambda m: m["type"] == "message")
            self.assertEqual(m["data"], "α-0")
        finally:
            ws.close()
        st, _, text = self.gw.http("GET", "/metrics")
        self.assertIn(b'litegate_limit_exceeded_total{limit="max_ws_message_bytes"} 3', text)
        # the two unmasked cases, and the random bytes when they happen to parse as one
        self.assertRegex(text.decode(), r"\nlitegate_ws_unmasked_frames_total [23]\n")

    def test_unmasked_client_frames_close_with_1002(self):
        # RFC 6455 5.1: every client frame is masked; lws 4.1.6 would take an unmasked one, the
        # gateway closes with 1002 before lws sees it, also after good frames and mid-message.
        ws = self.gw.ws()
        try:
            ws.send({"op": "ping", "req": 1})
            self.assertEqual(ws.recv(), {"type": "pong", "req": 1})
            ws.send_text(json.dumps({"op": "ping", "req": 2}), fragments=3)  # masked fragments
            self.assertEqual(ws.recv(), {"type": "pong", "req": 2})
            ws.send_frame(0x9, b"hi")  # a masked ping between: answered by lws, then go on
            ws.send({"op": "subscribe", "topic": "chatbot/keep-1", "req": 3})
            m, _ = ws.recv_until(lambda m: m["type"] == "message")
            self.assertEqual(m["data"], "α-0")
            # The start of a message, masked; then an unmasked continuation in the same write.
            ws.sock.sendall(ws_frame(1, b'{"op":"pi', fin=False) + ws_frame(0, b'ng"}', mask=False))
            with self.assertRaises(WSClosed) as cm:
                while True:
                    ws.recv(timeout=5)
            self.assertEqual(cm.exception.code, 1002)
        finally:
            ws.close()
        # Frames split at every byte, with 16-bit lengths and payloads that hold bytes looking like
        # unmasked headers: the boundaries are followed across reads, nothing is refused.
        ws = self.gw.ws()
        try:
            for req in range(3):
                payload = json.dumps({"op": "publish", "topic": "chatbot/split", "data": "\x01\x05" * 80,
                                      "req": req}).encode()
                frame = ws_frame(1, payload)
                for i in range(0, len(frame), 7):
                    ws.sock.sendall(frame[i:i + 7])
                    time.sleep(0.002)
                m = ws.recv()
                self.assertEqual((m["type"], m["req"]), ("ack", req), m)
        finally:
            ws.close()
        st, _, text = self.gw.http("GET", "/metrics")
        self.assertIn(b"litegate_ws_unmasked_frames_total 1\n", text)

    # ---- Clients that vanish -----------------------------------------------------------------------

    def rst(self, s):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()

    def test_clients_that_vanish_mid_request(self):
        port = self.gw.port
        for data in (b"GET /heal", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: aaaa",
                     post("/v1/topics/chatbot/v/messages", '{"data":"' + "x" * 5000 + '"}')[:200],
                     b"POST /v1/topics/chatbot/v/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n100\r\n{\"data\":"):
            for how in ("close", "reset"):
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                s.sendall(data)
                time.sleep(0.05)
                if how == "reset":
                    self.rst(s)
                else:
                    s.close()
        # A publish whose client is gone before the reply: the message is still appended.
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(post("/v1/topics/chatbot/gone/messages", '{"data":"left"}'))
        self.rst(s)
        # Streams whose clients vanish: SSE and WebSocket, mid-frame too.
        sse = self.gw.sse("/v1/topics/chatbot/keep-1/events")
        self.rst(sse.sock)
        ws = self.gw.ws()
        ws.sock.sendall(ws_frame(1, b'{"op":"subscribe","topic":"chatbot/keep-1"}')[:9])
        self.rst(ws.sock)
        ws = self.gw.ws()
        ws.send({"op": "subscribe", "topic": "chatbot/keep-1"})
        ws.sock.close()
        # A TLS-looking client on the plain port, and a client that only connects.
        exchange(port, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(100), timeout=1)
        socket.create_connection(("127.0.0.1", port)).close()
        deadline = time.time() + 5
        while time.time() < deadline and self.gw.http("GET", "/v1/topics/chatbot/gone")[0] != 200:
            time.sleep(0.1)
        self.assertEqual([m["data"] for m in self.gw.history("chatbot/gone")], ["left"])
        # Nothing left behind: no stream and no connection but this one is open any more.
        deadline = time.time() + 5
        while time.time() < deadline:
            st, _, text = self.gw.http("GET", "/metrics", headers={"Connection": "close"})
            text = text.decode()
            if ("litegate_sse_connections 0\n" in text and "litegate_ws_connections 0\n" in text and
                    "litegate_connections 1\n" in text):
                break
            time.sleep(0.2)
        self.assertIn("litegate_sse_connections 0\n", text)
        self.assertIn("litegate_ws_connections 0\n", text)
        self.assertIn("litegate_connections 1\n", text)

    def test_bytes_pipelined_behind_an_event_stream_request(self):
        # lws 4.1.6 would spin on them until the client closed; the gateway refuses the request.
        def cpu_ticks():
            with open("/proc/%d/stat" % self.gw.proc.pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return int(fields[11]) + int(fields[12])

        s = socket.create_connection(("127.0.0.1", self.gw.port), timeout=5)
        try:
            s.sendall(b"GET /v1/topics/chatbot/keep-1/events HTTP/1.1\r\nHost: x\r\n\r\n"
                      b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            out = b""
            while b"\r\n\r\n" not in out or not _complete(out):
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
            self.assertEqual(status_of(out), (400, "bad_request"))
            before = cpu_ticks()
            time.sleep(1.0)
            self.assertLess(cpu_ticks() - before, 20)  # no busy loop while the client stays
        finally:
            s.close()
        sse = self.gw.sse("/v1/topics/chatbot/keep-1/events")  # alone, it is served
        try:
            self.assertEqual(sse.status, 200)
            self.assertEqual(sse.messages(1)[0][2], "α-0")
        finally:
            sse.close()

    def test_everything_acknowledged_survives_a_restart(self):
        self.test_malformed_http()
        self.gw.restart()
        self.assert_intact()
        self.gw.kill()
        self.gw.start()


if __name__ == "__main__":
    harness.main()
