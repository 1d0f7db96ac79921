"""A minimal HTTP/2 client over TLS (Python 3 standard library only), for the situations curl cannot
produce: a client that never opens its flow-control window, one that stops sending a body without
ending or resetting its stream, one that goes away with a response half sent.

It speaks just enough RFC 9113: the preface, SETTINGS (with the values a test asks for, acked both
ways), HEADERS (one frame, END_HEADERS), DATA within the server's flow-control windows, RST_STREAM,
WINDOW_UPDATE, PING acks and GOAWAY. HPACK (RFC 7541) is the simple subset both sides need: it sends
every field as a literal without indexing and without Huffman coding, and reads the same forms
plus indexed static-table fields (libwebsockets 4.1.6 encodes its responses that way).
"""

import socket
import ssl
import struct
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20

SETTINGS_HEADER_TABLE_SIZE = 1
SETTINGS_ENABLE_PUSH = 2
SETTINGS_MAX_CONCURRENT_STREAMS = 3
SETTINGS_INITIAL_WINDOW_SIZE = 4
SETTINGS_MAX_FRAME_SIZE = 5

NO_ERROR, CANCEL = 0x0, 0x8

# RFC 7541 Appendix A: the static table entries a response may refer to.
STATIC = {1: (":authority", ""), 2: (":method", "GET"), 3: (":method", "POST"), 4: (":path", "/"),
          5: (":path", "/index.html"), 6: (":scheme", "http"), 7: (":scheme", "https"),
          8: (":status", "200"), 9: (":status", "204"), 10: (":status", "206"),
          11: (":status", "304"), 12: (":status", "400"), 13: (":status", "404"),
          14: (":status", "500")}


class GoAway(Exception):
    """The server sent GOAWAY: the connection is over."""


def _hpack_int(value, prefix_bits, first=0):
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


def _hpack_str(s):
    b = s.encode() if isinstance(s, str) else s
    return _hpack_int(len(b), 7) + b  # H = 0: no Huffman


def encode_headers(fields):
    """Literal header fields without indexing, new names (RFC 7541 6.2.2), no Huffman."""
    return b"".join(b"\x00" + _hpack_str(name) + _hpack_str(value) for name, value in fields)


