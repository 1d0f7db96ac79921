"""Server-Sent Events: start points, resume by Last-Event-ID without loss, duplicates or
reordering, heartbeats, gap and reset events, bounded replay, and a stalled reader."""

import json
import socket
import threading
import time

import harness
from harness import TestCase


class Stream(TestCase):
    def test_format_retry_first_and_backlog_from_first_retained(self):
        self.gw.publish("chatbot/f", [{"event": "token", "data": "a"}, {"data": {"k": [1, 2]}}])
        sse = self.gw.sse("/v1/topics/chatbot/f/events")
        self.addCleanup(sse.close)
        self.assertEqual(sse.status, 200)
        self.assertTrue(sse.headers["content-type"].startswith("text/event-stream"))
        self.assertEqual(sse.headers.get("cache-control"), "no-cache")
        self.assertTrue(sse.buf.startswith(b"retry: 500\n\n") or sse.buf == b"", sse.buf[:40])
        ev = sse.next()
        self.assertEqual(sse.retry, 500)  # "retry:" came before the first event
        self.assertEqual((ev["id"], ev["event"], ev["data"]), ("0", "token", '"a"'))
        ev = sse.next()
        self.assertEqual((ev["id"], ev["event"], ev["data"]), ("1", "message", '{"k":[1,2]}'))
        # Live: a publish after the stream started arrives without polling.
        t0 = time.time()
        self.gw.publish("chatbot/f", {"event": "token", "data": "live"})
        self.assertEqual(sse.messages(1), [(2, "token", "live")])
        self.assertLess(time.time() - t0, 2)

    def test_stream_on_a_topic_that_does_not_exist_yet(self):
        sse = self.gw.sse("/v1/sessions/later/events")
        self.addCleanup(sse.close)
        self.assertEqual(sse.status, 200)
        self.gw.publish("chatbot/later", [{"data": i} for i in range(3)])
        self.assertEqual([m[2] for m in sse.messages(3)], [0, 1, 2])

    def test_start_points_and_their_precedence(self):
        self.gw.publish("chatbot/sp", [{"data": i} for i in range(10)])
        cases = [
            ("?from=4", {}, 4),
            ("?last_event_id=6", {}, 7),
            ("?from=2&last_event_id=6", {}, 7),                 # last_event_id beats from
            ("?last_event_id=1&from=2", {"Last-Event-ID": "8"}, 9),  # the header beats both
            ("", {"Last-Event-ID": "0"}, 1),
            ("", {}, 0),
        ]
        for query, headers, first in cases:
            with self.subTest(query=query, headers=headers):
                sse = self.gw.sse("/v1/topics/chatbot/sp/events" + query, headers)
                try:
                    got = sse.messages(10 - first)
                    self.assertEqual([m[0] for m in got], list(range(first, 10)))
                finally:
                    sse.close()
        sse = self.gw.sse("/v1/topics/chatbot/sp/events?from=tail")
        self.addCleanup(sse.close)
        self.gw.publish("chatbot/sp", {"data": "new"})
        self.assertEqual(sse.messages(1), [(10, "message", "new")])

    def test_heartbeat_comments_on_an_idle_stream(self):
        sse = self.gw.sse("/v1/topics/chatbot/idle/events")
        self.addCleanup(sse.close)
        with self.assertRaises(TimeoutError):
            sse.next(timeout=2.5)  # heartbeat_s is 1 in the test config
        self.assertGreaterEqual(sse.comments, 1)

    def test_a_client_that_goes_away_is_noticed_at_once_without_spinning(self):
        # lws 4.1.6 does not read an SSE socket, so a closed client used to leave a level-
        # triggered POLLIN firing on every loop turn until a heartbeat write failed.
        def cpu_ticks():
            with open("/proc/%d/stat" % self.gw.proc.pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return int(fields[11]) + int(fields[12])

        def open_streams():
            text = self.gw.http("GET", "/metrics")[2].decode()
            return int([l for l in text.splitlines() if l.startswith("litegate_sse_connections ")][0].split()[1])

        closers = [lambda s: s.sock.shutdown(socket.SHUT_WR),  # half-close, as a browser's FIN looks
                   lambda s: s.sock.close(),
                   lambda s: s.sock.sendall(b"unexpected bytes")]
        for close in closers:
            sse = self.gw.sse("/v1/topics/chatbot/gone-away/events")
            self.assertEqual(open_streams(), 1)
            close(sse)
            deadline = time.time() + 2
            while open_streams() and time.time() < deadline:
                time.sleep(0.05)
            self.assertEqual(open_streams(), 0)
            before = cpu_ticks()
            time.sleep(0.5)
            self.assertLess(cpu_ticks() - before, 10)
            sse.close()

    def test_resume_by_last_event_id_no_loss_no_duplicate_in_order(self):
        total = 400
        stop = threading.Event()

        def publisher():
            for i in range(0, total, 4):
                self.gw.publish("chatbot/resume", [{"event": "token", "data": j} for j in range(i, i + 4)])
                time.sleep(0.002)
            stop.set()

        t = threading.Thread(target=publisher)
        t.start()
        received, last_id, reconnects = [], None, 0
        try:
            while len(received) < total:
                headers = {"Last-Event-ID": str(last_id)} if last_id is not None else {}
                sse = self.gw.sse("/v1/topics/chatbot/resume/events", headers)
                try:
                    # Read a varying number of events, then drop the connection, as a flaky network does.
                    for _ in range(7 + reconnects % 13):
                        if len(received) == total:
                            break
                        ev = sse.next(timeout=10)
                        received.append((int(ev["id"]), json.loads(ev["data"])))
                        last_id = int(ev["id"])
                finally:
                    sse.close()
                reconnects += 1
        finally:
            t.join()
        self.assertGreater(reconnects, 10)
        self.assertEqual([r[0] for r in received], list(range(total)))  # no loss, no dup, in order
        self.assertEqual([r[1] for r in received], list(range(total)))

    def test_gap_event_and_header_when_the_start_is_below_retention(self):
        # Parent "short" keeps the last 5 messages of a topic.
        self.gw.publish("short/g", [{"data": i} for i in range(12)])
        sse = self.gw.sse("/v1/topics/short/g/events", {"Last-Event-ID": "2"})
        self.addCleanup(sse.close)
        self.assertEqual(sse.headers.get("litegate-gap"), "3-7")
        ev = sse.next()
        self.assertEqual(ev["event"], "gap")
        self.assertEqual(json.loads(ev["data"]), {"from": 3, "to": 7})
        self.assertEqual(ev["id"], "6")  # a reconnect resumes at the first retained message
        self.assertEqual([m[0] for m in sse.messages(5)], [7, 8, 9, 10, 11])
        # No gap when the client asked for nothing in particular.
        sse2 = self.gw.sse("/v1/topics/short/g/events")
        self.addCleanup(sse2.close)
        self.assertNotIn("litegate-gap", sse2.headers)
        self.assertEqual(sse2.next()["id"], "7")

    def test_reset_event_when_the_start_is_past_the_end(self):
        self.gw.publish("chatbot/r", [{"data": i} for i in range(3)])
        sse = self.gw.sse("/v1/topics/chatbot/r/events", {"Last-Event-ID": "41"})
        self.addCleanup(sse.close)
        ev = sse.next()
        self.assertEqual(ev["event"], "reset")
        self.assertEqual(ev.get("id"), "")  # clears EventSource's last id
        self.assertEqual(json.loads(ev["data"]), {"from": 42, "first_offset": 0, "next_offset": 3})
        self.assertEqual([m[2] for m in sse.messages(3)], [0, 1, 2])

    def test_reset_when_the_topic_is_deleted_and_recreated_while_streaming(self):
        self.gw.publish("chatbot/rc", [{"data": i} for i in range(5)])
        sse = self.gw.sse("/v1/topics/chatbot/rc/events")
        self.addCleanup(sse.close)
        self.assertEqual(len(sse.messages(5)), 5)
        st, _, _ = self.gw.http("DELETE", "/v1/topics/chatbot/rc")
        self.assertEqual(st, 200)
        self.gw.publish("chatbot/rc", {"data": "new life"})
        ev = sse.next()
        self.assertEqual(ev["event"], "reset", ev)
        reset = json.loads(ev["data"])
        self.assertEqual(reset["from"], 5)
        self.assertLessEqual(reset["next_offset"], 1)
        self.assertEqual(sse.messages(1), [(0, "message", "new life")])

    def test_reset_for_a_topic_that_no_longer_exists(self):
        sse = self.gw.sse("/v1/topics/chatbot/gone/events", {"Last-Event-ID": "9"})
        self.addCleanup(sse.close)
        ev = sse.next()
        self.assertEqual(ev["event"], "reset")
        self.assertEqual(json.loads(ev["data"]), {"from": 10, "first_offset": 0, "next_offset": 0})
        self.gw.publish("chatbot/gone", {"data": "first"})
        self.assertEqual(sse.messages(1), [(0, "message", "first")])


class Replay(TestCase):
    CONFIG = {"max_unsent_bytes": 65536}

    def test_long_history_replays_in_order_at_the_readers_pace(self):
        payload = "x" * 1000
        n = 4000  # about 4 MB: many bounded writes
        for i in range(0, n, 500):
            self.gw.publish("chatbot/long", [{"data": [j, payload]} for j in range(i, i + 500)])
        sse = self.gw.sse("/v1/topics/chatbot/long/events")
        self.addCleanup(sse.close)
        got = []
        while len(got) < n:
            off, _, data = sse.messages(1, timeout=20)[0]
            self.assertEqual(off, data[0])
            got.append(off)
            if len(got) % 1000 == 0:
                time.sleep(0.2)  # a slow reader: the server must wait for it, not buffer ahead
        self.assertEqual(got, list(range(n)))


class StalledReader(TestCase):
    CONFIG = {"max_unsent_bytes": 65536, "timeouts": {"stall_s": 2}}

    def test_a_stalled_reader_does_not_hold_up_others_and_is_dropped(self):
        # The stalled client asks for a tiny receive buffer and never reads.
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(("127.0.0.1", self.gw.port))
        stalled.sendall(b"GET /v1/topics/chatbot/busy/events HTTP/1.1\r\nHost: x\r\n\r\n")
        self.addCleanup(stalled.close)
        live = self.gw.sse("/v1/topics/chatbot/busy/events")
        self.addCleanup(live.close)
        payload = "y" * 2000
        n = 3000  # about 6 MB, far more than the stalled socket's buffers hold
        t0 = time.time()
        for i in range(0, n, 250):
            self.gw.publish("chatbot/busy", [{"data": [j, payload]} for j in range(i, i + 250)])
        got = [m[0] for m in live.messages(n, timeout=30)]
        self.assertEqual(got, list(range(n)))
        self.assertLess(time.time() - t0, 20)
        # The stalled one is dropped once it has not been writable for stall_s: draining what the
        # kernel buffered ends in EOF (or a reset), not in an endless stream.
        stalled.settimeout(15)
        deadline = time.time() + 15
        received = 0
        closed = False
        time.sleep(3)
        while time.time() < deadline:
            try:
                chunk = stalled.recv(65536)
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            received += len(chunk)
        self.assertTrue(closed, "stalled reader was not dropped")
        self.assertLess(received, n * 2100)  # it never got the whole stream
        st, _, text = self.gw.http("GET", "/metrics")
        self.assertIn("litegate_stalled_dropped_total 1", text.decode())


if __name__ == "__main__":
    harness.main()
