#!/usr/bin/env python3
"""Pull-API benchmark (issue 4): pop throughput and publish-to-pop wake-up latency.

Starts a litegate (fsync durability, temporary data dir), defines a worker group on parent
"chatbot" (events ["prompt"], max_inflight_per_topic 1), then:

1. throughput: SESSIONS sessions with PER_SESSION prompts each are published up front; POPPERS
   threads pop batches of BATCH and ack each batch, until everything is acknowledged;
2. wake-up: POPPERS threads park in long polls; one publisher publishes a prompt to a random
   session every INTERVAL_MS; each prompt's latency is from just before its publish request to the
   moment a pop returned it (so it includes the publish's own group commit and fsync).

Python's http.client costs tens of microseconds per request, so the throughput figure is a floor
for the gateway, not a ceiling. Usage:
  bench/pop_bench.py [--bin build/gateway/litegate] [--sessions 10000] [--per-session 3]
                     [--poppers 8] [--batch 32] [--wake 2000] [--interval-ms 2]
"""

import argparse
import http.client
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    """One keep-alive connection."""

    def __init__(self, port):
        self.port = port
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def req(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        hdrs = {"Content-Type": "application/json"} if data is not None else {}
        for attempt in range(3):
            try:
                self.c.request(method, path, body=data, headers=hdrs)
                r = self.c.getresponse()
                out = r.read()
                if r.getheader("connection", "").lower() == "close":
                    self.c.close()
                return r.status, json.loads(out) if out else None
            except (http.client.HTTPException, OSError):
                self.c.close()
                self.c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
                if attempt == 2:
                    raise


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))] if xs else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(__file__), "..", "build", "gateway", "litegate"))
    ap.add_argument("--sessions", type=int, default=10000)
    ap.add_argument("--per-session", type=int, default=3)
    ap.add_argument("--poppers", type=int, default=8)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--wake", type=int, default=2000, help="prompts in the wake-up test")
    ap.add_argument("--interval-ms", type=float, default=2.0)
    a = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="pop-bench-")
    port = free_port()
    cfg = {"listen": "127.0.0.1:%d" % port, "data_dir": tmp + "/data", "static_root": None,
           "log_level": "warn", "durability": "fsync", "parents": [{"name": "chatbot"}]}
    with open(tmp + "/c.json", "w") as f:
        json.dump(cfg, f)
    proc = subprocess.Popen([a.bin, "--config", tmp + "/c.json"], stdout=open(tmp + "/log", "wb"),
                            stderr=subprocess.STDOUT)
    try:
        for _ in range(200):
            try:
                if Client(port).req("GET", "/healthz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.05)
        c = Client(port)
        st, _ = c.req("PUT", "/v1/groups/bench", {"parent": "chatbot", "events": ["prompt"],
                                                  "max_inflight_per_topic": 1, "invisible_ms": 60000})
        assert st in (200, 201), st

        # ---- 1. throughput -------------------------------------------------------------------
        total = a.sessions * a.per_session
        t0 = time.monotonic()

        def publisher(k):
            cl = Client(port)
            for s in range(k, a.sessions, 8):
                cl.req("POST", "/v1/topics/chatbot/s%d/messages" % s,
                       [{"event": "prompt", "data": {"n": i}} for i in range(a.per_session)])
        ts = [threading.Thread(target=publisher, args=(k,)) for k in range(8)]
        [t.start() for t in ts]
        [t.join() for t in ts]
        print("published %d prompts to %d sessions in %.2f s" % (total, a.sessions, time.monotonic() - t0))

        done = [0]
        lock = threading.Lock()
        pops, acks = [], []

        def popper():
            cl = Client(port)
            while True:
                with lock:
                    if done[0] >= total:
                        return
                t1 = time.monotonic()
                st, body = cl.req("POST", "/v1/groups/bench/pop", {"max": a.batch, "wait_ms": 200})
                t2 = time.monotonic()
                msgs = body["messages"]
                if not msgs:
                    continue
                cl.req("POST", "/v1/groups/bench/ack", {"receipts": [m["receipt"] for m in msgs]})
                t3 = time.monotonic()
                with lock:
                    done[0] += len(msgs)
                    pops.append(t2 - t1)
                    acks.append(t3 - t2)
        t0 = time.monotonic()
        ts = [threading.Thread(target=popper) for _ in range(a.poppers)]
        [t.start() for t in ts]
        [t.join() for t in ts]
        dt = time.monotonic() - t0
        print("popped and acked %d messages with %d poppers (batches of %d) in %.2f s: %.0f msg/s"
              % (total, a.poppers, a.batch, dt, total / dt))
        print("  pop request p50 %.2f ms p99 %.2f ms; ack request p50 %.2f ms p99 %.2f ms"
              % (pct(pops, 50) * 1e3, pct(pops, 99) * 1e3, pct(acks, 50) * 1e3, pct(acks, 99) * 1e3))

        # ---- 2. wake-up latency --------------------------------------------------------------
        sent = {}
        lat = []
        stop = threading.Event()

        def waiter():
            cl = Client(port)
            while not stop.is_set():
                st, body = cl.req("POST", "/v1/groups/bench/pop", {"max": a.batch, "wait_ms": 1000})
                now = time.monotonic()
                msgs = body["messages"]
                for m in msgs:
                    with lock:
                        t = sent.get((m["topic"], m["offset"]))
                        if t is not None:
                            lat.append(now - t)
                if msgs:
                    cl.req("POST", "/v1/groups/bench/ack", {"receipts": [m["receipt"] for m in msgs]})
        ts = [threading.Thread(target=waiter) for _ in range(a.poppers)]
        [t.start() for t in ts]
        time.sleep(0.5)
        pub = Client(port)
        nexts = {}
        for i in range(a.wake):
            s = random.randrange(a.sessions)
            topic = "chatbot/w%d" % s
            off = nexts.get(topic, 0)  # only this publisher writes w topics: offsets are known
            with lock:
                sent[(topic, off)] = time.monotonic()
            st, body = pub.req("POST", "/v1/topics/%s/messages" % topic, {"event": "prompt", "data": i})
            assert body["first_offset"] == off, body
            nexts[topic] = off + 1
            time.sleep(a.interval_ms / 1e3)
        deadline = time.time() + 10
        while len(lat) < a.wake and time.time() < deadline:
            time.sleep(0.05)
        stop.set()
        [t.join() for t in ts]
        print("wake-up (publish request sent -> pop returned), %d prompts to random sessions every %.1f ms:"
              % (len(lat), a.interval_ms))
        print("  p50 %.2f ms  p99 %.2f ms  p99.9 %.2f ms  max %.2f ms"
              % (pct(lat, 50) * 1e3, pct(lat, 99) * 1e3, pct(lat, 99.9) * 1e3, max(lat) * 1e3))
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
