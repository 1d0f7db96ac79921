#!/usr/bin/env python3
"""Publish rate with and without producer keys (issue 7), on the same workload, against the real
gateway; and what keys cost in fsyncs.

Workloads (each run without keys and with keys, alternating, --rounds times; medians reported):
  post    --conns client processes, each on its own keep-alive connection and topic, POST one
          message per request, waiting for each reply (the worst case for keys: one key per
          message). Keyed: an Idempotency-Key header per request.
  ndjson  --streams client processes, each one chunked application/x-ndjson upload of --lines
          lines, one line per chunk (as a model worker streams tokens; the client writes 256
          chunks per send so that it, not the gateway, is the lighter side). Keyed: an "id" per
          line. A third run without keys pads each line's data to the keyed line's length
          ("same bytes"): the difference between it and the keyed run is what the keys cost
          beyond their bytes.
  retry   the keyed workloads sent again, unchanged: every request is a duplicate.

The fsync, batch and duplicate counts are deltas of /metrics (litegate_engine_fsyncs_total,
litegate_engine_batches_total, litegate_engine_duplicates_total) around each run. The engine makes
one fdatasync per group commit whatever the records hold; a key is bytes inside its message's
record, and the dedup index is in memory, so keys add no fsync: "fsync/1k msgs" must match between
the keyed and unkeyed runs (it depends only on how many requests share a group commit), and a
retry that only finds duplicates commits nothing, so it makes no fsync at all.

Python 3 standard library only. Usage (from the repository root, after building):
  python3 bench/exactly_once_bench.py [--bin build/gateway/litegate] [--messages 20000] [--conns 8]
                                      [--lines 100000] [--streams 4] [--rounds 5]
                                      [--durability fsync|interval|none] [--data-dir DIR]
"""

import argparse
import json
import multiprocessing as mp
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


# ---- A minimal keep-alive HTTP/1.1 client (client overhead must not hide the gateway's cost) ----

