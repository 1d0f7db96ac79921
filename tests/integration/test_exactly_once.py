"""Exactly-once publishing (issue 7) against the real binary: idempotent retries (the
Idempotency-Key header and per-message "id"s) and conditional appends (expected offsets).

- A request sent, its connection closed before the reply is read, then retried with the same key:
  one copy, the same offsets, "duplicate": true. The same across a SIGKILL and restart.
- Keys expire after their parent's dedup window; keys in one topic do not affect another.
- Expected offsets: match, mismatch (409 with next_offset, nothing appended), 0 for a new topic, two
  producers racing (one 200, one 409), batches, NDJSON lines, WebSocket publishes.
"""

import json
import re
import socket
import subprocess
import threading
import time

import harness
import test_schemas
from harness import ChunkedUpload, TestCase


def ndjson(msgs):
    return "".join(json.dumps(m) + "\n" for m in msgs)


class Base(TestCase):
    def post(self, topic, body, headers=None, query=""):
        return self.gw.http("POST", "/v1/topics/%s/messages%s" % (topic, query), body, headers)

    def send_and_hang_up(self, topic, body, headers):
        """Send a whole publish request and close the connection without reading the reply."""
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        req = "POST /v1/topics/%s/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n" % (
            topic, len(data))
        req += "".join("%s: %s\r\n" % kv for kv in h.items())
        s = socket.create_connection(("127.0.0.1", self.gw.port), timeout=5)
        s.sendall(req.encode() + b"\r\n" + data)
        s.close()

    def wait_history(self, topic, n, timeout=10):
        """The topic's messages once there are at least @n of them."""
        deadline = time.time() + timeout
        while True:
            st, _, body = self.gw.http("GET", "/v1/topics/%s/messages?limit=1000" % topic)
            if st == 200 and len(body["messages"]) >= n:
                return body["messages"]
            if time.time() > deadline:
                self.fail("%s: fewer than %d messages after %ss: %r" % (topic, n, timeout, body))
            time.sleep(0.02)

    def datas(self, topic):
        return [m["data"] for m in self.gw.history(topic)]

    def metric(self, name):
        st, _, body = self.gw.http("GET", "/metrics")
        self.assertEqual(st, 200)
        m = re.search(r"^%s (\d+)$" % re.escape(name), body.decode(), re.M)
        self.assertIsNotNone(m, name)
        return int(m.group(1))


