"""litegate-worker against the real gateway binary (Python 3 standard library only).

Usage: test_worker.py [LITEGATE_BIN [WORKER_BIN]]  (CTest passes both; otherwise $LITEGATE_BIN and
$LITEGATE_WORKER_BIN, or ./build/gateway/litegate and ./build/worker/litegate-worker).

- DemoTurnTest: the demo model answering one prompt (--answer TOPIC@OFFSET, no pull API needed):
  the exact text (from a Python port of worker/demo_model.c), pacing, cancel, shutdown and resume,
  and publishes cut by a fault-injecting TCP proxy or by a gateway restart: the topic must hold the
  answer exactly once.
- UpstreamTest: --upstream against a small fake OpenAI-compatible server (http.server streaming
  SSE deltas): the context sent, the deltas relayed, cancel closing the upstream stream, errors.
- PullTest: the worker popping prompts through the gateway's pull API (issue 4). Skipped, with the
  reason, while the gateway answers 404 on /v1/groups; never faked.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

# harness.main() takes the gateway binary from argv[1]; the worker binary comes second.
if len(sys.argv) > 2 and not sys.argv[2].startswith("-"):
    os.environ["LITEGATE_WORKER_BIN"] = sys.argv.pop(2)


def worker_path():
    path = os.environ.get("LITEGATE_WORKER_BIN") or os.path.join(harness.REPO, "build", "worker",
                                                                  "litegate-worker")
    return os.path.abspath(path)


# ---- The demo model, ported from worker/demo_model.c (see its header for the algorithm) -------------

M64 = (1 << 64) - 1
OPENERS = ["Good question about {A}.", "Here is a short answer about {A}.",
           "Let us look at {A} step by step.", "{A} is worth a careful look."]
BODIES = ["In short, {A} depends on how {B} is set up.",
          "Most people start with {B} and only later think about {C}.",
          "A simple way to picture {A} is as a stream of small pieces that arrive in order.",
          "The details of {B} matter less than getting the basics of {A} right.",
          "When {C} changes, {A} usually follows, so watch both.",
          "It helps to write down what you expect from {A} before you measure it.",
          "Nothing here needs special tools; patience with {B} goes a long way.",
          "If something looks wrong, check {C} first, since it is the usual suspect."]
CLOSERS = ["I hope this helps.", "Ask again if you want more detail on {B}.", "That is the gist of it."]
STOP_WORDS = set("what when where which that this with from have does about would could should your "
                 "there their them they into some tell explain please like more just know want need "
                 "will been were than then also very much many make".split())
DEFAULT_KEYWORDS = [b"your question", b"the details", b"the context"]


def demo_tokens(prompt, seed=0):
    """The demo model's tokens for @prompt and @seed, exactly as litegate-worker produces them."""
    p = prompt.encode()
    h = 0xcbf29ce484222325
    for c in p:
        h = ((h ^ c) * 0x100000001b3) & M64
    state = [h ^ ((seed * 0x9E3779B97F4A7C15) & M64)]

    def rnd():
        state[0] = (state[0] + 0x9E3779B97F4A7C15) & M64
        z = state[0]
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        return z ^ (z >> 31)

    def word_byte(c):
        return 48 <= c <= 57 or 65 <= c <= 90 or 97 <= c <= 122 or c >= 0x80

    keywords, i = [], 0
    while i < len(p) and len(keywords) < 3:
        while i < len(p) and not word_byte(p[i]):
            i += 1
        start = i
        while i < len(p) and word_byte(p[i]):
            i += 1
        w = p[start:i]
        if not 4 <= len(w) <= 24:
            continue
        w = bytes(c + 32 if 65 <= c <= 90 else c for c in w)
        if w.decode("latin-1") in STOP_WORDS or w in keywords:
            continue
        keywords.append(w)
    slot = [keywords[k] if k < len(keywords) else DEFAULT_KEYWORDS[k] for k in range(3)]

    def sentence(template):
        out = template.encode()
        for k, name in enumerate((b"{A}", b"{B}", b"{C}")):
            out = out.replace(name, slot[k])
        if 97 <= out[0] <= 122:
            out = bytes([out[0] - 32]) + out[1:]
        return out

    parts = [sentence(OPENERS[rnd() % 4])]
    used = set()
    for _ in range(2 + rnd() % 3):
        k = rnd() % 8
        while k in used:
            k = (k + 1) % 8
        used.add(k)
        parts.append(sentence(BODIES[k]))
    parts.append(sentence(CLOSERS[rnd() % 3]))
    words = b" ".join(parts).decode().split(" ")
    return [words[0]] + [" " + w for w in words[1:]]


# ---- The worker process ---------------------------------------------------------------------------

