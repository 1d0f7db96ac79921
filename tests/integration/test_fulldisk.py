"""A full disk, for real: the gateway's data dir on a 32 MiB tmpfs, publishing until it is full.

Checks: the failing publishes get 507 storage_full (HTTP and WebSocket); every message acknowledged
before is readable, byte for byte; subscribers that were streaming keep streaming (they get every
acknowledged message and stay connected), and new ones can replay; /healthz says degraded (503) and
/metrics litegate_engine_failed 1; after the tmpfs is made bigger and the gateway restarted, publishing
continues at the next offsets.

Needs to mount a tmpfs (root, or CAP_SYS_ADMIN); skips with the reason when it may not. The tmpfs
must be larger than about 12 MiB: the engine keeps an 8 MiB reserve file for RocksDB (docs/storage.md)
and RocksDB itself takes a few MiB.
"""

import hashlib
import json
import os
import subprocess
import tempfile
import time
import unittest

import harness
from harness import Gateway

MSG = 100000  # bytes of data per message: the disk fills in a few dozen requests


def payload(i):
    return "%06d:" % i + hashlib.sha256(str(i).encode()).hexdigest() * (MSG // 64)


class FullDisk(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.mnt = tempfile.mkdtemp(prefix="litegate-fulldisk-")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", cls.mnt],
                           capture_output=True, text=True)
        if r.returncode:
            os.rmdir(cls.mnt)
            raise unittest.SkipTest("cannot mount a tmpfs here (%s): run as root to test a full disk"
                                    % (r.stderr.strip() or "mount exited %d" % r.returncode))

    @classmethod
    def tearDownClass(cls):
        subprocess.run(["umount", cls.mnt], capture_output=True)
        os.rmdir(cls.mnt)

    def setUp(self):
        # The streams are read only after the disk is full: until then (tens of MB, far more
        # than the sockets buffer) they cannot be written, and the harness's 3 s stall timeout
        # would drop them (as it should: timeouts.stall_s) whenever filling and checking take
        # longer, as they do on a loaded box or under ASan. Give them the default minute.
        self.gw = Gateway({"data_dir": os.path.join(self.mnt, "data"),
                           "storage": {"segment_bytes": 4 * 1024 * 1024},
                           "timeouts": {"stall_s": 60}})
        self.addCleanup(self.gw.close)
        self.addCleanup(harness.TestCase._dump_log_on_failure, self)  # the log, when it failed
        self.gw.start()

    def test_publish_until_full_then_recover(self):
        gw = self.gw
        sse = gw.sse("/v1/topics/chatbot/fill/events")
        ws = gw.ws()
        ws.send({"op": "subscribe", "topic": "chatbot/fill", "req": 1})
        self.assertEqual(ws.recv()["type"], "subscribed")
        try:
            # Publish until the disk is full. Every 200 is an acknowledgement to keep.
            acked, n, failed = 0, 0, None
            for _ in range(200):
                batch = [{"event": "chunk", "data": payload(n + k)} for k in range(5)]
                st, _, body = gw.http("POST", "/v1/topics/chatbot/fill/messages", batch, timeout=30)
                if st != 200:
                    failed = (st, body)
                    break
                self.assertEqual((body["first_offset"], body["count"]), (acked, 5))
                acked += 5
                n += 5
            self.assertIsNotNone(failed, "the 32 MiB tmpfs never filled up")
            st, body = failed
            self.assertEqual((st, body["error"]["code"], body["count"]), (507, "storage_full", 0))
            self.assertGreater(acked, 50)
            # Everything after is refused the same way, on any topic, over any transport.
            st, _, body = gw.http("POST", "/v1/topics/agent/other/messages", {"data": 1})
            self.assertEqual((st, body["error"]["code"]), (507, "storage_full"))
            st, _, body = gw.http("POST", "/v1/topics/chatbot/fill/messages", "plain", {"Content-Type": "text/plain"})
            self.assertEqual(st, 507)
            ws.send({"op": "publish", "topic": "chatbot/fill", "data": "x", "req": 2})
            m, early = ws.recv_until(lambda m: m.get("type") == "error" and m.get("req") == 2, timeout=30)
            self.assertEqual(m["code"], "storage_full")
            # Health says so.
            st, _, body = gw.http("GET", "/healthz")
            self.assertEqual(st, 503)
            self.assertEqual(body["status"], "degraded")
            self.assertIn("full", body["storage"])
            st, _, text = gw.http("GET", "/metrics")
            self.assertIn(b"litegate_engine_failed 1\n", text)
            # Every acknowledged message is readable, byte for byte.
            hist = gw.history("chatbot/fill", limit=20)
            self.assertEqual([m["offset"] for m in hist], list(range(acked)))
            self.assertTrue(all(m["data"] == payload(m["offset"]) for m in hist))
            # The subscribers that were streaming got all of it and are still connected.
            got = sse.messages(acked, timeout=60)
            self.assertEqual([o for o, _, _ in got], list(range(acked)))
            self.assertTrue(all(d == payload(o) for o, _, d in got))
            seen = 0
            while seen < acked:
                m = early.pop(0) if early else ws.recv(timeout=30)
                if m["type"] == "message":
                    self.assertEqual((m["offset"], m["data"]), (seen, payload(seen)))
                    seen += 1
            comments = sse.comments
            deadline = time.time() + 5
            while sse.comments == comments and time.time() < deadline:  # heartbeats go on
                try:
                    sse.next(timeout=0.5)
                except TimeoutError:
                    pass
            self.assertGreater(sse.comments, comments)
            ws.send({"op": "ping", "req": 3})
            m, _ = ws.recv_until(lambda m: m.get("type") == "pong")
            # A new reader can still replay everything.
            late = gw.sse("/v1/topics/chatbot/fill/events?from=%d" % (acked - 3))
            try:
                self.assertEqual([o for o, _, _ in late.messages(3)], [acked - 3, acked - 2, acked - 1])
            finally:
                late.close()
        finally:
            sse.close()
            ws.close()

        # Free space (the tmpfs grows), restart: publishing continues at the next offset.
        self.assertEqual(gw.stop(), 0)
        r = subprocess.run(["mount", "-o", "remount,size=96m", self.mnt], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        gw.start()
        st, _, body = gw.http("GET", "/healthz")
        self.assertEqual((st, body), (200, {"status": "ok"}))
        body = gw.publish("chatbot/fill", {"event": "chunk", "data": payload(acked)})
        self.assertEqual(body["first_offset"], acked)
        self.assertEqual(gw.publish("agent/other", {"data": 1})["first_offset"], 0)
        hist = gw.history("chatbot/fill", limit=20)
        self.assertEqual([m["offset"] for m in hist], list(range(acked + 1)))
        self.assertTrue(all(m["data"] == payload(m["offset"]) for m in hist))


if __name__ == "__main__":
    harness.main()