class IdempotentRetries(Base):
    def test_request_key_retry_after_the_connection_dropped(self):
        self.gw.publish("chatbot/r1", [{"data": i} for i in range(3)])
        batch = [{"event": "token", "data": "a"}, {"event": "token", "data": "b"}]
        self.send_and_hang_up("chatbot/r1", batch, {"Idempotency-Key": "turn-7.try"})
        stored = self.wait_history("chatbot/r1", 5)
        self.assertEqual([m["offset"] for m in stored[3:]], [3, 4])
        # The retry appends nothing and is answered as the first attempt was (offsets 3..4).
        st, _, again = self.post("chatbot/r1", batch, {"Idempotency-Key": "turn-7.try"})
        self.assertEqual(st, 200, again)
        self.assertEqual(again, {"topic": "chatbot/r1", "first_offset": 3, "last_offset": 4, "count": 2,
                                 "duplicate": True, "duplicates": [0, 1]})
        self.assertEqual(self.datas("chatbot/r1"), [0, 1, 2, "a", "b"])
        # One message, text/plain: the same.
        self.send_and_hang_up("chatbot/r1", "hello", {"Idempotency-Key": "t1", "Content-Type": "text/plain"})
        self.wait_history("chatbot/r1", 6)
        st, _, again = self.post("chatbot/r1", "hello", {"Idempotency-Key": "t1", "Content-Type": "text/plain"})
        self.assertEqual((st, again), (200, {"topic": "chatbot/r1", "first_offset": 5, "last_offset": 5,
                                             "count": 1, "duplicate": True}))
        self.assertEqual(self.datas("chatbot/r1"), [0, 1, 2, "a", "b", "hello"])
        self.assertEqual(self.metric("litegate_engine_duplicates_total"), 3)

    def test_message_ids_retry_after_the_connection_dropped(self):
        # One JSON message with an id, then an NDJSON upload with ids.
        self.send_and_hang_up("chatbot/r2", {"id": "p-0", "data": "prompt"}, {})
        self.wait_history("chatbot/r2", 1)
        st, _, again = self.post("chatbot/r2", {"id": "p-0", "data": "prompt"})
        self.assertEqual((st, again), (200, {"topic": "chatbot/r2", "first_offset": 0, "last_offset": 0,
                                             "count": 1, "duplicate": True}))
        lines = [{"event": "token", "id": "0-%d" % i, "data": "t%d" % i} for i in range(4)]
        self.send_and_hang_up("chatbot/r2", ndjson(lines), {"Content-Type": "application/x-ndjson"})
        self.wait_history("chatbot/r2", 5)
        # The retry carries the four sent lines and two new ones: only the new ones are appended.
        lines += [{"event": "token", "id": "0-%d" % i, "data": "t%d" % i} for i in (4, 5)]
        st, _, again = self.post("chatbot/r2", ndjson(lines), {"Content-Type": "application/x-ndjson"})
        self.assertEqual(st, 200, again)
        self.assertEqual(again, {"topic": "chatbot/r2", "first_offset": 1, "last_offset": 6, "count": 6,
                                 "duplicates": [0, 1, 2, 3]})
        self.assertEqual(self.datas("chatbot/r2"), ["prompt"] + ["t%d" % i for i in range(6)])
        # Retried once more, whole: nothing new.
        st, _, again = self.post("chatbot/r2", ndjson(lines), {"Content-Type": "application/x-ndjson"})
        self.assertEqual(again, {"topic": "chatbot/r2", "first_offset": 1, "last_offset": 6, "count": 6,
                                 "duplicate": True, "duplicates": [0, 1, 2, 3, 4, 5]})
        self.assertEqual(len(self.gw.history("chatbot/r2")), 7)

    def test_a_long_upload_with_ids_retried(self):
        # Long enough to go to the engine in many appends: positions stay right across them.
        t = "chatbot/long"
        lines = [{"event": "token", "id": "9-%d" % i, "data": i} for i in range(600)]
        first = self.post(t, ndjson(lines[:300]), {"Content-Type": "application/x-ndjson"})[2]
        self.assertEqual(first, {"topic": t, "first_offset": 0, "last_offset": 299, "count": 300})
        st, _, again = self.post(t, ndjson(lines), {"Content-Type": "application/x-ndjson"})
        self.assertEqual(st, 200, again)
        self.assertEqual(again, {"topic": t, "first_offset": 0, "last_offset": 599, "count": 600,
                                 "duplicates": list(range(300))})
        up = ChunkedUpload(self.gw.port, "/v1/topics/%s/messages" % t)
        try:
            for i in range(0, 600, 50):
                up.send(ndjson(lines[i:i + 50]))
            st, _, r = up.finish()
        finally:
            up.close()
        self.assertEqual((st, r), (200, {"topic": t, "first_offset": 0, "last_offset": 599, "count": 600,
                                         "duplicate": True, "duplicates": list(range(600))}))
        self.assertEqual(self.datas(t), list(range(600)))

    def test_retry_across_sigkill_and_restart(self):
        self.gw.publish("chatbot/k1", {"data": "before"})
        self.send_and_hang_up("chatbot/k1", [{"data": 1}, {"data": 2}], {"Idempotency-Key": "req-9"})
        lines = [{"id": "L%d" % i, "data": "l%d" % i} for i in range(3)]
        self.send_and_hang_up("chatbot/k1", ndjson(lines), {"Content-Type": "application/x-ndjson"})
        self.wait_history("chatbot/k1", 6)
        self.gw.kill()  # SIGKILL: the keys survive only through the log records
        self.gw.start()
        st, _, again = self.post("chatbot/k1", [{"data": 1}, {"data": 2}], {"Idempotency-Key": "req-9"})
        self.assertEqual(st, 200, again)
        self.assertTrue(again["duplicate"], again)
        st, _, nd = self.post("chatbot/k1", ndjson(lines), {"Content-Type": "application/x-ndjson"})
        self.assertEqual(st, 200, nd)
        self.assertTrue(nd["duplicate"], nd)
        stored = self.gw.history("chatbot/k1")
        # The two hung-up requests ran on two connections: either may have gone first.
        pos = {json.dumps(m["data"]): m["offset"] for m in stored}
        self.assertEqual(len(stored), 6)
        self.assertEqual(sorted(pos), sorted(json.dumps(d) for d in ["before", 1, 2, "l0", "l1", "l2"]))
        self.assertEqual((pos["2"] - pos["1"], pos['"l2"'] - pos['"l0"']), (1, 2))
        self.assertEqual((again["first_offset"], again["last_offset"], again["count"]), (pos["1"], pos["2"], 2))
        self.assertEqual((nd["first_offset"], nd["last_offset"]), (pos['"l0"'], pos['"l2"']))
        # WebSocket publishes keep their ids across the restart too.
        ws = self.gw.ws()
        ws.send({"op": "publish", "topic": "chatbot/k1", "id": "L1", "data": "l1", "req": 1})
        ack, _ = ws.recv_until(lambda m: m.get("type") in ("ack", "error"))
        self.assertEqual(ack, {"type": "ack", "topic": "chatbot/k1", "offset": pos['"l1"'], "duplicate": True,
                               "req": 1})
        ws.close()
        self.assertEqual(len(self.gw.history("chatbot/k1")), 6)

    def test_keys_in_one_topic_do_not_affect_another(self):
        for topic in ("chatbot/a", "chatbot/b", "agent/a"):
            r = self.gw.publish(topic, {"data": topic}, headers={"Idempotency-Key": "same"})
            self.assertEqual(r, {"topic": topic, "first_offset": 0, "last_offset": 0, "count": 1})
            r = self.gw.publish(topic, {"id": "same-id", "data": topic})
            self.assertEqual(r, {"topic": topic, "first_offset": 1, "last_offset": 1, "count": 1})
        # A request key and a message id with the same text are separate too.
        r = self.gw.publish("chatbot/a", {"id": "same", "data": "x"})
        self.assertEqual(r["first_offset"], 2)
        for topic in ("chatbot/a", "chatbot/b", "agent/a"):
            r = self.gw.publish(topic, {"data": topic}, headers={"Idempotency-Key": "same"})
            self.assertEqual(r, {"topic": topic, "first_offset": 0, "last_offset": 0, "count": 1,
                                 "duplicate": True})

    def test_ids_and_keys_are_checked(self):
        t = "chatbot/bad"
        for bad in ("bad key", "", "x" * 129, "é"):
            self.assert_status(self.post(t, {"id": bad, "data": 1}), 400, "bad_message")
            self.assert_status(self.post(t, ndjson([{"data": 0}, {"id": bad, "data": 1}]),
                                         {"Content-Type": "application/x-ndjson"}), 400, "bad_message")
        self.assert_status(self.post(t, {"id": 7, "data": 1}), 400, "bad_message")
        st, _, body = self.assert_status(self.post(t, {"id": "a", "key": "a", "data": 1}), 400, "bad_message")
        self.assertIn("repeated", body["error"]["message"])
        for bad in ("bad key", "x" * 129, "x" * 300, "a/b"):
            st, _, body = self.assert_status(self.post(t, {"data": 1}, {"Idempotency-Key": bad}),
                                             400, "bad_request")
            self.assertIn("Idempotency-Key", body["error"]["message"])
        self.assertEqual(self.post(t, {"data": 1}, {"Idempotency-Key": "x" * 128})[0], 200)
        self.assertEqual(self.post(t, {"id": "y" * 128, "data": 1})[0], 200)
        # The first NDJSON line was fine and is stored; the bad second line ended that request.
        self.assertEqual(self.datas(t), [0] * 4 + [1, 1])
        ws = self.gw.ws()
        ws.send({"op": "publish", "topic": t, "id": "no good", "data": 1, "req": 3})
        err, _ = ws.recv_until(lambda m: m.get("type") == "error")
        self.assertEqual((err["code"], err["req"]), ("bad_request", 3))
        ws.close()


