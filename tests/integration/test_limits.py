"""Limits against the real binary: connections overall and per client address, header size, slow
heads and slow bodies (slowloris), idle keep-alive, body and WebSocket message sizes, subscriptions
per WebSocket, history pages; each refusal is its documented status (408, 413, 414, 429 with
Retry-After, 431, 503 with Retry-After, WebSocket 1009) and is counted in /metrics.
"""

import json
import re
import socket
import ssl
import time

import harness
from harness import TestCase, WSClosed


def raw(port, data, timeout=5, src=None):
    """Send @data on a fresh connection and read until the server closes or times out."""
    s = harness.connect(port, timeout, src)
    try:
        if data:
            s.sendall(data)
        return read_all(s, timeout)
    finally:
        s.close()


def read_all(s, timeout=5):
    out = b""
    s.settimeout(timeout)
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    except (socket.timeout, ConnectionResetError, ssl.SSLError):
        pass
    return out


def trickle(s, start, byte, rounds, every):
    """Slowloris: send @start, then @byte every @every seconds, for @rounds bytes or until the
    server answers or closes. Returns what the server sent."""
    s.sendall(start)
    s.settimeout(every)
    reply = b""
    for _ in range(rounds):
        try:
            s.sendall(byte)
        except OSError:
            break
        try:
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
        except socket.timeout:
            pass
    return reply + read_all(s, 2)


def trickle_head(s, rounds):
    """A request line, then a header byte every 0.25 s that never ends the head."""
    return trickle(s, b"GET /healthz HTTP/1.1\r\n", b"X", rounds, 0.25)


# Connection: close, so each probe's connection is gone (and its count given back) when it returns.
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def parse(resp):
    head, _, body = resp.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
    return status, hdrs, json.loads(body) if body.strip() else None


class LimitsCase(TestCase):
    def metric(self, name, label=None):
        # From an address of its own, with Connection: close: the probe's connection is gone when
        # this returns, and it never counts against the addresses a test holds connections from.
        resp = raw(self.gw.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                   src="127.0.0.9")
        head, _, text = resp.partition(b"\r\n\r\n")
        self.assertIn(b" 200 ", head.split(b"\r\n")[0])
        pat = re.escape(name) + (r'\{limit="%s"\}' % re.escape(label) if label else "") + r" (\d+)"
        m = re.search(r"^" + pat + r"$", text.decode(), re.M)
        self.assertTrue(m, "%s %s not in /metrics" % (name, label))
        return int(m.group(1))


