"""WebSocket transport: many topics on one connection, publish with acks, ping, unsubscribe,
gap/reset, fragment reassembly, and the close codes for oversized and binary messages."""

import json
import socket
import time

import harness
from harness import TestCase, WSClosed


def is_type(t, topic=None):
    return lambda m: m.get("type") == t and (topic is None or m.get("topic") == topic)


class WebSocket(TestCase):
    CONFIG = {"limits": {"max_ws_message_bytes": 65536, "max_ws_topics": 50}}

    def ws(self, **kw):
        ws = self.gw.ws(**kw)
        self.addCleanup(ws.close)
        return ws

    def test_many_topics_on_one_connection(self):
        ws = self.ws()
        topics = ["chatbot/w%d" % i for i in range(20)]
        for t in topics[:10]:
            self.gw.publish(t, [{"event": "token", "data": "%s-%d" % (t, j)} for j in range(3)])
        for i, t in enumerate(topics):
            ws.send({"op": "subscribe", "topic": t, "req": i})
        seen = {t: [] for t in topics}
        subscribed = set()
        deadline = time.time() + 10
        while (len(subscribed) < 20 or any(len(seen[t]) < 3 for t in topics[:10])) and time.time() < deadline:
            m = ws.recv()
            if m["type"] == "subscribed":
                self.assertEqual(m["from"], 0)
                self.assertEqual(m["req"], topics.index(m["topic"]))
                subscribed.add(m["topic"])
            elif m["type"] == "message":
                self.assertIn(m["topic"], subscribed)  # "subscribed" comes before the topic's messages
                seen[m["topic"]].append((m["offset"], m["event"], m["data"]))
        for t in topics[:10]:
            self.assertEqual(seen[t], [(j, "token", "%s-%d" % (t, j)) for j in range(3)])
        # Live messages on topics added at any time reach the same connection.
        for t in topics[10:]:
            self.gw.publish(t, {"data": t})
        for _ in range(10):
            m, _ = ws.recv_until(is_type("message"))
            seen[m["topic"]].append((m["offset"], m["event"], m["data"]))
        for t in topics[10:]:
            self.assertEqual(seen[t], [(0, "message", t)])

    def test_publish_ack_and_delivery(self):
        ws = self.ws()
        ws.send({"op": "subscribe", "topic": "agent/p", "from": "tail"})
        m, _ = ws.recv_until(is_type("subscribed"))
        self.assertEqual(m["from"], 0)
        for i in range(5):
            ws.send({"op": "publish", "topic": "agent/p", "event": "step", "data": {"i": i, "f": 0.5},
                     "req": "r%d" % i})
        acks, msgs = {}, []
        while len(acks) < 5 or len(msgs) < 5:
            m = ws.recv()
            if m["type"] == "ack":
                acks[m["req"]] = m["offset"]
                self.assertEqual(m["topic"], "agent/p")
            elif m["type"] == "message":
                msgs.append(m)
        self.assertEqual(acks, {"r%d" % i: i for i in range(5)})
        self.assertEqual([(m["offset"], m["event"], m["data"]) for m in msgs],
                         [(i, "step", {"i": i, "f": 0.5}) for i in range(5)])
        # The HTTP side sees the same messages.
        self.assertEqual([m["data"]["i"] for m in self.gw.history("agent/p")], list(range(5)))

    def test_publish_with_a_key_is_acknowledged_once_stored(self):
        ws = self.ws()
        for req in (1, 2):
            ws.send({"op": "publish", "topic": "chatbot/wk", ("key", "id")[req - 1]: "tok-7", "data": "x",
                     "req": req})
            m, _ = ws.recv_until(is_type("ack"))
            self.assertEqual((m["req"], m["offset"]), (req, 0))
            self.assertEqual(m.get("duplicate", False), req == 2)
        self.assertEqual(len(self.gw.history("chatbot/wk")), 1)

    def test_ping_unsubscribe_and_errors(self):
        ws = self.ws()
        ws.send({"op": "ping", "req": 1})
        self.assertEqual(ws.recv(), {"type": "pong", "req": 1})
        ws.send({"op": "subscribe", "topic": "chatbot/u"})
        ws.recv_until(is_type("subscribed"))
        ws.send({"op": "unsubscribe", "topic": "chatbot/u", "req": 2})
        m, _ = ws.recv_until(is_type("unsubscribed"))
        self.assertEqual(m, {"type": "unsubscribed", "topic": "chatbot/u", "req": 2})
        self.gw.publish("chatbot/u", {"data": "not for you"})
        ws.send({"op": "ping", "req": 3})
        m, skipped = ws.recv_until(is_type("pong"))
        self.assertEqual([s for s in skipped if s["type"] == "message"], [])
        errors = [
            ({"op": "unsubscribe", "topic": "chatbot/u", "req": 4}, "not_subscribed"),
            ({"op": "subscribe", "topic": "nope/x", "req": 5}, "unknown_parent"),
            ({"op": "subscribe", "topic": "chatbot/.x", "req": 6}, "bad_topic"),
            ({"op": "dance", "req": 7}, "bad_request"),
            ({"op": "publish", "topic": "chatbot/u", "event": "bad event", "req": 8}, "bad_event"),
            ({"op": "publish", "topic": "tiny/x", "data": "x" * 2000, "req": 9}, "too_large"),
            ({"op": "subscribe", "topic": "chatbot/u", "from": -1, "req": 10}, "bad_request"),
            ({"op": "ping", "extra": 1, "req": 11}, "bad_request"),
        ]
        for frame, code in errors:
            with self.subTest(frame=frame):
                ws.send(frame)
                m, _ = ws.recv_until(lambda x: x["type"] in ("error", "ack", "subscribed"))
                self.assertEqual((m["type"], m["code"], m["req"]), ("error", code, frame["req"]))
                self.assertTrue(m["message"])
        ws.send_text("{not json")
        m, _ = ws.recv_until(is_type("error"))
        self.assertEqual(m["code"], "bad_json")
        self.assertNotIn("req", m)
        # The connection survives all of that.
        ws.send({"op": "ping", "req": 12})
        self.assertEqual(ws.recv_until(is_type("pong"))[0]["req"], 12)

    def test_too_many_topics(self):
        ws = self.ws()
        for i in range(50):
            ws.send({"op": "subscribe", "topic": "chatbot/m%d" % i})
        for _ in range(50):
            ws.recv_until(is_type("subscribed"))
        ws.send({"op": "subscribe", "topic": "chatbot/one-more", "req": 1})
        m, _ = ws.recv_until(is_type("error"))
        self.assertEqual(m["code"], "too_many_topics")

    def test_fragmented_messages_are_reassembled(self):
        ws = self.ws()
        ws.send({"op": "publish", "topic": "chatbot/frag", "data": "z" * 3000, "req": 1}, fragments=7)
        m, _ = ws.recv_until(is_type("ack"))
        self.assertEqual((m["req"], m["offset"]), (1, 0))
        self.assertEqual(self.gw.history("chatbot/frag")[0]["data"], "z" * 3000)
        # A ping between fragments is fine (control frames may interleave).
        data = json.dumps({"op": "ping", "req": 2}).encode()
        ws.send_frame(0x1, data[:5], fin=False)
        ws.send_frame(0x9, b"hi")
        ws.send_frame(0x0, data[5:], fin=True)
        m, _ = ws.recv_until(is_type("pong"))
        self.assertEqual(m["req"], 2)

    def test_oversized_message_closes_with_1009(self):
        ws = self.ws()
        ws.send({"op": "publish", "topic": "chatbot/big", "data": "x" * 70000}, fragments=5)
        with self.assertRaises(WSClosed) as cm:
            while True:
                ws.recv()
        self.assertEqual(cm.exception.code, 1009)
        self.assert_status(self.gw.http("GET", "/v1/topics/chatbot/big"), 404, "not_found")

    def test_binary_frame_closes_with_1003(self):
        ws = self.ws()
        ws.send_frame(0x2, b"\x00\x01")
        with self.assertRaises(WSClosed) as cm:
            while True:
                ws.recv()
        self.assertEqual(cm.exception.code, 1003)

    def test_gap_and_reset_over_websocket(self):
        self.gw.publish("short/wg", [{"data": i} for i in range(12)])
        self.gw.publish("chatbot/wr", [{"data": i} for i in range(2)])
        ws = self.ws()
        ws.send({"op": "subscribe", "topic": "short/wg", "from": 1})
        m, _ = ws.recv_until(is_type("gap"))
        self.assertEqual(m, {"type": "gap", "topic": "short/wg", "from": 1, "to": 7})
        offs = [ws.recv_until(is_type("message", "short/wg"))[0]["offset"] for _ in range(5)]
        self.assertEqual(offs, [7, 8, 9, 10, 11])
        ws.send({"op": "subscribe", "topic": "chatbot/wr", "from": 30})
        m, _ = ws.recv_until(is_type("reset"))
        self.assertEqual(m, {"type": "reset", "topic": "chatbot/wr", "from": 30, "first_offset": 0,
                             "next_offset": 2})
        offs = [ws.recv_until(is_type("message", "chatbot/wr"))[0]["offset"] for _ in range(2)]
        self.assertEqual(offs, [0, 1])

    def test_upgrade_rules(self):
        with self.assertRaises(ConnectionError):
            self.gw.ws(path="/v1/other")
        with self.assertRaises(ConnectionError):
            self.gw.ws(headers={"Origin": "http://evil.example"})
        ws = self.ws(headers={"Origin": "http://allowed.example"})
        ws.send({"op": "ping"})
        self.assertEqual(ws.recv(), {"type": "pong"})
        ws2 = self.ws(headers={"Origin": "http://127.0.0.1:%d" % self.gw.port})  # same origin
        ws2.send({"op": "ping"})
        self.assertEqual(ws2.recv(), {"type": "pong"})

    def test_server_pings_an_idle_connection(self):
        ws = self.ws()
        op, fin, payload = ws.recv_frame(timeout=3)  # heartbeat_s is 1
        self.assertEqual(op, 0x9)


if __name__ == "__main__":
    harness.main()