class KeyWindow(Base):
    CONFIG = {"parents": [{"name": "chatbot"}, {"name": "fast", "dedup_window_s": 1, "dedup_max_keys": 3}]}

    def test_keys_expire_after_the_window(self):
        r1 = self.gw.publish("fast/w", {"data": 1}, headers={"Idempotency-Key": "k"})
        self.gw.publish("fast/w", {"id": "m", "data": 2})
        self.assertTrue(self.gw.publish("fast/w", {"data": 1}, headers={"Idempotency-Key": "k"})["duplicate"])
        self.assertTrue(self.gw.publish("fast/w", {"id": "m", "data": 2})["duplicate"])
        # The same keys in a parent with the default window (10 minutes) are still known later.
        self.gw.publish("chatbot/w", {"data": 1}, headers={"Idempotency-Key": "k"})
        time.sleep(2.2)
        r2 = self.gw.publish("fast/w", {"data": 1}, headers={"Idempotency-Key": "k"})
        self.assertEqual(r2, {"topic": "fast/w", "first_offset": 2, "last_offset": 2, "count": 1})
        self.assertNotEqual(r1["first_offset"], r2["first_offset"])
        r3 = self.gw.publish("fast/w", {"id": "m", "data": 2})
        self.assertEqual(r3, {"topic": "fast/w", "first_offset": 3, "last_offset": 3, "count": 1})
        self.assertTrue(self.gw.publish("chatbot/w", {"data": 1}, headers={"Idempotency-Key": "k"})["duplicate"])
        self.assertEqual(self.datas("fast/w"), [1, 2, 1, 2])

    def test_at_most_max_keys_per_topic(self):
        for i in range(4):
            self.gw.publish("fast/m", {"id": "k%d" % i, "data": i})
        # Three keys are remembered: k0, the oldest, was forgotten; k3 is known.
        self.assertTrue(self.gw.publish("fast/m", {"id": "k3", "data": 3})["duplicate"])
        self.assertNotIn("duplicate", self.gw.publish("fast/m", {"id": "k0", "data": 0}))

    def test_window_settings_are_checked(self):
        for bad in ({"dedup_window_s": 0}, {"dedup_window_s": 7 * 86400 + 1}, {"dedup_max_keys": 0},
                    {"dedup_window_s": "10"}):
            gw = harness.Gateway({"parents": [dict({"name": "p"}, **bad)]})
            try:
                r = subprocess.run([harness.binary_path(), "--config", gw.config_path], capture_output=True,
                                   timeout=10)
            finally:
                gw.close()
            self.assertEqual(r.returncode, 2, r)
            self.assertIn(b"parents[0].dedup_", r.stderr + r.stdout)


