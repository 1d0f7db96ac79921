"""Streamed NDJSON publishes over a chunked request body: each line reaches subscribers while
the upload is still open, the reply comes when the body ends, and bad framing is refused."""

import json
import time

import harness
from harness import ChunkedUpload, TestCase


def line(obj):
    return json.dumps(obj) + "\n"


class StreamedUpload(TestCase):
    def upload(self, path="/v1/topics/chatbot/nd/messages", **kw):
        up = ChunkedUpload(self.gw.port, path, **kw)
        self.addCleanup(up.close)
        return up

    def test_lines_reach_a_live_subscriber_while_the_upload_is_open(self):
        sse = self.gw.sse("/v1/topics/chatbot/nd/events")
        self.addCleanup(sse.close)
        ws = self.gw.ws()
        self.addCleanup(ws.close)
        ws.send({"op": "subscribe", "topic": "chatbot/nd"})
        ws.recv()  # subscribed
        up = self.upload()
        tokens = ["Hel", "lo", ",", " wor", "ld"]
        for i, tok in enumerate(tokens):
            t0 = time.time()
            up.send(line({"event": "token", "data": tok}))
            # Delivered before the next line is even written, and well before the body ends.
            self.assertEqual(sse.messages(1, timeout=5), [(i, "token", tok)])
            m = ws.recv(timeout=5)
            self.assertEqual((m["offset"], m["data"]), (i, tok))
            self.assertLess(time.time() - t0, 2)
            time.sleep(0.05)
        # A line split across chunks, and several lines in one chunk.
        half = line({"event": "token", "data": "split"})
        up.send(half[:7])
        up.send(half[7:] + line({"data": 6}) + line({"data": 7}))
        self.assertEqual([m[2] for m in sse.messages(3)], ["split", 6, 7])
        up.send(json.dumps({"event": "end", "data": {"reason": "done"}}))  # no trailing newline
        status, headers, body = up.finish()
        self.assertEqual(status, 200, body)
        self.assertEqual(body, {"topic": "chatbot/nd", "first_offset": 0, "last_offset": 8, "count": 9})
        self.assertEqual(headers.get("connection"), "close")
        self.assertEqual(sse.messages(1), [(8, "end", {"reason": "done"})])

    def test_every_split_point_and_many_small_chunks(self):
        text = "".join(line({"event": "token", "data": "t%02d" % i}) for i in range(30))
        up = self.upload(path="/v1/topics/chatbot/split/messages")
        for i in range(0, len(text), 3):
            up.send(text[i:i + 3])
        status, _, body = up.finish()
        self.assertEqual(status, 200, body)
        self.assertEqual(body["count"], 30)
        self.assertEqual([m["data"] for m in self.gw.history("chatbot/split")], ["t%02d" % i for i in range(30)])

    def test_extensions_trailers_and_chunked_json(self):
        up = self.upload(path="/v1/topics/chatbot/ext/messages")
        data = line({"data": 1}).encode()
        up.send_raw(b"%x;name=value\r\n%s\r\n" % (len(data), data))
        up.send_raw(b"0\r\nX-Trailer: yes\r\n\r\n")
        status, _, body = up.response()
        self.assertEqual((status, body["count"]), (200, 1))
        up2 = self.upload(path="/v1/topics/chatbot/ext/messages", content_type="application/json")
        up2.send('[{"data":2},')
        up2.send('{"data":3}]')
        status, _, body = up2.finish()
        self.assertEqual((status, body["first_offset"], body["count"]), (200, 1, 2))

    def test_bad_line_mid_stream_keeps_earlier_lines_and_says_so(self):
        up = self.upload(path="/v1/topics/chatbot/bad/messages")
        up.send(line({"data": 1}) + line({"data": 2}))
        time.sleep(0.2)
        up.send(line({"data": 3}) + '{"data": oops}\n' + line({"data": 5}))
        status, headers, body = up.response()
        self.assertEqual(status, 400, body)
        self.assertEqual(body["error"]["code"], "bad_json")
        self.assertEqual((body["count"], body["first_offset"], body["last_offset"]), (3, 0, 2))
        self.assertEqual(headers.get("connection"), "close")
        self.assertEqual([m["data"] for m in self.gw.history("chatbot/bad")], [1, 2, 3])

    def test_bad_chunk_framing_is_400(self):
        for raw in [b"zz\r\n", b"5\r\nabc", b"3\nabc\r\n", b"-1\r\n", b"11111111111111111\r\n"]:
            with self.subTest(raw=raw):
                up = ChunkedUpload(self.gw.port, "/v1/topics/chatbot/frame/messages")
                try:
                    up.send_raw(raw)
                    if raw == b"5\r\nabc":
                        up.send_raw(b"de!!")  # chunk data not followed by CRLF
                    status, headers, body = up.response()
                    self.assertIn(status, (400, 413), body)
                    self.assertEqual(headers.get("connection"), "close")
                finally:
                    up.close()
        # The server is fine afterwards.
        self.assertEqual(self.gw.http("GET", "/healthz")[0], 200)


if __name__ == "__main__":
    harness.main()