class Worker:
    def __init__(self, gateway_url, *args):
        self.tmp = tempfile.mkdtemp(prefix="litegate-worker-")
        self.log_path = os.path.join(self.tmp, "worker.log")
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([worker_path(), "--gateway", gateway_url] + list(args),
                                     stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
        log.close()

    def wait(self, timeout=30):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("the worker did not exit within %ss:\n%s" % (timeout, self.log()))

    def signal(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")[-8000:]
        except OSError:
            return ""


# ---- A TCP proxy that breaks publishes ----------------------------------------------------------

class FaultProxy:
    """Forwards loopback TCP to the gateway. Connections that start with "POST " (publishes) are
    handed to @policy(n) with their number (0, 1, ...), which returns None (pass), ("cut", N) (close
    both sides once N request bytes went through) or "swallow" (forward the whole request; if the
    reply is a 200 and none was swallowed yet, close instead of passing it on)."""

    def __init__(self, target_port, policy):
        self.target_port = target_port
        self.policy = policy
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.publishes = 0
        self.faults = 0
        self.swallowed = False
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            s = socket.create_connection(("127.0.0.1", self.target_port))
        except OSError:
            c.close()
            return
        first = c.recv(65536)
        action = None
        if first.startswith(b"POST "):
            with self.lock:
                n = self.publishes
                self.publishes += 1
            action = self.policy(n)
            if isinstance(action, tuple):
                with self.lock:
                    self.faults += 1
        done = threading.Event()

        def shut():
            done.set()
            for x in (c, s):
                try:
                    x.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                x.close()

        def up():
            sent, data = 0, first
            while data:
                if isinstance(action, tuple) and sent + len(data) >= action[1]:
                    s.sendall(data[:max(0, action[1] - sent)])
                    time.sleep(0.05)
                    shut()
                    return
                s.sendall(data)
                sent += len(data)
                try:
                    data = c.recv(65536)
                except OSError:
                    break
            if not done.is_set():
                try:
                    s.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

        def down():
            while not done.is_set():
                try:
                    data = s.recv(65536)
                except OSError:
                    break
                if not data:
                    break
                if action == "swallow" and data.startswith(b"HTTP/1.1 200"):
                    with self.lock:
                        first_swallow = not self.swallowed
                        self.swallowed = True
                    if first_swallow:
                        with self.lock:
                            self.faults += 1
                        shut()
                        return
                try:
                    c.sendall(data)
                except OSError:
                    break
            if not done.is_set():
                shut()

        threading.Thread(target=up, daemon=True).start()
        down()

    def close(self):
        self.closed = True
        self.lsock.close()


# ---- A fake OpenAI-compatible server --------------------------------------------------------------

class FakeOpenAI:
    """POST /v1/chat/completions answering with SSE `data:` chunks of `deltas`, `delay` s apart,
    then `data: [DONE]`; or `status` with `error_body`. Records each request and when the client
    went away mid-stream."""

    def __init__(self, deltas=(), delay=0.0, status=200, error_body=None):
        self.deltas = list(deltas)
        self.delay = delay
        self.status = status
        self.error_body = error_body
        self.requests = []
        self.client_gone_at = None
        self.deltas_sent = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # the body ends when the connection closes

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(n)
                fake.requests.append({"path": self.path, "headers": dict(self.headers.items()),
                                      "body": json.loads(body)})
                if fake.status != 200:
                    data = json.dumps(fake.error_body or {"error": {"message": "failed"}}).encode()
                    self.send_response(fake.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                try:
                    self._chunk({"choices": [{"index": 0, "delta": {"role": "assistant"}}]})
                    for d in fake.deltas:
                        if fake.delay:
                            time.sleep(fake.delay)
                        self._chunk({"choices": [{"index": 0, "delta": {"content": d},
                                                  "finish_reason": None}]})
                        fake.deltas_sent += 1
                    self._chunk({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    fake.client_gone_at = time.time()

            def _chunk(self, obj):
                self.wfile.write(b"data: " + json.dumps(obj).encode() + b"\n\n")
                self.wfile.flush()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# ---- Helpers ------------------------------------------------------------------------------------

class WorkerTestCase(harness.TestCase):
    def setUp(self):
        super().setUp()
        self.url = "http://127.0.0.1:%d" % self.gw.port
        self.workers = []

    def tearDown(self):
        for w in self.workers:
            w.close()
        if self._failed():
            for w in self.workers:
                sys.stderr.write("\n--- worker log (%s) ---\n%s\n" % (self.id(), w.log()))
            sys.stderr.write("\n--- litegate log (%s) ---\n%s\n" % (self.id(), self.gw.log()))
        super().tearDown()
        # The tests also run under ASan+UBSan: a report in any worker's log fails the test.
        for w in self.workers:
            for needle in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                           "WARNING: ThreadSanitizer"):
                self.assertNotIn(needle, w.log())

    def _failed(self):
        # Python 3.11 records a failure in the result before tearDown but leaves
        # _outcome.success alone, so look for this test among the result's failures.
        res = getattr(getattr(self, "_outcome", None), "result", None)
        bad = list(getattr(res, "failures", [])) + list(getattr(res, "errors", []))
        return any(t is self for t, _ in bad)

    def worker(self, *args, url=None):
        w = Worker(url or self.url, *args)
        self.workers.append(w)
        return w

    def prompt(self, topic, text):
        return self.gw.publish(topic, {"event": "prompt", "data": {"text": text}})["first_offset"]

    def turn(self, topic, prompt_off):
        """The messages of the turn answering the prompt at @prompt_off: those after it, less any
        earlier turn's (up to an end naming another prompt), up to and including its own end."""
        out = []
        for m in self.gw.history(topic, prompt_off + 1):
            out.append(m)
            if m["event"] == "end":
                if m["data"].get("prompt_offset", prompt_off) != prompt_off:
                    out = []
                    continue
                break
        return out

    def tokens(self, topic, prompt_off):
        return [m["data"] for m in self.turn(topic, prompt_off) if m["event"] == "token"]

    def wait_end(self, topic, prompt_off, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            t = self.turn(topic, prompt_off)
            if t and t[-1]["event"] == "end":
                return t[-1]
            time.sleep(0.05)
        raise AssertionError("no end after %s@%d within %ss" % (topic, prompt_off, timeout))

    def assert_exact_answer(self, topic, prompt_off, expected, reason="done"):
        msgs = self.turn(topic, prompt_off)
        ends = [m for m in self.gw.history(topic, prompt_off + 1)
                if m["event"] == "end" and m["data"].get("prompt_offset") == prompt_off]
        self.assertEqual(len(ends), 1, "exactly one end: %r" % ends)
        self.assertEqual(ends[0]["data"]["reason"], reason)
        self.assertEqual(ends[0]["data"]["prompt_offset"], prompt_off)
        toks = [m["data"] for m in msgs if m["event"] == "token"]
        self.assertEqual("".join(toks), "".join(expected))
        self.assertEqual(toks, expected, "the same tokens, none lost, none repeated")


# ---- Demo model, one turn at a time -----------------------------------------------------------

class DemoTurnTest(WorkerTestCase):
    def test_exact_text_streamed_token_by_token(self):
        topic, text, seed = "chatbot/exact", "How do durable logs work?", 7
        off = self.prompt(topic, text)
        expected = demo_tokens(text, seed)
        sse = self.gw.sse("/v1/topics/%s/events?from=%d" % (topic, off + 1))
        self.addCleanup(sse.close)
        w = self.worker("--answer", "%s@%d" % (topic, off), "--tokens-per-second", "40",
                        "--seed", str(seed))
        arrivals, got = [], []
        while True:
            ev = sse.next(timeout=15)
            if ev.get("event") == "token":
                got.append(json.loads(ev["data"]))
                arrivals.append(time.time())
            elif ev.get("event") == "end":
                self.assertEqual(json.loads(ev["data"]), {"reason": "done", "prompt_offset": off})
                break
        self.assertEqual(w.wait(), 0, w.log())
        self.assertEqual(got, expected)
        self.assert_exact_answer(topic, off, expected)
        # Paced: tokens arrive over about n/40 s, not in one burst at the end.
        span = arrivals[-1] - arrivals[0]
        self.assertGreater(span, 0.7 * (len(expected) - 1) / 40, "tokens streamed at the pace")
        self.assertGreater(len(set(round(t, 2) for t in arrivals)), len(expected) // 2,
                           "tokens arrived one by one")
        # An answered prompt is not answered twice: a second run only reads the topic.
        next_before = self.gw.history(topic)[-1]["offset"]
        self.assertEqual(self.worker("--answer", "%s@%d" % (topic, off)).wait(), 0)
        self.assertEqual(self.gw.history(topic)[-1]["offset"], next_before)

    def test_a_dropped_browser_is_not_a_cancel(self):
        topic, text = "chatbot/dropped", "Keep going when I leave"
        off = self.prompt(topic, text)
        sse = self.gw.sse("/v1/topics/%s/events?from=%d" % (topic, off + 1))
        w = self.worker("--answer", "%s@%d" % (topic, off), "--tokens-per-second", "40")
        self.assertEqual(len(sse.messages(3)), 3)
        sse.close()  # the browser goes away mid-answer
        self.assertEqual(w.wait(), 0, w.log())
        self.assert_exact_answer(topic, off, demo_tokens(text, 0))

    def test_seed_and_prompt_change_the_answer(self):
        topic = "chatbot/seeds"
        a = self.prompt(topic, "Tell me about streaming tokens")
        self.assertEqual(self.worker("--answer", "%s@%d" % (topic, a), "--tokens-per-second", "0",
                                     "--seed", "3").wait(), 0)
        b = self.prompt(topic, "Tell me about streaming tokens")
        self.assertEqual(self.worker("--answer", "%s@%d" % (topic, b), "--tokens-per-second", "0",
                                     "--seed", "4").wait(), 0)
        ta, tb = self.tokens(topic, a), self.tokens(topic, b)
        self.assertEqual(ta, demo_tokens("Tell me about streaming tokens", 3))
        self.assertEqual(tb, demo_tokens("Tell me about streaming tokens", 4))
        self.assertNotEqual(ta, tb)

    def test_back_to_back_prompts_each_get_their_answer(self):
        # Two prompts before any answer: the first turn's tokens land after the second prompt,
        # and must not be taken for the second turn's.
        topic = "chatbot/backtoback"
        p0 = self.prompt(topic, "First question about ordering")
        p1 = self.prompt(topic, "Second question about interleaving")
        for off in (p0, p1):
            w = self.worker("--answer", "%s@%d" % (topic, off), "--tokens-per-second", "0")
            self.assertEqual(w.wait(), 0, w.log())
            self.assertNotIn("already answered", w.log())
        self.assert_exact_answer(topic, p0, demo_tokens("First question about ordering", 0))
        self.assert_exact_answer(topic, p1, demo_tokens("Second question about interleaving", 0))
        # And a rerun of either finds it answered.
        w = self.worker("--answer", "%s@%d" % (topic, p1))
        self.assertEqual(w.wait(), 0, w.log())
        self.assertIn("already answered", w.log())

    def test_not_a_prompt_is_refused(self):
        topic = "chatbot/notprompt"
        self.gw.publish(topic, {"event": "token", "data": "x"})
        w = self.worker("--answer", "%s@0" % topic)
        self.assertEqual(w.wait(), 1)
        self.assertIn("not a prompt", w.log())
        self.assertEqual(self.worker("--answer", "%s@5" % topic).wait(), 1)

    def _cancel_turn(self, tps, tokens_before_cancel):
        topic, text = "chatbot/cancel", "Please explain cancellation"
        off = self.prompt(topic, text)
        sse = self.gw.sse("/v1/topics/%s/events?from=%d" % (topic, off + 1))
        self.addCleanup(sse.close)
        w = self.worker("--answer", "%s@%d" % (topic, off), "--tokens-per-second", str(tps))
        got = []
        while len(got) < tokens_before_cancel:
            ev = sse.next(timeout=15)
            if ev.get("event") == "token":
                got.append(json.loads(ev["data"]))
        t0 = time.time()
        cancel_off = self.gw.publish(topic, {"event": "cancel", "data": {"prompt_offset": off}})["first_offset"]
        t_cancel = time.time()
        end = None
        after_cancel = 0
        while end is None:
            ev = sse.next(timeout=15)
            if ev.get("event") == "token":
                got.append(json.loads(ev["data"]))
                if int(ev["id"]) > cancel_off:
                    after_cancel += 1
            elif ev.get("event") == "end":
                end = json.loads(ev["data"])
                t_end = time.time()
        self.assertEqual(w.wait(), 0, w.log())
        self.assertEqual(end, {"reason": "cancelled", "prompt_offset": off})
        expected = demo_tokens(text, 0)
        self.assertLess(len(got), len(expected), "the answer was cut short")
        self.assertEqual(got, expected[:len(got)], "what came is the answer's beginning")
        return t_cancel - t0, t_end - t_cancel, after_cancel

    def test_cancel_stops_within_100ms(self):
        # 20 tokens/s: a token every 50 ms, so stopping within 100 ms allows at most 2 more tokens
        # after the cancel; the end itself lands within 100 ms plus one durable append.
        publish_s, end_s, after = self._cancel_turn(20, 5)
        sys.stderr.write("cancel: published in %.1f ms, end seen %.1f ms later, %d tokens after it\n"
                         % (publish_s * 1000, end_s * 1000, after))
        self.assertLessEqual(after, 2)
        self.assertLess(end_s, 0.25)

    def test_cancel_of_another_turn_is_ignored(self):
        topic, text = "chatbot/othercancel", "Is this mine?"
        off = self.prompt(topic, text)
        self.gw.publish(topic, {"event": "cancel", "data": {"prompt_offset": off + 1000}})
        w = self.worker("--answer", "%s@%d" % (topic, off), "--tokens-per-second", "200")
        self.assertEqual(w.wait(), 0, w.log())
        self.assert_exact_answer(topic, off, demo_tokens(text, 0))

    def test_cancel_before_the_worker_starts(self):
        topic = "chatbot/early"
        off = self.prompt(topic, "Stop right away")
        self.gw.publish(topic, {"event": "cancel", "data": {"prompt_offset": off}})
        w = self.worker("--answer", "%s@%d" % (topic, off), "--tokens-per-second", "5")
        self.assertEqual(w.wait(timeout=10), 0, w.log())
        end = self.wait_end(topic, off)
        self.assertEqual(end["data"], {"reason": "cancelled", "prompt_offset": off})
        self.assertEqual(len(self.tokens(topic, off)), 0)

    def test_sigterm_finishes_the_turn_in_grace(self):
        topic, text = "chatbot/grace", "Finish what you started"
        off = self.prompt(topic, text)
        w = self.worker("--answer", "%s@%d" % (topic, off), "--tokens-per-second", "30",
                        "--grace-ms", "10000")
        deadline = time.time() + 10
        while len(self.tokens(topic, off)) < 3 and time.time() < deadline:
            time.sleep(0.02)
        w.signal(signal.SIGTERM)
        self.assertEqual(w.wait(), 0, w.log())
        self.assert_exact_answer(topic, off, demo_tokens(text, 0))

    def test_shutdown_mid_answer_then_resume(self):
        # Grace 0: the turn stops without an end; the next worker continues from the tokens the
        # topic holds, so the whole answer is there once.
        topic, text = "chatbot/resume", "Resume a half written answer"
        off = self.prompt(topic, text)
        w = self.worker("--answer", "%s@%d" % (topic, off), "--tokens-per-second", "20",
                        "--grace-ms", "0")
        deadline = time.time() + 10
        while len(self.tokens(topic, off)) < 5 and time.time() < deadline:
            time.sleep(0.02)
        t0 = time.time()
        w.signal(signal.SIGINT)
        self.assertEqual(w.wait(), 3, w.log())  # 3: stopped before the end
        self.assertLess(time.time() - t0, 2.0, "shutdown is prompt")
        part = self.tokens(topic, off)
        expected = demo_tokens(text, 0)
        self.assertTrue(5 <= len(part) < len(expected), part)
        self.assertEqual(part, expected[:len(part)])
        self.assertFalse([m for m in self.turn(topic, off) if m["event"] == "end"])
        w2 = self.worker("--answer", "%s@%d" % (topic, off), "--tokens-per-second", "100")
        self.assertEqual(w2.wait(), 0, w2.log())
        self.assertIn("tokens are already in the topic; resuming", w2.log())
        self.assert_exact_answer(topic, off, expected)

    def _through_proxy(self, policy, name):
        proxy = FaultProxy(self.gw.port, policy)
        self.addCleanup(proxy.close)
        topic, text = "chatbot/" + name, "Retries must neither lose nor repeat tokens"
        off = self.prompt(topic, text)
        w = self.worker("--answer", "%s@%d" % (topic, off), "--tokens-per-second", "100",
                        url="http://127.0.0.1:%d" % proxy.port)
        self.assertEqual(w.wait(timeout=60), 0, w.log())
        self.assert_exact_answer(topic, off, demo_tokens(text, 0))
        return proxy, w

    def test_publish_cut_mid_stream_is_retried_exactly(self):
        # The first three publishes are cut after ~1 KB (a few lines in), the rest pass.
        proxy, w = self._through_proxy(lambda n: ("cut", 1000) if n < 3 else None, "cut")
        self.assertGreaterEqual(proxy.faults, 3)
        self.assertIn("resuming", w.log())

    def test_publish_reply_lost_is_retried_exactly(self):
        # The whole answer is appended but its reply never reaches the worker (issue 7's case):
        # the worker must find out from the topic instead of publishing it again.
        proxy, w = self._through_proxy(lambda n: "swallow", "swallow")
        self.assertEqual(proxy.faults, 1)
        self.assertIn("and the end", w.log())

    def test_gateway_restart_mid_answer(self):
        topic, text = "chatbot/restart", "Survive a gateway restart"
        off = self.prompt(topic, text)
        w = self.worker("--answer", "%s@%d" % (topic, off), "--tokens-per-second", "40")
        deadline = time.time() + 10
        while len(self.tokens(topic, off)) < 10 and time.time() < deadline:
            time.sleep(0.02)
        self.gw.restart()
        self.assertEqual(w.wait(timeout=60), 0, w.log())
        self.assert_exact_answer(topic, off, demo_tokens(text, 0))
        self.assertIn("resuming", w.log())

    def test_pull_mode_waits_for_the_gateway_and_stops_on_sigterm(self):
        w = self.worker("--group", "g1", "--concurrency", "2")
        time.sleep(1.0)
        self.assertIsNone(w.proc.poll(), "the worker keeps waiting for the pull API:\n" + w.log())
        t0 = time.time()
        w.signal(signal.SIGTERM)
        self.assertEqual(w.wait(), 0, w.log())
        self.assertLess(time.time() - t0, 2.0)

    def test_usage_errors(self):
        for args in (["--concurrency", "0"], ["--model", "gpt-x"], ["--upstream", "ftp://x"],
                     ["--answer", "nooffset"], ["--api-key-env", "LITEGATE_TEST_UNSET_VAR"],
                     ["--group", "bad/name"], ["extra"]):
            w = self.worker(*args)
            self.assertEqual(w.wait(), 2, "%r: %s" % (args, w.log()))


# ---- Upstream (OpenAI-compatible) ---------------------------------------------------------------

class UpstreamTest(WorkerTestCase):
    def fake(self, **kw):
        f = FakeOpenAI(**kw)
        self.addCleanup(f.close)
        return f

    def test_relays_deltas_with_the_conversation_as_context(self):
        topic = "chatbot/up"
        # An earlier turn, and a cancelled one, in the session.
        p0 = self.prompt(topic, "Hi there")
        self.gw.publish(topic, [{"event": "token", "data": "Hello"}, {"event": "token", "data": "!"},
                                {"event": "end", "data": {"reason": "done"}}])
        p1 = self.prompt(topic, "Tell me a long story")
        self.gw.publish(topic, [{"event": "token", "data": "Once"},
                                {"event": "cancel", "data": {"prompt_offset": p1}},
                                {"event": "end", "data": {"reason": "cancelled"}}])
        off = self.prompt(topic, "And now in French?")
        deltas = ["Bon", "jour", " à", " tous", " \"quoted\"\n", "!"]
        f = self.fake(deltas=deltas)
        os.environ["LITEGATE_TEST_KEY"] = "sekrit"
        try:
            w = self.worker("--answer", "%s@%d" % (topic, off), "--upstream",
                            "http://127.0.0.1:%d" % f.port, "--model", "fake-model",
                            "--api-key-env", "LITEGATE_TEST_KEY")
            self.assertEqual(w.wait(), 0, w.log())
        finally:
            del os.environ["LITEGATE_TEST_KEY"]
        self.assertEqual(len(f.requests), 1)
        req = f.requests[0]
        self.assertEqual(req["path"], "/v1/chat/completions")
        self.assertEqual(req["headers"].get("Authorization"), "Bearer sekrit")
        self.assertEqual(req["body"]["model"], "fake-model")
        self.assertIs(req["body"]["stream"], True)
        self.assertEqual(req["body"]["messages"], [
            {"role": "user", "content": "Hi there"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "Tell me a long story"},
            {"role": "assistant", "content": "Once"},
            {"role": "user", "content": "And now in French?"},
        ])
        self.assertLess(p0, p1)
        self.assert_exact_answer(topic, off, deltas)

    def test_cancel_closes_the_upstream_stream(self):
        topic = "chatbot/upcancel"
        off = self.prompt(topic, "Count slowly")
        f = self.fake(deltas=[" %d" % i for i in range(400)], delay=0.05)
        w = self.worker("--answer", "%s@%d" % (topic, off), "--upstream",
                        "http://127.0.0.1:%d/v1" % f.port)
        deadline = time.time() + 10
        while len(self.tokens(topic, off)) < 5 and time.time() < deadline:
            time.sleep(0.02)
        t_cancel = time.time()
        self.gw.publish(topic, {"event": "cancel", "data": {"prompt_offset": off}})
        end = self.wait_end(topic, off)
        self.assertEqual(end["data"], {"reason": "cancelled", "prompt_offset": off})
        self.assertEqual(w.wait(), 0, w.log())
        self.assertNotIn("model", f.requests[0]["body"], "no --model: the server's default")
        deadline = time.time() + 3
        while f.client_gone_at is None and time.time() < deadline:
            time.sleep(0.02)
        self.assertIsNotNone(f.client_gone_at, "the worker closed the upstream stream")
        self.assertLess(f.client_gone_at - t_cancel, 1.0)
        self.assertLess(f.deltas_sent, 100)
        toks = self.tokens(topic, off)
        self.assertEqual(toks, [" %d" % i for i in range(len(toks))])

    def test_upstream_error_ends_the_turn(self):
        topic = "chatbot/uperr"
        off = self.prompt(topic, "Anyone there?")
        f = self.fake(status=500, error_body={"error": {"message": "model overloaded"}})
        w = self.worker("--answer", "%s@%d" % (topic, off), "--upstream",
                        "http://127.0.0.1:%d/v1/chat/completions" % f.port)
        self.assertEqual(w.wait(), 0, w.log())
        self.assertEqual(f.requests[0]["path"], "/v1/chat/completions")
        end = self.wait_end(topic, off)
        self.assertEqual(end["data"]["reason"], "error")
        self.assertIn("500", end["data"]["message"])
        self.assertIn("model overloaded", end["data"]["message"])

    def test_upstream_unreachable_ends_the_turn(self):
        topic = "chatbot/updown"
        off = self.prompt(topic, "Hello?")
        w = self.worker("--answer", "%s@%d" % (topic, off), "--upstream",
                        "http://127.0.0.1:%d" % harness.free_port())
        self.assertEqual(w.wait(), 0, w.log())
        end = self.wait_end(topic, off)
        self.assertEqual(end["data"]["reason"], "error")


# ---- Pull API (issue 4) -------------------------------------------------------------------------

class PullTest(WorkerTestCase):
    def setUp(self):
        super().setUp()
        st, _, _ = self.gw.http("PUT", "/v1/groups/probe", {"parent": "chatbot", "events": ["prompt"]})
        if st in (404, 405):
            self.skipTest("the gateway has no pull API yet (PUT /v1/groups/probe answered %d); "
                          "issue 4 adds it" % st)
        self.gw.http("DELETE", "/v1/groups/probe")

    def pull_worker(self, group, *args):
        """A worker popping in @group, once its group exists: prompts are published only then, as
        this tests the worker, not how a group finds topics that predate it."""
        w = self.worker("--group", group, *args)
        deadline = time.time() + 10
        while self.gw.http("GET", "/v1/groups/" + group)[0] != 200:
            self.assertLess(time.time(), deadline, "the worker did not create its group:\n" + w.log())
            time.sleep(0.02)
        return w

    def test_pops_and_answers_sessions(self):
        w = self.pull_worker("answerers", "--concurrency", "2", "--tokens-per-second", "100",
                             "--seed", "5")
        prompts = {}
        for i in range(4):
            topic = "chatbot/pull%d" % i
            text = "Session %d asks about pulling prompts" % i
            prompts[topic] = (self.prompt(topic, text), text)
        for topic, (off, text) in prompts.items():
            self.wait_end(topic, off)
            self.assert_exact_answer(topic, off, demo_tokens(text, 5))
        # A second prompt in a session is answered after the first, in order.
        topic = "chatbot/pull0"
        off2 = self.prompt(topic, "And a follow-up")
        self.wait_end(topic, off2)
        self.assert_exact_answer(topic, off2, demo_tokens("And a follow-up", 5))
        w.signal(signal.SIGTERM)
        self.assertEqual(w.wait(), 0, w.log())

    def test_cancel_through_the_pull_worker(self):
        w = self.pull_worker("cancellers", "--tokens-per-second", "20")
        topic = "chatbot/pullcancel"
        off = self.prompt(topic, "A long answer to stop")
        deadline = time.time() + 20
        while len(self.tokens(topic, off)) < 3 and time.time() < deadline:
            time.sleep(0.02)
        self.gw.publish(topic, {"event": "cancel", "data": {"prompt_offset": off}})
        self.assertEqual(self.wait_end(topic, off)["data"]["reason"], "cancelled")
        w.signal(signal.SIGTERM)
        self.assertEqual(w.wait(), 0, w.log())

    def test_sigterm_mid_turn_hands_the_prompt_back(self):
        # Grace 0: the first worker stops mid-answer and nacks; a second one finishes it exactly.
        w = self.pull_worker("handover", "--tokens-per-second", "20", "--grace-ms", "0")
        topic, text = "chatbot/handover", "Hand this over"
        off = self.prompt(topic, text)
        deadline = time.time() + 20
        while len(self.tokens(topic, off)) < 3 and time.time() < deadline:
            time.sleep(0.02)
        w.signal(signal.SIGTERM)
        self.assertEqual(w.wait(), 0, w.log())
        w2 = self.worker("--group", "handover", "--tokens-per-second", "100")
        self.wait_end(topic, off)
        self.assert_exact_answer(topic, off, demo_tokens(text, 0))
        w2.signal(signal.SIGTERM)
        self.assertEqual(w2.wait(), 0, w2.log())

    def test_sigkill_mid_turn_is_redelivered_and_resumed(self):
        # A worker that dies mid-answer never acks; after invisible_ms the gateway hands the prompt
        # to the next worker (delivery 2), which continues the answer from the topic.
        w = self.pull_worker("crashers", "--tokens-per-second", "20", "--invisible-ms", "1000")
        topic, text = "chatbot/crash", "Survive a crashed worker"
        off = self.prompt(topic, text)
        deadline = time.time() + 20
        while len(self.tokens(topic, off)) < 3 and time.time() < deadline:
            time.sleep(0.02)
        w.signal(signal.SIGKILL)
        w.wait()
        w2 = self.pull_worker("crashers", "--tokens-per-second", "100", "--invisible-ms", "1000")
        self.wait_end(topic, off)
        self.assert_exact_answer(topic, off, demo_tokens(text, 0))
        self.assertIn("(delivery 2)", w2.log())
        self.assertIn("tokens are already in the topic; resuming", w2.log())
        w2.signal(signal.SIGTERM)
        self.assertEqual(w2.wait(), 0, w2.log())


class TokenTest(PullTest):
    """A gateway with auth.mode "jwt": the worker shows the token of --token-file on every gateway
    request (pop, ack, history, the cancel watch, the answer stream), and reads the file again when
    it changes, so a rotated token takes over without a restart."""
    SECRET = "worker-test-secret-0123456789abcdef"
    CONFIG = {"auth": {"mode": "jwt", "hs256_secrets": [{"kid": "w1", "secret": SECRET}], "leeway_s": 0}}

    def token(self, ttl=300, **scope):
        import base64, hashlib, hmac

        def b64u(b):
            return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
        now = int(time.time())
        signing = (b64u(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "w1"}).encode()) + "." +
                   b64u(json.dumps({"iat": now, "exp": now + ttl, "litegate": scope}).encode()))
        mac = hmac.new(self.SECRET.encode(), signing.encode(), hashlib.sha256).digest()
        return signing + "." + b64u(mac)

    def setUp(self):
        harness.TestCase.setUp(self)  # the gateway; PullTest's probe would need a token
        self.url = "http://127.0.0.1:%d" % self.gw.port
        self.workers = []
        self.gw.default_headers = {"Authorization": "Bearer " + self.token(admin=True)}

    def write_token(self, path, tok):
        tmp = path + ".new"
        with open(tmp, "w") as f:
            f.write(tok + "\n")
        os.replace(tmp, path)  # as a rotating sidecar would: the worker never reads half a token

    def test_token_file_is_used_and_rotated(self):
        path = os.path.join(self.gw.tmp, "worker.jwt")
        # Expired: the worker cannot even create its group, and says why.
        self.write_token(path, self.token(ttl=-10, admin=True))
        w = self.worker("--group", "secured", "--token-file", path, "--tokens-per-second", "100")
        deadline = time.time() + 10
        while "401" not in w.log() and time.time() < deadline:
            time.sleep(0.05)
        self.assertIn("401", w.log())
        self.assertEqual(self.gw.http("GET", "/v1/groups/secured")[0], 404)
        # A fresh token in the file: picked up without a restart.
        self.write_token(path, self.token(admin=True))
        deadline = time.time() + 15
        while self.gw.http("GET", "/v1/groups/secured")[0] != 200:
            self.assertLess(time.time(), deadline, "the worker did not use the new token:\n" + w.log())
            time.sleep(0.05)
        topic, text = "chatbot/secured", "Answer behind a token"
        off = self.prompt(topic, text)
        self.wait_end(topic, off)
        self.assert_exact_answer(topic, off, demo_tokens(text, 0))
        w.signal(signal.SIGTERM)
        self.assertEqual(w.wait(), 0, w.log())

    def test_without_a_token_nothing_is_answered(self):
        w = self.worker("--group", "anonymous", "--tokens-per-second", "100")
        time.sleep(1.0)
        self.assertEqual(self.gw.http("GET", "/v1/groups/anonymous")[0], 404)
        w.signal(signal.SIGTERM)
        w.wait()

    def test_bad_token_files_are_usage_errors(self):
        for content in ("", "two tokens\n"):
            path = os.path.join(self.gw.tmp, "bad.jwt")
            with open(path, "w") as f:
                f.write(content)
            r = subprocess.run([worker_path(), "--token-file", path], capture_output=True, timeout=20)
            self.assertEqual(r.returncode, 2)
            self.assertIn(b"--token-file", r.stderr)
        r = subprocess.run([worker_path(), "--token-file", "/nonexistent/x.jwt"], capture_output=True,
                           timeout=20)
        self.assertEqual(r.returncode, 2)

    # The inherited PullTest cases are not repeated here.
    test_pops_and_answers_sessions = None
    test_cancel_through_the_pull_worker = None
    test_sigterm_mid_turn_hands_the_prompt_back = None
    test_sigkill_mid_turn_is_redelivered_and_resumed = None


if __name__ == "__main__":
    harness.main()