class ConditionalAppends(Base):
    def test_match_mismatch_and_new_topics(self):
        t = "chatbot/c1"
        h = lambda n: {"Litegate-Expected-Offset": str(n)}
        st, _, r = self.post(t, {"data": "a"}, h(0))  # 0: the topic must be new
        self.assertEqual((st, r), (200, {"topic": t, "first_offset": 0, "last_offset": 0, "count": 1}))
        st, _, r = self.post(t, {"data": "b"}, h(1))
        self.assertEqual((st, r["first_offset"]), (200, 1))
        st, _, r = self.post(t, {"data": "late"}, h(1))  # someone else got there first
        self.assert_status((st, _, r), 409, "offset_mismatch")
        self.assertEqual(r["next_offset"], 2)
        self.assertEqual((r["count"], r["first_offset"]), (0, None))
        st, _, r = self.post(t, {"data": "again"}, h(0))  # not new any more
        self.assert_status((st, _, r), 409, "offset_mismatch")
        self.assertEqual(r["next_offset"], 2)
        st, _, r = self.post(t, {"data": "c"}, query="?expected_offset=2")
        self.assertEqual((st, r["first_offset"]), (200, 2))
        st, _, r = self.post(t, {"data": "x"}, query="?expected_offset=7")
        self.assert_status((st, _, r), 409, "offset_mismatch")
        self.assertEqual(r["next_offset"], 3)
        st, _, r = self.post(t, "text", dict(h(3), **{"Content-Type": "text/plain"}))
        self.assertEqual((st, r["first_offset"]), (200, 3))
        self.assertEqual(self.datas(t), ["a", "b", "c", "text"])
        # A topic that does not exist has next offset 0: anything else is refused and creates nothing.
        st, _, r = self.post("chatbot/c-new", {"data": 1}, h(4))
        self.assert_status((st, _, r), 409, "offset_mismatch")
        self.assertEqual(r["next_offset"], 0)
        self.assertEqual(self.gw.http("GET", "/v1/topics/chatbot/c-new")[0], 404)
        # An expectation in the message itself (JSON) works like the header.
        st, _, r = self.post(t, {"data": "d", "expected_offset": 4})
        self.assertEqual((st, r["first_offset"]), (200, 4))
        # Malformed or contradicting expectations are 400.
        self.assert_status(self.post(t, {"data": 1}, h("x")), 400, "bad_request")
        self.assert_status(self.post(t, {"data": 1}, h(-1)), 400, "bad_request")
        self.assert_status(self.post(t, {"data": 1}, query="?expected_offset=abc"), 400, "bad_request")
        self.assert_status(self.post(t, {"data": 1}, h(5), "?expected_offset=6"), 400, "bad_request")
        self.assert_status(self.post(t, {"data": 1, "expected_offset": 6}, h(5)), 400, "bad_message")
        self.assert_status(self.post(t, {"data": 1, "expected_offset": "5"}), 400, "bad_message")
        self.assertEqual(len(self.gw.history(t)), 5)

    def test_a_retry_is_a_duplicate_not_a_mismatch(self):
        t = "chatbot/c2"
        h = {"Litegate-Expected-Offset": "0", "Idempotency-Key": "first-turn"}
        first = self.gw.publish(t, [{"data": 1}, {"data": 2}], headers=h)
        again = self.gw.publish(t, [{"data": 1}, {"data": 2}], headers=h)
        self.assertEqual(again, dict(first, duplicate=True, duplicates=[0, 1]))
        # Message ids likewise.
        r = self.gw.publish(t, {"id": "m2", "data": 3, "expected_offset": 2})
        self.assertEqual(self.gw.publish(t, {"id": "m2", "data": 3, "expected_offset": 2}),
                         dict(r, duplicate=True))
        self.assertEqual(self.datas(t), [1, 2, 3])

    def test_two_producers_racing_one_wins(self):
        t = "chatbot/race"
        for rnd in range(25):
            barrier = threading.Barrier(2)
            results = [None, None]

            def producer(i):
                conn = harness.http.client.HTTPConnection("127.0.0.1", self.gw.port, timeout=10)
                conn.connect()
                body = json.dumps({"data": "p%d-r%d" % (i, rnd)})
                barrier.wait()
                conn.request("POST", "/v1/topics/%s/messages" % t, body,
                             {"Content-Type": "application/json", "Litegate-Expected-Offset": str(rnd)})
                resp = conn.getresponse()
                results[i] = (resp.status, json.loads(resp.read()))
                conn.close()

            threads = [threading.Thread(target=producer, args=(i,)) for i in range(2)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            self.assertEqual(sorted(r[0] for r in results), [200, 409], results)
            win = [r[1] for r in results if r[0] == 200][0]
            lose = [r[1] for r in results if r[0] == 409][0]
            self.assertEqual(win["first_offset"], rnd)
            self.assertEqual((lose["error"]["code"], lose["next_offset"]), ("offset_mismatch", rnd + 1))
        self.assertEqual(len(self.gw.history(t)), 25)

    def test_batches(self):
        t = "chatbot/cb"
        self.gw.publish(t, [{"data": 0}, {"data": 1}])
        r = self.gw.publish(t, [{"data": i} for i in range(2, 5)], headers={"Litegate-Expected-Offset": "2"})
        self.assertEqual(r, {"topic": t, "first_offset": 2, "last_offset": 4, "count": 3})
        st, _, r = self.post(t, [{"data": "no"}] * 3, {"Litegate-Expected-Offset": "2"})
        self.assert_status((st, _, r), 409, "offset_mismatch")
        self.assertEqual((r["next_offset"], r["count"]), (5, 0))
        # In the first item instead of the header.
        r = self.gw.publish(t, [{"data": 5, "expected_offset": 5}, {"data": 6}])
        self.assertEqual((r["first_offset"], r["last_offset"]), (5, 6))
        # Only the first item may carry one: the rest follow it contiguously.
        st, _, r = self.assert_status(self.post(t, [{"data": 7}, {"data": 8, "expected_offset": 8}]),
                                      400, "bad_message")
        self.assertEqual(self.datas(t), list(range(7)))

    def test_ndjson_lines_carry_their_own_expectations(self):
        t = "chatbot/cn"
        # A header expectation applies to the first line; later lines may carry their own.
        lines = [{"data": 0}, {"data": 1}, {"data": 2, "expected_offset": 2}, {"data": 3},
                 {"data": 4, "expected_offset": 4}]
        st, _, r = self.post(t, ndjson(lines), {"Content-Type": "application/x-ndjson",
                                                "Litegate-Expected-Offset": "0"})
        self.assertEqual((st, r), (200, {"topic": t, "first_offset": 0, "last_offset": 4, "count": 5}))
        # A streamed upload: the mismatch at the fourth line ends it with 409, reporting the three
        # lines before it; nothing from that line on is appended, even lines already sent.
        up = ChunkedUpload(self.gw.port, "/v1/topics/%s/messages" % t)
        try:
            up.send(ndjson([{"data": 5}, {"data": 6, "expected_offset": 6}]))
            self.wait_history(t, 7)
            up.send(ndjson([{"data": 7}]))
            up.send(ndjson([{"data": "x", "expected_offset": 7}, {"data": "y"}, {"data": "z"}]))
            st, _, r = up.response()
        finally:
            up.close()
        self.assertEqual(st, 409, r)
        self.assertEqual(r["error"]["code"], "offset_mismatch")
        self.assertEqual(r, dict(r, topic=t, first_offset=5, last_offset=7, count=3, next_offset=8))
        self.assertEqual(self.datas(t), list(range(8)))
        # A mismatch on the first line: nothing appended.
        st, _, r = self.post(t, ndjson([{"data": "n", "expected_offset": 3}, {"data": "m"}]),
                             {"Content-Type": "application/x-ndjson"})
        self.assert_status((st, _, r), 409, "offset_mismatch")
        self.assertEqual((r["count"], r["next_offset"]), (0, 8))
        # Lines with ids and expectations: a retry of the whole upload is all duplicates.
        lines = [{"id": "a", "data": 8, "expected_offset": 8}, {"id": "b", "data": 9},
                 {"id": "c", "data": 10, "expected_offset": 10}]
        first = self.post(t, ndjson(lines), {"Content-Type": "application/x-ndjson"})[2]
        again = self.post(t, ndjson(lines), {"Content-Type": "application/x-ndjson"})[2]
        self.assertEqual(first, {"topic": t, "first_offset": 8, "last_offset": 10, "count": 3})
        self.assertEqual(again, dict(first, duplicate=True, duplicates=[0, 1, 2]))
        self.assertEqual(self.datas(t), list(range(11)))

    def test_websocket_publish(self):
        t = "agent/cw"
        ws = self.gw.ws()
        ws.send({"op": "publish", "topic": t, "data": 0, "expected_offset": 0, "req": 1})
        ack, _ = ws.recv_until(lambda m: m.get("req") == 1)
        self.assertEqual(ack, {"type": "ack", "topic": t, "offset": 0, "req": 1})
        ws.send({"op": "publish", "topic": t, "data": 1, "expected_offset": 0, "req": 2})
        err, _ = ws.recv_until(lambda m: m.get("req") == 2)
        self.assertEqual((err["type"], err["code"], err["next_offset"]), ("error", "offset_mismatch", 1))
        ws.send({"op": "publish", "topic": t, "data": 1, "id": "w1", "expected_offset": 1, "req": 3})
        ack, _ = ws.recv_until(lambda m: m.get("req") == 3)
        self.assertEqual(ack, {"type": "ack", "topic": t, "offset": 1, "req": 3})
        # Its retry: the id is known, so no mismatch.
        ws.send({"op": "publish", "topic": t, "data": 1, "id": "w1", "expected_offset": 1, "req": 4})
        ack, _ = ws.recv_until(lambda m: m.get("req") == 4)
        self.assertEqual(ack, {"type": "ack", "topic": t, "offset": 1, "duplicate": True, "req": 4})
        ws.send({"op": "publish", "topic": t, "data": 1, "expected_offset": -1, "req": 5})
        err, _ = ws.recv_until(lambda m: m.get("req") == 5)
        self.assertEqual(err["code"], "bad_request")
        ws.close()
        self.assertEqual(self.datas(t), [0, 1])


class Schemas(Base):
    """The new replies and frames validate against schemas/ (with test_schemas' validator)."""

    def check(self, value, name):
        schema = test_schemas.load(name)
        self.assertEqual(test_schemas.errors(value, schema, schema), [], "%s: %r" % (name, value))

    def refuse(self, value, name):
        schema = test_schemas.load(name)
        self.assertTrue(test_schemas.errors(value, schema, schema), "%s accepted %r" % (name, value))

    def test_replies_and_frames(self):
        t = "chatbot/sch"
        for body in ({"id": "a", "data": 1, "expected_offset": 0}, [{"id": "b", "expected_offset": 1}, {"id": "c"}]):
            self.check(body, "message.schema.json")
            self.check(self.gw.publish(t, body), "publish-reply.schema.json")
            again = self.gw.publish(t, body)
            self.assertTrue(again["duplicate"])
            self.check(again, "publish-reply.schema.json")
        self.refuse({"id": "bad id"}, "message.schema.json")
        self.refuse({"expected_offset": -1}, "message.schema.json")
        st, _, r = self.post(t, {"data": 1}, {"Litegate-Expected-Offset": "0"})
        self.assertEqual(st, 409)
        self.check(r, "error.schema.json")
        st, _, r = self.post(t, ndjson([{"data": 1}, {"data": 2, "expected_offset": 0}]),
                             {"Content-Type": "application/x-ndjson"})
        self.assertEqual((st, r["count"]), (409, 1))
        self.check(r, "error.schema.json")
        ws = self.gw.ws()
        self.addCleanup(ws.close)
        for i, f in enumerate([{"op": "publish", "topic": t, "id": "a", "data": 1},
                               {"op": "publish", "topic": t, "data": 1, "expected_offset": 1}]):
            f["req"] = i
            self.check(f, "ws-client.schema.json")
            ws.send(f)
            m, _ = ws.recv_until(lambda m, i=i: m.get("req") == i)
            self.assertEqual(m["type"], ("ack", "error")[i])
            self.check(m, "ws-server.schema.json")
        self.check({"parents": [{"name": "p", "dedup_window_s": 1, "dedup_max_keys": 1}]}, "config.schema.json")
        self.refuse({"parents": [{"name": "p", "dedup_window_s": 0}]}, "config.schema.json")


if __name__ == "__main__":
    harness.main()