def _read_int(buf, i, prefix_bits):
    limit = (1 << prefix_bits) - 1
    value = buf[i] & limit
    i += 1
    if value < limit:
        return value, i
    shift = 0
    while True:
        b = buf[i]
        i += 1
        value += (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, i


def _read_str(buf, i):
    if buf[i] & 0x80:
        raise ValueError("a Huffman-coded string (not supported by this client)")
    n, i = _read_int(buf, i, 7)
    return buf[i:i + n].decode("latin-1"), i + n


def decode_headers(block, dynamic):
    """Decode one header block; @dynamic is the connection's dynamic table (a list, newest first)."""
    out, i = [], 0
    while i < len(block):
        b = block[i]
        if b & 0x80:  # indexed
            idx, i = _read_int(block, i, 7)
            out.append(STATIC[idx] if idx in STATIC else dynamic[idx - 62])
            continue
        if b & 0x40:  # literal with incremental indexing
            idx, i = _read_int(block, i, 6)
            add = True
        elif b & 0x20:  # dynamic table size update
            _, i = _read_int(block, i, 5)
            continue
        else:  # literal without indexing / never indexed
            idx, i = _read_int(block, i, 4)
            add = False
        if idx:
            name = STATIC[idx][0] if idx in STATIC else dynamic[idx - 62][0]
        else:
            name, i = _read_str(block, i)
        value, i = _read_str(block, i)
        out.append((name, value))
        if add:
            dynamic.insert(0, (name, value))
    return out


class Stream:
    def __init__(self, sid, window):
        self.sid = sid
        self.headers = None     # the response's fields, once its HEADERS came
        self.data = b""
        self.ended = False      # END_STREAM seen
        self.reset = None       # the RST_STREAM error code, if one came
        self.send_window = window


class H2Conn:
    """One HTTP/2 connection. settings: {id: value} sent in the client's SETTINGS frame; rcvbuf: a
    small SO_RCVBUF for a client that is to stop reading (set before the connection is made)."""

    def __init__(self, port, cafile, settings=None, timeout=10, rcvbuf=None):
        ctx = ssl.create_default_context(cafile=cafile)
        ctx.set_alpn_protocols(["h2"])
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        raw.settimeout(timeout)
        raw.connect(("127.0.0.1", port))
        self.sock = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        if self.sock.selected_alpn_protocol() != "h2":
            raise AssertionError("ALPN did not pick h2: %r" % self.sock.selected_alpn_protocol())
        self.buf = b""
        self.streams = {}
        self.next_sid = 1
        self.dynamic = []
        self.goaway = None            # (last_sid, code, debug) once GOAWAY came
        self.first_frame = None       # the type of the server's first frame (its preface: SETTINGS)
        self.server_settings = {}
        self.conn_window = 65535      # what we may still send on the connection
        self.peer_initial_window = 65535
        self.port = port
        payload = b"".join(struct.pack(">HI", k, v) for k, v in (settings or {}).items())
        self.sock.sendall(PREFACE + self._frame(SETTINGS, 0, 0, payload))

    # -- frames ----------------------------------------------------------------------------------
    @staticmethod
    def _frame(ftype, flags, sid, payload=b""):
        return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload

    def send_frame(self, ftype, flags, sid, payload=b""):
        self.sock.sendall(self._frame(ftype, flags, sid, payload))

    def _read_frame(self, deadline):
        while True:
            if len(self.buf) >= 9:
                length = int.from_bytes(self.buf[:3], "big")
                if len(self.buf) >= 9 + length:
                    ftype, flags = self.buf[3], self.buf[4]
                    sid = int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF
                    payload = self.buf[9:9 + length]
                    self.buf = self.buf[9 + length:]
                    if self.first_frame is None:
                        self.first_frame = ftype
                    return ftype, flags, sid, payload
            left = deadline - time.time()
            if left <= 0:
                raise TimeoutError("no HTTP/2 frame in time")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            self.buf += chunk

    def _handle(self, ftype, flags, sid, payload):
        st = self.streams.get(sid)
        if ftype in (DATA, HEADERS) and flags & PADDED:
            pad = payload[0]
            payload = payload[1:len(payload) - pad]
        if ftype == SETTINGS and not flags & ACK:
            for k in range(0, len(payload), 6):
                key, value = struct.unpack(">HI", payload[k:k + 6])
                self.server_settings[key] = value
                if key == SETTINGS_INITIAL_WINDOW_SIZE:
                    for s in self.streams.values():
                        s.send_window += value - self.peer_initial_window
                    self.peer_initial_window = value
            self.send_frame(SETTINGS, ACK, 0)
        elif ftype == PING and not flags & ACK:
            self.send_frame(PING, ACK, 0, payload)
        elif ftype == GOAWAY:
            last, code = struct.unpack(">II", payload[:8])
            self.goaway = (last & 0x7FFFFFFF, code, payload[8:])
        elif ftype == WINDOW_UPDATE:
            inc = struct.unpack(">I", payload)[0] & 0x7FFFFFFF
            if sid == 0:
                self.conn_window += inc
            elif st:
                st.send_window += inc
        elif ftype == HEADERS and st:
            if flags & PRIORITY_FLAG:
                payload = payload[5:]
            if not flags & END_HEADERS:
                raise ValueError("a header block in several frames (not supported by this client)")
            fields = decode_headers(payload, self.dynamic)
            if st.headers is None:
                st.headers = dict(fields)
            if flags & END_STREAM:
                st.ended = True
        elif ftype == DATA and st:
            st.data += payload
            if flags & END_STREAM:
                st.ended = True
        elif ftype == RST_STREAM and st:
            st.reset = struct.unpack(">I", payload)[0]

    def pump(self, until, timeout=10):
        """Read and handle frames until until() is true. GoAway if the server sent GOAWAY first."""
        deadline = time.time() + timeout
        while not until():
            if self.goaway:
                raise GoAway(self.goaway)
            self._handle(*self._read_frame(deadline))

    def pump_for(self, seconds):
        """Read and handle whatever comes for @seconds (a quiet connection is fine)."""
        deadline = time.time() + seconds
        try:
            while time.time() < deadline and not self.goaway:
                self._handle(*self._read_frame(deadline))
        except TimeoutError:
            pass

    # -- requests --------------------------------------------------------------------------------
    def request(self, method, path, headers=(), body=None, end_stream=True, one_write=False):
        """Open a stream with HEADERS (and send @body in DATA frames). END_STREAM goes after the body
        when @end_stream; without a body, on the HEADERS frame. @one_write: HEADERS and a small
        @body's one DATA frame in the same write (so the server reads them together). Returns the
        stream id."""
        sid = self.next_sid
        self.next_sid += 2
        self.streams[sid] = Stream(sid, self.peer_initial_window)
        fields = [(":method", method), (":scheme", "https"), (":path", path),
                  (":authority", "127.0.0.1:%d" % self.port)] + list(headers)
        flags = END_HEADERS | (END_STREAM if end_stream and body is None else 0)
        head = self._frame(HEADERS, flags, sid, encode_headers(fields))
        if one_write and body is not None:
            self.sock.sendall(head + self._frame(DATA, END_STREAM if end_stream else 0, sid, body))
            return sid
        self.sock.sendall(head)
        if body is not None:
            self.send_data(sid, body, end_stream)
        return sid

    def data_until(self, sid, needle, timeout=10):
        """Wait until @needle is in what came on @sid; its data so far."""
        st = self.streams[sid]
        self.pump(lambda: needle in st.data, timeout)
        return st.data

    def send_data(self, sid, data, end_stream=False, timeout=10):
        """DATA frames within the server's windows (waits for its WINDOW_UPDATEs) and frame size."""
        st = self.streams[sid]
        max_frame = self.server_settings.get(SETTINGS_MAX_FRAME_SIZE, 16384)
        view = memoryview(data)
        while True:
            if view:
                self.pump(lambda: min(st.send_window, self.conn_window) > 0, timeout)
            n = min(len(view), max_frame, st.send_window, self.conn_window)
            last = n == len(view)
            self.send_frame(DATA, END_STREAM if last and end_stream else 0, sid, bytes(view[:n]))
            st.send_window -= n
            self.conn_window -= n
            view = view[n:]
            if last:
                return

    def rst(self, sid, code=CANCEL):
        self.send_frame(RST_STREAM, 0, sid, struct.pack(">I", code))

    def window_update(self, sid, increment):
        self.send_frame(WINDOW_UPDATE, 0, sid, struct.pack(">I", increment))

    def response(self, sid, timeout=10):
        """Wait for the whole response on @sid: (status, body bytes)."""
        st = self.streams[sid]
        self.pump(lambda: st.ended or st.reset is not None, timeout)
        if st.reset is not None:
            raise ConnectionError("stream %d reset with code %d" % (sid, st.reset))
        return int(st.headers[":status"]), st.data

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