def read_reply(sock, buf):
    """Read one response with Content-Length; returns (status, body, rest)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    status = int(head.split(b" ", 2)[1])
    m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
    n = int(m.group(1)) if m else 0
    while len(rest) < n:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed")
        rest += chunk
    return status, rest[:n], rest[n:]


def post_worker(port, topic, n, keyed, tag, start_evt, out):
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reqs = []
    for i in range(n):
        body = b'{"event":"token","data":"tok-%06d"}' % i
        hdr = b"POST /v1/topics/%s/messages HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\n" \
              b"Content-Length: %d\r\n" % (topic.encode(), len(body))
        if keyed:
            hdr += b"Idempotency-Key: %s-%d\r\n" % (tag.encode(), i)
        reqs.append(hdr + b"\r\n" + body)
    start_evt.wait()
    buf, ok, dups = b"", 0, 0
    t0 = time.monotonic()
    for r in reqs:
        sock.sendall(r)
        status, body, buf = read_reply(sock, buf)
        if status != 200:
            raise SystemExit("POST %s: %d %r" % (topic, status, body))
        ok += 1
        dups += b'"duplicate":true' in body
    out.put((time.monotonic() - t0, ok, dups))
    sock.close()


def ndjson_worker(port, topic, n, keyed, tag, start_evt, out):
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    chunks = []
    for i in range(n):
        key = b"%s-%d" % (tag.encode(), i)
        if keyed == "padded":  # no key, but the keyed line's length
            line = b'{"event":"token","data":"tok-%06d%s"}\n' % (i, b"." * (len(key) + 8))
        elif keyed:
            line = b'{"event":"token","data":"tok-%06d","id":"%s"}\n' % (i, key)
        else:
            line = b'{"event":"token","data":"tok-%06d"}\n' % i
        chunks.append(b"%x\r\n%s\r\n" % (len(line), line))
    sends = [b"".join(chunks[i:i + 256]) for i in range(0, len(chunks), 256)]
    head = b"POST /v1/topics/%s/messages HTTP/1.1\r\nHost: b\r\nContent-Type: application/x-ndjson\r\n" \
           b"Transfer-Encoding: chunked\r\n\r\n" % topic.encode()
    start_evt.wait()
    t0 = time.monotonic()
    sock.sendall(head)
    for c in sends:
        sock.sendall(c)
    sock.sendall(b"0\r\n\r\n")
    status, body, _ = read_reply(sock, b"")
    elapsed = time.monotonic() - t0
    if status != 200:
        raise SystemExit("NDJSON %s: %d %r" % (topic, status, body))
    reply = json.loads(body)
    out.put((elapsed, reply["count"], len(reply.get("duplicates", []))))
    sock.close()


# ---- The gateway --------------------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metrics(port):
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
    status, body, _ = read_reply(sock, b"")
    sock.close()
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.rpartition(" ")
            out[k] = float(v)
    return out


COUNTERS = {"fsyncs": "litegate_engine_fsyncs_total", "batches": "litegate_engine_batches_total",
            "dups": "litegate_engine_duplicates_total", "published": "litegate_messages_published_total"}


def run(port, kind, n_procs, per_proc, keyed, tag):
    """One run of @n_procs clients; returns a dict of figures."""
    ctx = mp.get_context("fork")
    start_evt, out = ctx.Event(), ctx.Queue()
    target = post_worker if kind == "post" else ndjson_worker
    procs = [ctx.Process(target=target,
                         args=(port, "bench/%s-%s-%d" % (kind, tag, p), per_proc, keyed, "%s-%d" % (tag, p),
                               start_evt, out))
             for p in range(n_procs)]
    for p in procs:
        p.start()
    time.sleep(0.3)  # every client has built its requests
    before = metrics(port)
    t0 = time.monotonic()
    start_evt.set()
    results = [out.get(timeout=600) for _ in procs]
    wall = time.monotonic() - t0
    for p in procs:
        p.join()
        if p.exitcode:
            raise SystemExit("a client failed")
    after = metrics(port)
    d = {k: int(after[v] - before[v]) for k, v in COUNTERS.items()}
    msgs = sum(r[1] for r in results)
    d.update(msgs=msgs, seconds=wall, rate=msgs / wall, client_dups=sum(r[2] for r in results))
    return d


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=os.path.join(REPO, "build", "gateway", "litegate"))
    ap.add_argument("--messages", type=int, default=20000, help="POST workload: messages in all")
    ap.add_argument("--conns", type=int, default=8, help="POST workload: client connections")
    ap.add_argument("--lines", type=int, default=100000, help="NDJSON workload: lines per stream")
    ap.add_argument("--streams", type=int, default=4, help="NDJSON workload: concurrent uploads")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--durability", default="fsync", choices=["fsync", "interval", "none"])
    ap.add_argument("--data-dir", default=None, help="default: a new directory under /var/tmp")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="litegate-eo-bench-", dir="/var/tmp")
    data_dir = args.data_dir or os.path.join(tmp, "data")
    port = free_port()
    conf = {"listen": "127.0.0.1:%d" % port, "data_dir": data_dir, "static_root": None, "log_level": "warn",
            "durability": args.durability,
            # Enough keys per topic that a retried stream is all duplicates (default 100,000).
            "parents": [{"name": "bench", "dedup_max_keys": max(100000, args.lines, args.messages)}]}
    conf_path = os.path.join(tmp, "litegate.json")
    with open(conf_path, "w") as f:
        json.dump(conf, f)
    log = open(os.path.join(tmp, "litegate.log"), "wb")
    gw = subprocess.Popen([args.bin, "--config", conf_path], stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(200):
            try:
                metrics(port)
                break
            except OSError:
                time.sleep(0.05)
        print("# command: python3 %s" % " ".join(shlex.quote(a) for a in sys.argv))
        print("# gateway: %s, durability %s, data in %s, %d CPUs (clients share them)"
              % (args.bin, args.durability, data_dir, os.cpu_count()))
        print("# post: %d messages over %d connections, one per request; ndjson: %d streams x %d lines, "
              "one line per chunk; %d rounds (msgs/s over all rounds, and the best round)" % (args.messages, args.conns, args.streams,
                                                               args.lines, args.rounds))
        per_conn = max(1, args.messages // args.conns)
        rows = {}
        for rnd in range(args.rounds):
            # Alternate the order so drift (page cache, log growth) does not favour one side.
            order = [False, True] if rnd % 2 == 0 else [True, False]
            for kind, n_procs, per in (("post", args.conns, per_conn), ("ndjson", args.streams, args.lines)):
                modes = order + (["padded"] if kind == "ndjson" else [])
                for keyed in modes:
                    tag = "r%d%s" % (rnd, {False: "n", True: "k"}.get(keyed, "p"))
                    rows.setdefault((kind, keyed), []).append(run(port, kind, n_procs, per, keyed, tag))
                    if keyed is True:  # the same keyed requests again: all duplicates
                        rows.setdefault((kind + "-retry", True), []).append(
                            run(port, kind, n_procs, per, keyed, tag))

        hdr = "%-13s %-10s %8s %10s %10s %9s %8s %8s %13s %8s %8s" % (
            "workload", "keys", "msgs", "msgs/s", "best", "seconds", "fsyncs", "batches", "fsync/1k msg", "dups",
            "appended")
        print(hdr)
        print("-" * len(hdr))
        summary = {}
        labels = {False: "no", True: "yes", "padded": "no, padded"}
        for kind in ("post", "post-retry", "ndjson", "ndjson-retry"):
            for keyed in (False, "padded", True):
                runs = rows.get((kind, keyed))
                if not runs:
                    continue
                msgs = sum(r["msgs"] for r in runs)
                fsyncs = sum(r["fsyncs"] for r in runs)
                batches = sum(r["batches"] for r in runs)
                secs = sum(r["seconds"] for r in runs)
                rate = msgs / secs  # over all rounds
                best = max(r["rate"] for r in runs)
                dups = sum(r["dups"] for r in runs)
                appended = sum(r["published"] for r in runs)
                summary[(kind, keyed)] = (rate, best, fsyncs * 1000.0 / msgs)
                print("%-13s %-10s %8d %10.0f %10.0f %9.2f %8d %8d %13.2f %8d %8d"
                      % (kind, labels[keyed], msgs, rate, best, secs, fsyncs, batches,
                         fsyncs * 1000.0 / msgs, dups, appended))
        print()
        for kind in ("post", "ndjson"):
            (r0, b0, f0), (r1, b1, f1) = summary[(kind, False)], summary[(kind, True)]
            print("%-6s keys cost %5.1f%% of throughput over all rounds (%.0f -> %.0f msgs/s), %5.1f%% "
                  "best against best; fsyncs per 1k messages %.2f without keys, %.2f with"
                  % (kind, 100.0 * (r0 - r1) / r0, r0, r1, 100.0 * (b0 - b1) / b0, f0, f1))
            if (kind, "padded") in summary:
                rp, bp, _ = summary[(kind, "padded")]
                print("%-6s against lines of the same length without keys: %5.1f%% over all rounds, %5.1f%% "
                      "best against best (the rest is the ids' bytes)"
                      % (kind, 100.0 * (rp - r1) / rp, 100.0 * (bp - b1) / bp))
            rr, _, rf = summary[(kind + "-retry", True)]
            print("%-6s retry of the keyed run (all duplicates): %.0f msgs/s, fsyncs per 1k messages %.2f"
                  % (kind, rr, rf))
    finally:
        gw.terminate()
        try:
            rc = gw.wait(30)
        except subprocess.TimeoutExpired:
            gw.kill()
            rc = gw.wait()
        log.close()
        if rc != 0:
            with open(os.path.join(tmp, "litegate.log"), "rb") as f:
                sys.stderr.write(f.read().decode("utf-8", "replace")[-4000:])
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