class Connections(LimitsCase):
    CONFIG = {"limits": {"max_connections": 6, "max_connections_per_ip": 4, "per_ip_loopback": True},
              "timeouts": {"header_s": 30, "keepalive_s": 30}}

    def setUp(self):
        super().setUp()
        # The startup health checks' connections are gone once only our own /metrics is open.
        deadline = time.time() + 5
        while self.metric("litegate_connections") != 1 and time.time() < deadline:
            time.sleep(0.05)

    def test_per_ip_then_overall(self):
        held = [socket.create_connection(("127.0.0.1", self.gw.port)) for _ in range(4)]
        try:
            time.sleep(0.2)
            st, hdrs, body = parse(raw(self.gw.port, HEALTHZ))
            self.assertEqual((st, hdrs.get("retry-after"), body["error"]["code"]),
                             (429, "1", "too_many_connections"))
            self.assertIn("max_connections_per_ip", body["error"]["message"])
            # Another client address is not held back by this one's connections...
            st, _, body = parse(raw(self.gw.port, HEALTHZ, src="127.0.0.2"))
            self.assertEqual(st, 200, body)
            held += [socket.create_connection(("127.0.0.1", self.gw.port), source_address=("127.0.0.2", 0))
                     for _ in range(2)]
            time.sleep(0.2)
            # ... until the gateway as a whole is full: 503, also for a new address.
            st, hdrs, body = parse(raw(self.gw.port, HEALTHZ, src="127.0.0.3"))
            self.assertEqual((st, hdrs.get("retry-after"), body["error"]["code"]),
                             (503, "1", "too_many_connections"))
        finally:
            for s in held:
                s.close()
        # Closed connections give their places back.
        deadline = time.time() + 5
        while time.time() < deadline:
            try:
                if self.gw.http("GET", "/healthz", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        self.assertEqual(self.metric("litegate_limit_exceeded_total", "max_connections_per_ip"), 1)
        self.assertGreaterEqual(self.metric("litegate_limit_exceeded_total", "max_connections"), 1)
        self.assertEqual(self.metric("litegate_connections"), 1)  # this /metrics request

    def test_websockets_and_streams_count_until_they_close(self):
        ws = [self.gw.ws() for _ in range(3)]
        sse = self.gw.sse("/v1/topics/chatbot/c/events")
        try:
            st, _, body = parse(raw(self.gw.port, HEALTHZ))
            self.assertEqual(st, 429, body)
        finally:
            for w in ws:
                w.close()
            sse.close()
        deadline = time.time() + 5
        while time.time() < deadline:
            st = parse(raw(self.gw.port, HEALTHZ))[0]
            if st == 200:
                break
            time.sleep(0.1)
        self.assertEqual(st, 200)


class Heads(LimitsCase):
    CONFIG = {"limits": {"max_header_bytes": 2048},
              "timeouts": {"header_s": 1, "keepalive_s": 2}}

    def test_431_and_414(self):
        ok = raw(self.gw.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 1500 + b"\r\n\r\n")
        self.assertEqual(parse(ok)[0], 200)
        st, hdrs, body = parse(raw(self.gw.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 3000 +
                                   b"\r\n\r\n"))
        self.assertEqual((st, body["error"]["code"], hdrs["connection"]), (431, "headers_too_large", "close"))
        many = b"".join(b"X-H%d: v\r\n" % i for i in range(400))
        st, _, body = parse(raw(self.gw.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n"))
        self.assertEqual((st, body["error"]["code"]), (431, "headers_too_large"))
        st, _, body = parse(raw(self.gw.port, b"GET /v1/topics/chatbot/" + b"x" * 3000 + b" HTTP/1.1\r\n\r\n"))
        self.assertEqual((st, body["error"]["code"]), (414, "uri_too_long"))
        # A head split over many packets is fine while it is complete and in time.
        s = harness.connect(self.gw.port, 5)
        try:
            for piece in (b"GET /hea", b"lthz HTTP/1.1\r", b"\nHost: x\r\n", b"\r", b"\n"):
                s.sendall(piece)
                time.sleep(0.05)
            self.assertEqual(harness.read_http_response(s)[0], 200)
        finally:
            s.close()
        self.assertEqual(self.metric("litegate_limit_exceeded_total", "max_header_bytes"), 3)

    def test_slowloris_head_gets_408_and_silence_is_closed(self):
        s = harness.connect(self.gw.port, 5)
        t0 = time.time()
        try:
            reply = trickle_head(s, 40)
        finally:
            s.close()
        st, _, body = parse(reply)
        self.assertEqual((st, body["error"]["code"]), (408, "request_timeout"))
        self.assertLess(time.time() - t0, 4)
        # A connection that says nothing is closed, without a reply.
        t0 = time.time()
        self.assertEqual(raw(self.gw.port, b"", timeout=5), b"")
        self.assertLess(time.time() - t0, 4)
        self.assertEqual(self.metric("litegate_limit_exceeded_total", "header_timeout"), 2)

    def test_idle_keep_alive_is_closed_and_counted(self):
        s = harness.connect(self.gw.port, 10)
        try:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertEqual(harness.read_http_response(s)[0], 200)
            t0 = time.time()
            self.assertEqual(read_all(s, 8), b"")  # keepalive_s 2
            self.assertLess(time.time() - t0, 4)
            self.assertGreater(time.time() - t0, 1.5)
        finally:
            s.close()
        self.assertEqual(self.gw.http("GET", "/healthz")[0], 200)
        self.assertEqual(self.metric("litegate_limit_exceeded_total", "keepalive_idle"), 1)


def responses(s, count, timeout=5):
    """@count whole responses (Content-Length framed) read from @s, in order, as (status, headers,
    body) with JSON bodies decoded; fewer when the server closes first."""
    out, buf = [], b""
    s.settimeout(timeout)
    while len(out) < count:
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                return out
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        st, hdrs, _ = parse(head + b"\r\n\r\n")
        n = int(hdrs.get("content-length", "0"))
        while len(rest) < n:
            chunk = s.recv(65536)
            if not chunk:
                break
            rest += chunk
        body = rest[:n]
        buf = rest[n:]
        out.append((st, hdrs, json.loads(body) if body.strip() and b"json" in
                    hdrs.get("content-type", "").encode() else body))
    return out


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


class KeptAlive(LimitsCase):
    """The head check on every request of a kept-alive connection, not only the first."""
    CONFIG = {"limits": {"max_header_bytes": 2048},
              "timeouts": {"header_s": 1, "keepalive_s": 3}}
    GET = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"

    def second(self, data):
        """A good request, then @data on the same connection: the responses to both."""
        s = harness.connect(self.gw.port, 10)
        try:
            s.sendall(self.GET)
            first = responses(s, 1)
            self.assertEqual(first[0][0], 200)
            s.sendall(data)
            rest = responses(s, 1)
            self.assertEqual(read_all(s, 3), b"")  # and then the connection is closed
            return rest[0] if rest else None
        finally:
            s.close()

    def test_oversized_second_heads_get_431_and_414(self):
        st, hdrs, body = self.second(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 3000 + b"\r\n\r\n")
        self.assertEqual((st, body["error"]["code"], hdrs["connection"]), (431, "headers_too_large", "close"))
        st, _, body = self.second(b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(100))
                                  + b"\r\n")
        self.assertEqual((st, body["error"]["code"]), (431, "headers_too_large"))
        st, _, body = self.second(b"GET /v1/topics/chatbot/" + b"x" * 3000 + b" HTTP/1.1\r\n\r\n")
        self.assertEqual((st, body["error"]["code"]), (414, "uri_too_long"))
        self.assertEqual(self.metric("litegate_limit_exceeded_total", "max_header_bytes"), 3)

    def test_malformed_second_heads_get_400_and_405(self):
        for data, status, code in (
                (b"GET /healthz HTTP/1.1\r\nHost : x\r\n\r\n", 400, "bad_request"),
                (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n", 400, "bad_request"),
                (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", 400, "bad_request"),
                (b"GET /heal\x00thz HTTP/1.1\r\n\r\n", 400, "bad_request"),
                (b"BREW /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 405, "method_not_allowed"),
                (b"\x16\x03\x01\x00\xa5\x01\x00\x00\r\n\r\n", 400, "bad_request")):
            with self.subTest(data[:40]):
                st, _, body = self.second(data)
                self.assertEqual((st, body["error"]["code"]), (status, code))

    def test_slow_second_head_gets_408(self):
        s = harness.connect(self.gw.port, 10)
        try:
            s.sendall(self.GET)
            self.assertEqual(responses(s, 1)[0][0], 200)
            time.sleep(1.5)  # idle, but within keepalive_s: the header clock has not started
            t0 = time.time()
            reply = trickle_head(s, 20)
        finally:
            s.close()
        st, _, body = parse(reply)
        self.assertEqual((st, body["error"]["code"]), (408, "request_timeout"))
        self.assertLess(time.time() - t0, 3)
        self.assertEqual(self.metric("litegate_limit_exceeded_total", "header_timeout"), 1)

    def test_keep_alive_and_pipelining_still_work(self):
        s = harness.connect(self.gw.port, 10)
        try:
            for i in range(30):  # one request at a time
                s.sendall(self.GET)
                self.assertEqual(responses(s, 1)[0][0], 200)
            # 50 GETs in one write, then a mix of publishes and reads, pipelined.
            s.sendall(self.GET * 50)
            self.assertEqual([r[0] for r in responses(s, 50)], [200] * 50)
            # Publishes one after the other on the same connection, with GETs pipelined between.
            for i in range(5):
                body = json.dumps({"data": i}).encode()
                s.sendall(b"POST /v1/topics/chatbot/ka/messages HTTP/1.1\r\nHost: x\r\n"
                          b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                st, _, reply = responses(s, 1)[0]
                self.assertEqual((st, reply["first_offset"]), (200, i))
                s.sendall(b"GET /v1/topics/chatbot/ka HTTP/1.1\r\nHost: x\r\n\r\n" + self.GET)
                got = responses(s, 2)
                self.assertEqual([r[0] for r in got], [200, 200])
                self.assertEqual(got[0][2]["next_offset"], i + 1)
            # A head split over packets, on the kept-alive connection.
            for piece in (b"GET /hea", b"lthz HTTP/1.1\r", b"\nHost: x\r\n", b"\r", b"\n"):
                s.sendall(piece)
                time.sleep(0.05)
            self.assertEqual(responses(s, 1)[0][0], 200)
        finally:
            s.close()
        self.assertEqual(self.metric("litegate_limit_exceeded_total", "max_header_bytes"), 0)
        self.assertEqual(self.metric("litegate_limit_exceeded_total", "header_timeout"), 0)

    def test_event_stream_pipelined_after_a_request(self):
        pid = self.gw.proc.pid
        self.gw.publish("chatbot/pipe-sse", {"data": "a"})
        sse = b"GET /v1/topics/chatbot/pipe-sse/events HTTP/1.1\r\nHost: x\r\n\r\n"
        # Alone behind a request: the stream is served, and an idle stream costs no CPU.
        s = harness.connect(self.gw.port, 5)
        try:
            s.sendall(self.GET + sse)
            s.settimeout(5)
            data = b""
            deadline = time.time() + 5
            while b'data: "a"' not in data and time.time() < deadline:
                chunk = s.recv(65536)
                self.assertTrue(chunk, data)
                data += chunk
            first, _, stream = data.partition(b"\r\n\r\n")
            self.assertTrue(first.startswith(b"HTTP/1.1 200 "), data[:100])
            self.assertIn(b"text/event-stream", stream)
            self.assertIn(b'data: "a"', stream)
            before = cpu_ticks(pid)
            time.sleep(1.5)
            self.assertLess(cpu_ticks(pid) - before, 20)  # no busy loop
            # Bytes after it on that stream end the stream, without a spin.
            s.sendall(self.GET)
            t0 = time.time()
            read_all(s, 5)  # until the server closes
            self.assertLess(time.time() - t0, 4)
        finally:
            s.close()
        # With bytes behind it: refused with 400 before lws reads any of it.
        s = harness.connect(self.gw.port, 5)
        try:
            s.sendall(self.GET + sse + self.GET)
            got = responses(s, 2)
            self.assertEqual(got[0][0], 200)
            self.assertEqual((got[1][0], got[1][2]["error"]["code"]), (400, "bad_request"))
            before = cpu_ticks(pid)
            time.sleep(1.5)
            self.assertLess(cpu_ticks(pid) - before, 20)
        finally:
            s.close()
        self.assertEqual(self.gw.http("GET", "/healthz")[0], 200)


class Bodies(LimitsCase):
    CONFIG = {"timeouts": {"request_s": 2, "body_s": 30},
              "limits": {"max_body_bytes": 4096, "max_ws_message_bytes": 2048, "max_ws_topics": 2,
                         "history_max_bytes": 1024}}

    def test_trickled_body_gets_408(self):
        s = socket.create_connection(("127.0.0.1", self.gw.port), timeout=10)
        t0 = time.time()
        try:
            reply = trickle(s, b"POST /v1/topics/chatbot/slow/messages HTTP/1.1\r\nHost: x\r\n"
                               b"Content-Type: application/json\r\nContent-Length: 200\r\n\r\n"
                               b"{\"data\":\"", b"a", 30, 0.4)
        finally:
            s.close()
        st, _, body = parse(reply)
        self.assertEqual((st, body["error"]["code"]), (408, "request_timeout"))
        self.assertLess(time.time() - t0, 6)
        self.assertEqual(self.metric("litegate_limit_exceeded_total", "request_timeout"), 1)
        # A chunked stream is not cut by request_s: it may last as long as it keeps sending.
        up = harness.ChunkedUpload(self.gw.port, "/v1/topics/chatbot/stream/messages")
        try:
            for i in range(6):
                up.send(json.dumps({"data": i}) + "\n")
                time.sleep(0.5)
            st, _, body = up.finish()
            self.assertEqual((st, body["count"]), (200, 6))
        finally:
            up.close()

    def test_413_and_websocket_limits_are_counted(self):
        st, _, body = self.gw.http("POST", "/v1/topics/chatbot/big/messages", {"data": "x" * 5000})
        self.assertEqual((st, body["error"]["code"]), (413, "too_large"))
        self.assertEqual(self.metric("litegate_limit_exceeded_total", "max_body_bytes"), 1)
        ws = self.gw.ws()
        try:
            for i in range(3):
                ws.send({"op": "subscribe", "topic": "chatbot/t%d" % i, "req": i})
            msgs = [ws.recv() for _ in range(3)]
            self.assertEqual(msgs[2]["code"], "too_many_topics")
            ws.send_text("x" * 3000)
            with self.assertRaises(WSClosed) as cm:
                while True:
                    ws.recv()
            self.assertEqual(cm.exception.code, 1009)
        finally:
            ws.close()
        self.assertEqual(self.metric("litegate_limit_exceeded_total", "max_ws_topics"), 1)
        self.assertEqual(self.metric("litegate_limit_exceeded_total", "max_ws_message_bytes"), 1)

    def test_history_page_is_capped_by_bytes(self):
        for _ in range(5):
            self.gw.publish("chatbot/h", [{"data": "y" * 400} for _ in range(2)])
        st, _, page = self.gw.http("GET", "/v1/topics/chatbot/h/messages?limit=10")
        self.assertEqual(st, 200)
        self.assertLess(len(page["messages"]), 10)
        self.assertGreaterEqual(len(page["messages"]), 1)
        self.assertEqual(page["next"], page["messages"][-1]["offset"] + 1)
        self.assertEqual(len(self.gw.history("chatbot/h", limit=10)), 10)  # paging gets them all
        self.assertGreaterEqual(self.metric("litegate_limit_exceeded_total", "history_max_bytes"), 1)


class TrustedProxies(LimitsCase):
    """limits.trusted_proxies: a trusted peer's X-Forwarded-For names the client that per-client
    publish limits charge, and the proxy is not held to max_connections_per_ip; anyone else's
    X-Forwarded-For is ignored."""
    CONFIG = {"limits": {"trusted_proxies": ["127.0.0.1", "127.0.9.0/24"], "max_connections": 50,
                         "max_connections_per_ip": 2, "per_ip_loopback": True},
              "publish_limits": {"per_client": {"messages_per_s": 0.01, "burst_messages": 2}},
              "timeouts": {"header_s": 30, "keepalive_s": 30}}

    def publish(self, src, xff=None, topic="chatbot/p"):
        body = b'{"data":1}'
        req = (b"POST /v1/topics/" + topic.encode() + b"/messages HTTP/1.1\r\nHost: x\r\n"
               b"Connection: close\r\nContent-Type: application/json\r\nContent-Length: " +
               str(len(body)).encode() + b"\r\n")
        if xff is not None:
            req += b"X-Forwarded-For: " + xff.encode() + b"\r\n"
        st, _, reply = parse(raw(self.gw.port, req + b"\r\n" + body, src=src))
        return st, reply

    def test_the_forwarded_client_is_charged_not_the_proxy(self):
        for _ in range(2):
            self.assertEqual(self.publish("127.0.0.1", "198.51.100.1")[0], 200)
        st, reply = self.publish("127.0.0.1", "198.51.100.1")
        self.assertEqual((st, reply["error"]["code"]), (429, "rate_limited"), reply)
        # Another client behind the same proxy has its own bucket, also behind a second trusted hop.
        self.assertEqual(self.publish("127.0.0.1", "198.51.100.2")[0], 200)
        self.assertEqual(self.publish("127.0.9.5", "198.51.100.2, 127.0.0.1")[0], 200)
        self.assertEqual(self.publish("127.0.0.1", "198.51.100.2")[0], 429)
        # What a client writes to the left of the proxy's entry is not believed.
        self.assertEqual(self.publish("127.0.0.1", "198.51.100.3, 198.51.100.1")[0], 429)
        # A trusted peer without the header is charged itself.
        self.assertEqual(self.publish("127.0.9.7")[0], 200)

    def test_an_untrusted_peers_header_is_ignored(self):
        # 127.0.0.2 is no proxy: its made-up client addresses all charge 127.0.0.2.
        self.assertEqual(self.publish("127.0.0.2", "203.0.113.1")[0], 200)
        self.assertEqual(self.publish("127.0.0.2", "203.0.113.2")[0], 200)
        st, reply = self.publish("127.0.0.2", "203.0.113.3")
        self.assertEqual((st, reply["error"]["code"]), (429, "rate_limited"), reply)
        self.assertEqual(len(self.gw.history("chatbot/p")), 2)

    def test_a_proxy_is_not_held_to_the_per_address_connection_limit(self):
        held = [socket.create_connection(("127.0.0.1", self.gw.port), source_address=("127.0.0.1", 0))
                for _ in range(4)]
        held += [socket.create_connection(("127.0.0.1", self.gw.port), source_address=("127.0.0.2", 0))
                 for _ in range(2)]
        try:
            time.sleep(0.2)
            self.assertEqual(parse(raw(self.gw.port, HEALTHZ, src="127.0.0.1"))[0], 200)
            st, _, body = parse(raw(self.gw.port, HEALTHZ, src="127.0.0.2"))
            self.assertEqual((st, body["error"]["code"]), (429, "too_many_connections"))
        finally:
            for s in held:
                s.close()

    def test_bad_entries_stop_startup_naming_the_field(self):
        import subprocess
        for bad in (["10.0.0.0/33"], ["proxy.example"], [""], "10.0.0.1"):
            cfg = dict(self.gw.config)
            cfg["limits"] = dict(cfg["limits"], trusted_proxies=bad)
            path = self.gw.tmp + "/bad.json"
            with open(path, "w") as f:
                json.dump(cfg, f)
            r = subprocess.run([harness.binary_path(), "--config", path], capture_output=True, timeout=20)
            self.assertEqual(r.returncode, 2, (bad, r.stderr))
            self.assertIn(b"limits.trusted_proxies", r.stderr)


if __name__ == "__main__":
    harness.main()
