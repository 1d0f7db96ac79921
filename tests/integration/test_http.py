"""HTTP API v1 of the real litegate binary: every endpoint and every error status."""

import http.client
import json
import os
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import harness
from harness import Gateway, TestCase, read_http_response


class PublishAndRead(TestCase):
    def test_publish_one_message_and_read_it_back_exactly(self):
        data = {"t": "Hel", "n": 0.1, "big": 12345678901234567890, "u": "h\u00e9\u2603\U0001F600",
                "nested": [1, {"a": None}, True, False], "esc": "q\"\\/\n"}
        raw = json.dumps(data, indent=2)  # whitespace must go, everything else must stay
        st, _, body = self.gw.http("POST", "/v1/topics/chatbot/s1/messages",
                                   '{"event":"token","data":%s}' % raw,
                                   {"Content-Type": "application/json"})
        self.assertEqual(st, 200, body)
        self.assertEqual(body, {"topic": "chatbot/s1", "first_offset": 0, "last_offset": 0, "count": 1})
        st, _, hist = self.gw.http("GET", "/v1/topics/chatbot/s1/messages")
        self.assertEqual(st, 200)
        self.assertEqual(len(hist["messages"]), 1)
        m = hist["messages"][0]
        self.assertEqual(m["offset"], 0)
        self.assertEqual(m["event"], "token")
        self.assertEqual(m["data"], data)
        self.assertAlmostEqual(m["time"] / 1000.0, time.time(), delta=60)
        # Numbers are stored as written, not round-tripped through a double.
        st, _, rawhist = self.gw.http("GET", "/v1/topics/chatbot/s1/messages",
                                      headers={"Accept": "application/json"})
        conn = http.client.HTTPConnection("127.0.0.1", self.gw.port, timeout=5)
        conn.request("GET", "/v1/topics/chatbot/s1/messages")
        text = conn.getresponse().read().decode()
        conn.close()
        self.assertIn('"n":0.1,', text)
        self.assertIn('"big":12345678901234567890', text)

    def test_default_event_is_message_and_data_defaults_to_null(self):
        self.gw.publish("chatbot/d", {"data": "x"})
        self.gw.publish("chatbot/d", {"event": "end"})
        msgs = self.gw.history("chatbot/d")
        self.assertEqual([(m["event"], m["data"]) for m in msgs], [("message", "x"), ("end", None)])

    def test_batch_is_contiguous_and_in_order(self):
        self.gw.publish("chatbot/b", {"data": "first"})
        body = self.gw.publish("chatbot/b", [{"event": "token", "data": i} for i in range(50)])
        self.assertEqual(body, {"topic": "chatbot/b", "first_offset": 1, "last_offset": 50, "count": 50})
        msgs = self.gw.history("chatbot/b")
        self.assertEqual([m["offset"] for m in msgs], list(range(51)))
        self.assertEqual([m["data"] for m in msgs[1:]], list(range(50)))

    def test_text_plain_body_is_one_string_message(self):
        st, _, body = self.gw.http("POST", "/v1/topics/agent/t/messages", "hello \"w\"\nline2",
                                   {"Content-Type": "text/plain; charset=utf-8"})
        self.assertEqual(st, 200, body)
        self.assertEqual(self.gw.history("agent/t")[0]["data"], "hello \"w\"\nline2")

    def test_ndjson_with_content_length(self):
        lines = "".join(json.dumps({"event": "token", "data": "t%d" % i}) + "\n" for i in range(10))
        st, _, body = self.gw.http("POST", "/v1/topics/chatbot/nd/messages", lines + '{"event":"end"}',
                                   {"Content-Type": "application/x-ndjson"})
        self.assertEqual(st, 200, body)
        self.assertEqual((body["first_offset"], body["last_offset"], body["count"]), (0, 10, 11))
        msgs = self.gw.history("chatbot/nd")
        self.assertEqual([m["data"] for m in msgs[:10]], ["t%d" % i for i in range(10)])
        self.assertEqual(msgs[10]["event"], "end")

    def test_idempotency_key_and_message_keys(self):
        h = {"Idempotency-Key": "req-1"}
        first = self.gw.publish("chatbot/idem", [{"data": 1}, {"data": 2}], headers=h)
        self.assertEqual(first, {"topic": "chatbot/idem", "first_offset": 0, "last_offset": 1, "count": 2})
        again = self.gw.publish("chatbot/idem", [{"data": 1}, {"data": 2}], headers=h)
        # A retry repeats the first answer, flagged, with the batch's messages listed as duplicates.
        self.assertEqual(again, dict(first, duplicate=True, duplicates=[0, 1]))
        self.assertEqual(len(self.gw.history("chatbot/idem")), 2)
        # Message ids ("key" is their earlier name): the known one keeps its offset, the new one is
        # appended.
        self.gw.publish("chatbot/idem", {"key": "m-a", "data": "a"})
        mixed = self.gw.publish("chatbot/idem", [{"id": "m-a", "data": "a"}, {"id": "m-b", "data": "b"}])
        self.assertEqual(mixed, {"topic": "chatbot/idem", "first_offset": 2, "last_offset": 3, "count": 2,
                                 "duplicates": [0]})
        self.assertEqual([m["data"] for m in self.gw.history("chatbot/idem")], [1, 2, "a", "b"])
        self.assert_status(self.gw.http("POST", "/v1/topics/chatbot/idem/messages", {"data": 1},
                                        {"Idempotency-Key": "bad key"}), 400, "bad_request")
        self.assert_status(self.gw.http("POST", "/v1/topics/chatbot/idem/messages", '{"data":1}\n',
                                        {"Idempotency-Key": "k", "Content-Type": "application/x-ndjson"}),
                           400, "bad_request")

    def test_sessions_shorthand_is_chatbot(self):
        st, _, body = self.gw.http("POST", "/v1/sessions/abc/messages", {"data": 1})
        self.assertEqual(st, 200, body)
        self.assertEqual(body["topic"], "chatbot/abc")
        st, _, info = self.gw.http("GET", "/v1/topics/chatbot/abc")
        self.assertEqual(st, 200)
        st, _, info2 = self.gw.http("GET", "/v1/sessions/abc")
        self.assertEqual(info, info2)

    def test_topic_info_delete_and_404(self):
        before = int(time.time() * 1000)
        self.gw.publish("chatbot/info", [{"data": 1}, {"data": 2}])
        st, _, info = self.gw.http("GET", "/v1/topics/chatbot/info")
        self.assertEqual(st, 200)
        self.assertEqual(info["topic"], "chatbot/info")
        self.assertEqual(info["first_offset"], 0)
        self.assertEqual(info["next_offset"], 2)
        self.assertGreaterEqual(info["created"], before - 5000)
        self.assertGreaterEqual(info["last_write"], info["created"])
        st, _, body = self.gw.http("DELETE", "/v1/topics/chatbot/info")
        self.assertEqual(st, 200, body)
        self.assert_status(self.gw.http("GET", "/v1/topics/chatbot/info"), 404, "not_found")
        self.assert_status(self.gw.http("GET", "/v1/topics/chatbot/info/messages"), 404, "not_found")
        self.assert_status(self.gw.http("DELETE", "/v1/topics/chatbot/info"), 404, "not_found")
        self.assert_status(self.gw.http("GET", "/v1/topics/chatbot/never"), 404, "not_found")

    def test_history_paging(self):
        self.gw.publish("chatbot/h", [{"data": i} for i in range(25)])
        st, _, page = self.gw.http("GET", "/v1/topics/chatbot/h/messages?from=5&limit=10")
        self.assertEqual(st, 200)
        self.assertEqual([m["offset"] for m in page["messages"]], list(range(5, 15)))
        self.assertEqual(page["next"], 15)
        st, _, page = self.gw.http("GET", "/v1/topics/chatbot/h/messages?from=20")
        self.assertEqual([m["data"] for m in page["messages"]], list(range(20, 25)))
        self.assertEqual(page["next"], 25)
        st, _, page = self.gw.http("GET", "/v1/topics/chatbot/h/messages?from=100")
        self.assertEqual(page["messages"], [])
        st, _, page = self.gw.http("GET", "/v1/topics/chatbot/h/messages?from=tail")
        self.assertEqual((page["messages"], page["next"]), ([], 25))
        st, _, page = self.gw.http("GET", "/v1/topics/chatbot/h/messages")
        self.assertEqual(len(page["messages"]), 25)  # default limit 100
        self.assert_status(self.gw.http("GET", "/v1/topics/chatbot/h/messages?limit=0"), 400, "bad_request")
        self.assert_status(self.gw.http("GET", "/v1/topics/chatbot/h/messages?limit=1001"), 400, "bad_request")
        self.assert_status(self.gw.http("GET", "/v1/topics/chatbot/h/messages?from=-1"), 400, "bad_request")
        self.assert_status(self.gw.http("GET", "/v1/topics/chatbot/h/messages?from=abc"), 400, "bad_request")

    def test_keep_alive_carries_several_requests(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.gw.port, timeout=5)
        try:
            for i in range(5):
                conn.request("POST", "/v1/topics/chatbot/ka/messages", json.dumps({"data": i}),
                             {"Content-Type": "application/json"})
                r = conn.getresponse()
                self.assertEqual(r.status, 200)
                self.assertEqual(json.loads(r.read())["first_offset"], i)
                conn.request("GET", "/healthz")
                r = conn.getresponse()
                self.assertEqual(r.status, 200)
                r.read()
        finally:
            conn.close()

    def test_request_pipelined_behind_a_publish_is_refused_after_its_reply(self):
        # A publish is answered once the engine has the message; a request pipelined behind it is
        # held back (lws must not read it while the publish is served) and refused with a 400
        # after the publish's reply: no spin, and the first message is stored once.
        def cpu_ticks():
            with open("/proc/%d/stat" % self.gw.proc.pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return int(fields[11]) + int(fields[12])

        s = socket.create_connection(("127.0.0.1", self.gw.port), timeout=5)
        try:
            body = b'{"data":"p"}'
            req = (b"POST /v1/topics/chatbot/pipe/messages HTTP/1.1\r\nHost: x\r\n"
                   b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            s.sendall(req + req)
            data = b""
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            except ConnectionResetError:
                pass
        finally:
            s.close()
        first, _, rest = data.partition(b"\r\n\r\n")
        self.assertTrue(first.startswith(b"HTTP/1.1 200 "), data[:200])
        self.assertIn(b"HTTP/1.1 400 Bad Request", rest)
        self.assertIn(b"pipelined behind one still in progress", rest)
        before = cpu_ticks()
        time.sleep(1.0)
        self.assertLess(cpu_ticks() - before, 20)  # well under 20% of a core: no busy loop
        self.assertEqual(self.gw.http("GET", "/healthz")[0], 200)
        self.assertEqual([m["data"] for m in self.gw.history("chatbot/pipe")], ["p"])

    def test_expect_100_continue(self):
        s = socket.create_connection(("127.0.0.1", self.gw.port), timeout=5)
        try:
            body = json.dumps({"data": "x" * 2000}).encode()
            s.sendall(b"POST /v1/topics/chatbot/exp/messages HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Type: application/json\r\nExpect: 100-continue\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(body))
            first = s.recv(64)
            self.assertTrue(first.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), first)
            s.sendall(body)
            st, _, reply = read_http_response(s, first[len(b"HTTP/1.1 100 Continue\r\n\r\n"):])
            self.assertEqual(st, 200, reply)
            self.assertEqual(reply["count"], 1)
        finally:
            s.close()


class Errors(TestCase):
    def test_400_bad_bodies(self):
        cases = [
            ('{"data":', "bad_json"),
            ('{"data":1} x', "bad_json"),
            ("[]", "bad_message"),
            ('{"data":1,"extra":2}', "bad_message"),
            ('{"data":1,"data":2}', "bad_message"),
            ('{"event":"bad event","data":1}', "bad_event"),
            ('{"event":"","data":1}', "bad_event"),
            ('{"event":"%s","data":1}' % ("e" * 65), "bad_event"),
            ('{"event":7,"data":1}', "bad_event"),
            ('"just a string"', "bad_message"),
            ('[{"data":1},2]', "bad_message"),
            ('{"data":"\x01"}', "bad_json"),
            ("", "bad_json"),
        ]
        for body, code in cases:
            with self.subTest(body=body):
                self.assert_status(self.gw.http("POST", "/v1/topics/chatbot/e/messages", body,
                                                {"Content-Type": "application/json"}), 400, code)
        # Nothing of the refused bodies was stored.
        self.assert_status(self.gw.http("GET", "/v1/topics/chatbot/e"), 404, "not_found")

    def test_400_bad_names_and_text(self):
        self.assert_status(self.gw.http("POST", "/v1/topics/chatbot/.hidden/messages", {"data": 1}), 400, "bad_name")
        self.assert_status(self.gw.http("POST", "/v1/topics/Chat/x/messages", {"data": 1}), 400, "bad_name")
        self.assert_status(self.gw.http("GET", "/v1/topics/chatbot/%s" % ("x" * 129)), 400, "bad_name")
        self.assert_status(self.gw.http("POST", "/v1/topics/chatbot/t/messages", b"\xff\xfe",
                                        {"Content-Type": "text/plain"}), 400, "bad_text")
        self.assert_status(self.gw.http("GET", "/v1/ws"), 400, "bad_request")
        self.assert_status(self.gw.http("GET", "/v1/topics/chatbot/x/events",
                                        headers={"Last-Event-ID": "abc"}), 400, "bad_request")

    def test_400_post_without_body_framing(self):
        s = socket.create_connection(("127.0.0.1", self.gw.port), timeout=5)
        try:
            s.sendall(b"POST /v1/topics/chatbot/x/messages HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Type: application/json\r\n\r\n")
            st, hdrs, body = read_http_response(s)
            self.assertEqual(st, 400)
            self.assertEqual(body["error"]["code"], "bad_request")
        finally:
            s.close()

    def test_404s(self):
        self.assert_status(self.gw.http("GET", "/v1/nope"), 404, "not_found")
        self.assert_status(self.gw.http("GET", "/v1/topics/chatbot"), 404, "not_found")
        self.assert_status(self.gw.http("GET", "/v1/topics/chatbot/x/other"), 404, "not_found")
        self.assert_status(self.gw.http("GET", "/v1/topics/chatbot/x/messages/"), 404, "not_found")
        self.assert_status(self.gw.http("POST", "/v1/topics/nope/x/messages", {"data": 1}), 404, "unknown_parent")
        self.assert_status(self.gw.http("GET", "/v1/topics/nope/x/events"), 404, "unknown_parent")
        self.assert_status(self.gw.http("GET", "/healthz/x"), 404, "not_found")

    def test_405_with_allow(self):
        st, hdrs, body = self.assert_status(
            self.gw.http("PUT", "/v1/topics/chatbot/x/messages", {"data": 1}), 405, "method_not_allowed")
        self.assertEqual(hdrs["allow"], "GET, POST, OPTIONS")
        st, hdrs, body = self.assert_status(self.gw.http("DELETE", "/v1/topics/chatbot/x/events"), 405,
                                            "method_not_allowed")
        self.assertEqual(hdrs["allow"], "GET, OPTIONS")
        st, hdrs, body = self.assert_status(self.gw.http("POST", "/v1/topics/chatbot/x", {"data": 1}), 405,
                                            "method_not_allowed")
        self.assertEqual(hdrs["allow"], "GET, DELETE, OPTIONS")
        st, hdrs, _ = self.assert_status(self.gw.http("POST", "/healthz", {}), 405, "method_not_allowed")
        self.assertEqual(hdrs["allow"], "GET, OPTIONS")

    def test_415_content_types(self):
        self.assert_status(self.gw.http("POST", "/v1/topics/chatbot/x/messages", "<a/>",
                                        {"Content-Type": "application/xml"}), 415, "unsupported_media_type")
        self.assert_status(self.gw.http("POST", "/v1/topics/chatbot/x/messages", "{}"), 415,
                           "unsupported_media_type")

    def test_413_message_over_parent_limit(self):
        self.assert_status(self.gw.http("POST", "/v1/topics/tiny/x/messages", {"data": "x" * 2000}), 413,
                           "too_large")
        self.gw.publish("tiny/x", {"data": "x" * 500})


class Limits(TestCase):
    CONFIG = {"limits": {"max_body_bytes": 4096, "max_batch": 10, "max_line_bytes": 2048}}

    def test_413_body_and_batch_and_line(self):
        self.assert_status(self.gw.http("POST", "/v1/topics/chatbot/x/messages", {"data": "x" * 5000}), 413,
                           "too_large")
        self.assert_status(self.gw.http("POST", "/v1/topics/chatbot/x/messages",
                                        [{"data": i} for i in range(11)]), 413, "too_many_messages")
        self.gw.publish("chatbot/x", [{"data": i} for i in range(10)])
        st, _, body = self.gw.http("POST", "/v1/topics/chatbot/y/messages",
                                   '{"data":1}\n{"data":"%s"}\n' % ("x" * 3000),
                                   {"Content-Type": "application/x-ndjson"})
        self.assertEqual(st, 413, body)
        self.assertEqual(body["error"]["code"], "too_large")
        # The line before the long one was appended, and the reply says so.
        self.assertEqual((body["count"], body["first_offset"]), (1, 0))
        self.assertEqual([m["data"] for m in self.gw.history("chatbot/y")], [1])


class Busy(TestCase):
    # A tiny append queue: concurrent publishes must overflow it while a batch is being synced.
    CONFIG = {"storage": {"queue_max_bytes": 1024}}

    def test_429_when_the_append_queue_is_full(self):
        statuses = []
        lock = threading.Lock()

        def worker(n):
            for i in range(15):
                st, hdrs, body = self.gw.http("POST", "/v1/topics/chatbot/busy%d/messages" % n,
                                              {"data": "x" * 900})
                with lock:
                    statuses.append((st, hdrs.get("retry-after"), body))

        for _ in range(10):
            threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            if any(st == 429 for st, _, _ in statuses):
                break
        busy = [s for s in statuses if s[0] == 429]
        self.assertTrue(busy, "no 429 in %d publishes" % len(statuses))
        self.assertEqual(busy[0][1], "1")
        self.assertEqual(busy[0][2]["error"]["code"], "busy")
        self.assertTrue(all(st in (200, 429) for st, _, _ in statuses), statuses[:5])


class StorageFailure(TestCase):
    # The engine's fault-injection seam: the first log write fails with ENOSPC.
    CONFIG = {"testing": {"fail_write_after": 1, "fail_errno": 28}}

    def test_507_and_degraded_health(self):
        st, _, body = self.gw.http("POST", "/v1/topics/chatbot/full/messages", {"data": 1})
        self.assertEqual(st, 507, body)
        self.assertIn(body["error"]["code"], ("storage_full", "storage_failed"))
        self.assertEqual(body["count"], 0)
        st, _, body = self.gw.http("POST", "/v1/topics/chatbot/full/messages", {"data": 2})
        self.assertEqual(st, 507, body)
        st, _, health = self.gw.http("GET", "/healthz")
        self.assertEqual(st, 503)
        self.assertEqual(health["status"], "degraded")


class Misc(TestCase):
    def test_healthz_and_metrics(self):
        st, hdrs, body = self.gw.http("GET", "/healthz")
        self.assertEqual((st, body), (200, {"status": "ok"}))

        def metric(text, name):
            for line in text.splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[1])
            raise AssertionError("no metric " + name)

        st, hdrs, text = self.gw.http("GET", "/metrics")
        self.assertEqual(st, 200)
        self.assertTrue(hdrs["content-type"].startswith("text/plain"))
        text = text.decode()
        before = metric(text, "litegate_messages_published_total")
        self.gw.publish("chatbot/m", [{"data": 1}, {"data": 2}, {"data": 3}])
        sse = self.gw.sse("/v1/topics/chatbot/m/events")
        self.addCleanup(sse.close)
        sse.messages(3)
        text = self.gw.http("GET", "/metrics")[2].decode()
        self.assertEqual(metric(text, "litegate_messages_published_total"), before + 3)
        self.assertGreaterEqual(metric(text, "litegate_messages_delivered_total"), 3)
        self.assertEqual(metric(text, "litegate_sse_connections"), 1)
        self.assertGreaterEqual(metric(text, "litegate_lite_topics"), 1)
        self.assertGreater(metric(text, "litegate_log_bytes"), 0)
        self.assertGreaterEqual(metric(text, "litegate_publish_latency_seconds_count"), 1)
        self.assertGreaterEqual(metric(text, "litegate_delivery_latency_seconds_count"), 3)
        self.assertIn('litegate_publish_latency_seconds_bucket{le="+Inf"}', text)

    def test_cors(self):
        st, hdrs, _ = self.gw.http("OPTIONS", "/v1/topics/chatbot/x/messages",
                                   headers={"Origin": "http://allowed.example",
                                            "Access-Control-Request-Method": "POST"})
        self.assertEqual(st, 204)
        self.assertEqual(hdrs["access-control-allow-origin"], "http://allowed.example")
        self.assertEqual(hdrs["access-control-allow-methods"], "GET, POST, OPTIONS")
        self.assertIn("last-event-id", hdrs["access-control-allow-headers"])
        st, hdrs, _ = self.gw.http("GET", "/v1/topics/chatbot/x/messages",
                                   headers={"Origin": "http://allowed.example"})
        self.assertEqual(hdrs.get("access-control-allow-origin"), "http://allowed.example")
        self.assertIn("litegate-gap", hdrs.get("access-control-expose-headers", ""))
        st, hdrs, _ = self.gw.http("GET", "/healthz", headers={"Origin": "http://evil.example"})
        self.assertEqual(st, 200)
        self.assertNotIn("access-control-allow-origin", hdrs)

    def test_static_files(self):
        st, hdrs, body = self.gw.http("GET", "/")
        self.assertEqual(st, 200)
        self.assertIn(b"ok", body)
        self.assertTrue(hdrs["content-type"].startswith("text/html"))
        st, _, _ = self.gw.http("GET", "/missing.html")
        self.assertEqual(st, 404)

    def test_requests_after_static_files_on_one_connection(self):
        # A browser loads the page and its scripts, then opens its EventSource on the same
        # kept-alive connection: each request after a file (or a missing one) must be served.
        self.gw.publish("chatbot/page", {"event": "token", "data": "hi"})
        conn = http.client.HTTPConnection("127.0.0.1", self.gw.port, timeout=10)
        try:
            for path in ("/", "/missing.html", "/index.html"):
                conn.request("GET", path)
                resp = conn.getresponse()
                resp.read()
                self.assertIn(resp.status, (200, 404), path)
            conn.request("GET", "/healthz")
            resp = conn.getresponse()
            self.assertEqual((resp.status, json.loads(resp.read())["status"]), (200, "ok"))
            conn.request("GET", "/v1/topics/chatbot/page/events", headers={"Accept": "text/event-stream"})
            resp = conn.getresponse()
            self.assertEqual(resp.status, 200)
            seen = b""
            while not seen.endswith(b'data: "hi"\n'):  # a stall times out (10 s) and fails
                line = resp.fp.readline()
                self.assertTrue(line, "the stream ended early: %r" % seen)
                seen += line
            self.assertIn(b'id: 0\nevent: token\ndata: "hi"\n', seen)
        finally:
            conn.close()


class CommandLine(unittest.TestCase):
    def run_bin(self, *args, timeout=10):
        return subprocess.run([harness.binary_path()] + list(args), capture_output=True, timeout=timeout,
                              cwd=tempfile.gettempdir())

    def test_help_and_version(self):
        r = self.run_bin("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn(b"--listen", r.stdout)
        r = self.run_bin("--version")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout.decode(), r"^litegate \d+\.\d+\.\d+")

    def test_bad_flags_exit_2(self):
        for args, needle in [(["--bogus"], b"--bogus"), (["--listen", "nope"], b"--listen"),
                             (["--listen", "127.0.0.1:70000"], b"--listen"),
                             (["--log-level", "loud"], b"--log-level"), (["extra"], b"extra"),
                             (["--config"], b"--config"), (["--config", "/nonexistent.json"], b"nonexistent")]:
            with self.subTest(args=args):
                r = self.run_bin(*args)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(needle, r.stderr)

    def test_bad_config_names_the_field(self):
        cases = [
            ({"heartbeat_s": "x"}, b"heartbeat_s"),
            ({"limits": {"max_body_bytes": 1}}, b"limits.max_body_bytes"),
            ({"limits": {"nope": 1}}, b"limits.nope"),
            ({"durability": "sometimes"}, b"durability"),
            ({"parents": [{"name": "Bad"}]}, b"parents[0].name"),
            ({"parents": [{"name": "a"}, {"name": "a"}]}, b"parents[1].name"),
            ({"listen": "localhost"}, b"listen"),
            ({"unknown_key": 1}, b"unknown_key"),
        ]
        with tempfile.TemporaryDirectory() as d:
            for cfg, needle in cases:
                with self.subTest(cfg=cfg):
                    path = os.path.join(d, "c.json")
                    with open(path, "w") as f:
                        json.dump(cfg, f)
                    r = self.run_bin("--config", path)
                    self.assertEqual(r.returncode, 2, r.stderr)
                    self.assertIn(needle, r.stderr)
            path = os.path.join(d, "broken.json")
            with open(path, "w") as f:
                f.write("{ not json")
            r = self.run_bin("--config", path)
            self.assertEqual(r.returncode, 2)
            self.assertIn(b"line 1", r.stderr)

    def test_port_in_use_exits_1(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        try:
            with tempfile.TemporaryDirectory() as d:
                r = self.run_bin("--listen", "127.0.0.1:%d" % port, "--data-dir", os.path.join(d, "data"),
                                 "--log-level", "error")
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertIn(b"listen", r.stderr)
        finally:
            s.close()


if __name__ == "__main__":
    harness.main()
