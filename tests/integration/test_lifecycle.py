"""Process lifecycle: every acknowledged message survives SIGKILL at the same offset, SSE resumes
across a restart, and SIGTERM drains in-flight publishes, ends streams and exits 0."""

import json
import signal
import socket
import threading
import time

import harness
from harness import ChunkedUpload, TestCase, WSClosed


class Restart(TestCase):
    def test_acked_messages_survive_sigkill_at_the_same_offsets(self):
        acked = {}  # (topic, offset) -> data
        lock = threading.Lock()
        stop = threading.Event()
        errors = []

        def publisher(n):
            topic = "chatbot/k%d" % n
            i = 0
            while not stop.is_set():
                batch = [{"event": "token", "data": [n, i + j]} for j in range(3)]
                try:
                    st, _, body = self.gw.http("POST", "/v1/topics/%s/messages" % topic, batch, timeout=5)
                except OSError:
                    return  # the gateway died mid-request: that publish was never acknowledged
                if st != 200:
                    errors.append((st, body))
                    return
                with lock:
                    for j in range(3):
                        acked[(topic, body["first_offset"] + j)] = [n, i + j]
                i += 3

        threads = [threading.Thread(target=publisher, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        self.gw.kill()  # SIGKILL while publishes are in flight
        stop.set()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.assertGreater(len(acked), 50)
        self.gw.start()
        for n in range(6):
            topic = "chatbot/k%d" % n
            stored = {m["offset"]: m["data"] for m in self.gw.history(topic)}
            mine = {off: d for (t, off), d in acked.items() if t == topic}
            for off, data in mine.items():
                self.assertEqual(stored.get(off), data, "%s offset %d" % (topic, off))
            # Offsets are dense and continue after the restart.
            self.assertEqual(sorted(stored), list(range(len(stored))))
            body = self.gw.publish(topic, {"data": "after"})
            self.assertEqual(body["first_offset"], len(stored))

    def test_sse_resumes_across_a_restart(self):
        self.gw.publish("chatbot/rs", [{"data": i} for i in range(10)])
        sse = self.gw.sse("/v1/topics/chatbot/rs/events")
        got = sse.messages(6)
        sse.close()
        last = got[-1][0]
        self.gw.kill()
        self.gw.start()
        self.gw.publish("chatbot/rs", [{"data": i} for i in range(10, 15)])
        sse = self.gw.sse("/v1/topics/chatbot/rs/events", {"Last-Event-ID": str(last)})
        self.addCleanup(sse.close)
        rest = sse.messages(15 - last - 1)
        self.assertEqual([m[0] for m in got + rest], list(range(15)))
        self.assertEqual([m[2] for m in got + rest], list(range(15)))


class GracefulShutdown(TestCase):
    def test_sigterm_drains_publishes_ends_streams_and_exits_0(self):
        self.gw.publish("chatbot/g", {"data": 0})
        sse = self.gw.sse("/v1/topics/chatbot/g/events")
        self.addCleanup(sse.close)
        sse.messages(1)
        ws = self.gw.ws()
        self.addCleanup(ws.close)
        ws.send({"op": "subscribe", "topic": "chatbot/g", "from": "tail"})
        ws.recv()
        up = ChunkedUpload(self.gw.port, "/v1/topics/chatbot/g/messages")
        self.addCleanup(up.close)
        up.send(json.dumps({"data": "streamed"}) + "\n")
        self.assertEqual(sse.messages(1)[0][2], "streamed")
        # A keep-alive connection opened before the signal.
        ka = socket.create_connection(("127.0.0.1", self.gw.port), timeout=5)
        self.addCleanup(ka.close)
        ka.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        st, _, _ = harness.read_http_response(ka)
        self.assertEqual(st, 200)

        self.gw.proc.send_signal(signal.SIGTERM)
        # The open upload is answered: 503, with the offsets it got durably.
        status, headers, body = up.response(timeout=10)
        self.assertEqual(status, 503, body)
        self.assertEqual(body["error"]["code"], "shutting_down")
        self.assertEqual((body["count"], body["first_offset"]), (1, 1))
        # Streams end: SSE by EOF, WebSocket with 1001 going away.
        self.assertTrue(sse.wait_closed(10))
        with self.assertRaises((WSClosed, ConnectionError)) as cm:
            while True:
                ws.recv(timeout=10)
        if isinstance(cm.exception, WSClosed):
            self.assertEqual(cm.exception.code, 1001)
        self.assertEqual(self.gw.proc.wait(15), 0, self.gw.log())
        # Nothing acknowledged was lost.
        self.gw.start()
        self.assertEqual([m["data"] for m in self.gw.history("chatbot/g")], [0, "streamed"])

    def test_requests_during_drain_get_503_and_new_connections_are_refused(self):
        # A reader that stopped reading with full buffers cannot be ended politely, so the drain
        # waits for it (up to timeouts.shutdown_grace_s): a window in which to ask again.
        self.gw.publish("chatbot/d", [{"data": "x" * 4000} for _ in range(1000)])
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(("127.0.0.1", self.gw.port))
        stalled.sendall(b"GET /v1/topics/chatbot/d/events HTTP/1.1\r\nHost: x\r\n\r\n")
        self.addCleanup(stalled.close)
        ka = socket.create_connection(("127.0.0.1", self.gw.port), timeout=5)
        self.addCleanup(ka.close)
        ka.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(harness.read_http_response(ka)[0], 200)
        time.sleep(0.5)
        t0 = time.time()
        self.gw.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        ka.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        st, _, body = harness.read_http_response(ka)
        self.assertEqual((st, body), (503, {"status": "shutting_down"}))
        ka.sendall(b"GET /v1/topics/chatbot/d HTTP/1.1\r\nHost: x\r\n\r\n")
        st, hdrs, body = harness.read_http_response(ka)
        self.assertEqual((st, body["error"]["code"]), (503, "shutting_down"))
        self.assertEqual(hdrs.get("retry-after"), "1")
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", self.gw.port), timeout=2).close()
        self.assertEqual(self.gw.proc.wait(15), 0, self.gw.log())
        self.assertLess(time.time() - t0, 10)  # the grace period (5 s here) bounds the wait

    def test_publishes_in_flight_at_sigterm_are_acknowledged(self):
        results = []

        def publisher(n):
            for i in range(200):
                try:
                    st, _, body = self.gw.http("POST", "/v1/topics/chatbot/f%d/messages" % n, {"data": i},
                                               timeout=5)
                except OSError:
                    return  # refused: the listener is closed
                results.append((n, i, st, body))
                if st != 200:
                    return

        threads = [threading.Thread(target=publisher, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.3)
        self.gw.proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join()
        self.assertEqual(self.gw.proc.wait(15), 0, self.gw.log())
        ok = [(n, i, b) for n, i, st, b in results if st == 200]
        self.assertTrue(ok)
        self.assertTrue(all(st in (200, 503) for _, _, st, _ in results), results[-3:])
        self.gw.start()
        for n, i, body in ok:
            stored = self.gw.history("chatbot/f%d" % n)
            self.assertEqual(stored[body["first_offset"]]["data"], i)


if __name__ == "__main__":
    harness.main()
