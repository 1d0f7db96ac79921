#!/usr/bin/env python3
"""Writes the hand-made seed corpus of every fuzz target into tests/fuzz/corpus/<target>/.

The files are committed; this script says what they are and rebuilds them after a format change
(python3 tests/fuzz/make_corpus.py). Each target's input format is described at the top of its
fuzz_<target>.c. Crashers found by fuzzing go to regressions/<target>/ instead, never here.
"""
import base64
import hashlib
import hmac
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- route: "<path>?<query>" -------------------------------------------------------------------
ROUTES = {
    "healthz": "/healthz",
    "metrics": "/metrics?x=1",
    "ws": "/v1/ws",
    "topic": "/v1/topics/chatbot/s1",
    "messages_from_limit": "/v1/topics/chatbot/s1/messages?from=0&limit=100",
    "publish_priority": "/v1/topics/chatbot/s1/messages?priority=7&expected_offset=3",
    "publish_priority_bad": "/v1/topics/chatbot/s1/messages?priority=10",
    "events_last_event_id": "/v1/topics/agent/run-42/events?last_event_id=17",
    "session_events_tail": "/v1/sessions/abc/events?from=tail",
    "session": "/v1/sessions/a:b.c_d-e",
    "session_messages": "/v1/sessions/x/messages?limit=5&from=3&cache=1",
    "bad_parent": "/v1/topics/Bad/x",
    "dot_id": "/v1/topics/chatbot/.hidden/events",
    "double_slash": "/v1/topics/chatbot//messages",
    "unknown_tail": "/v1/topics/chatbot/s1/unknown",
    "trailing_slash": "/v1/topics/chatbot/s1/",
    "traversal": "/v1/topics/chatbot/s1/../x",
    "encoded_slash": "/v1/topics/chatbot/s%2F1",
    "from_max": "/v1/topics/chatbot/s1/messages?from=18446744073709551615",
    "from_overflow": "/v1/topics/chatbot/s1/messages?from=18446744073709551616",
    "limit_negative": "/v1/topics/chatbot/s1/messages?limit=-1",
    "repeated": "/v1/topics/a/b/events?x=1&from=5&from=tail&&=&limit",
    "id_128": "/v1/topics/chatbot/" + "i" * 128,
    "id_129": "/v1/topics/chatbot/" + "i" * 129,
    "parent_32": "/v1/topics/" + "p" * 32 + "/x",
    "parent_33": "/v1/topics/" + "p" * 33 + "/x",
    "topic_name": "chatbot/s1",
    "u64_digits": "12345678901234567890",
}

# ---- chunked: flags byte (bit 0: round trip; bits 1..: abort choice), limit byte, body ----------
D, RT = b"\x00", b"\x01"
LIM_4096, LIM_1, LIM_MAX = b"\x05", b"\x01", b"\x07"
CHUNKED = {
    "simple": D + LIM_4096 + b"5\r\nhello\r\n0\r\n\r\n",
    "two_chunks": b"\x06" + LIM_4096 + b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    "extension": D + LIM_4096 + b"5;name=value;x\r\nhello\r\n0;end\r\n\r\n",
    "trailers": D + LIM_4096 + b"3\r\nabc\r\n0\r\nX-Checksum: 1\r\nTrailer: two\r\n\r\n",
    "upper_hex": D + LIM_4096 + b"A\r\n0123456789\r\n0\r\n\r\n",
    "leading_zeros": D + LIM_4096 + b"0005\r\nhello\r\n000\r\n\r\n",
    "ndjson": b"\x02" + LIM_MAX + b'e\r\n{"data":"t0"}\n\r\nf\r\n{"data":"t1"}\r\n\r\n0\r\n\r\n',
    "next_request": D + LIM_4096 + b"0\r\n\r\nGET / HTTP/1.1\r\n\r\n",
    "bare_lf": D + LIM_4096 + b"5\nhello\n0\n\n",
    "too_many_digits": D + LIM_MAX + b"00000000000000001\r\nx\r\n0\r\n\r\n",
    "over_limit": D + LIM_1 + b"2\r\nab\r\n0\r\n\r\n",
    "huge_size": D + LIM_MAX + b"ffffffffffffffff\r\nabc",
    "negative": D + LIM_4096 + b"-1\r\n",
    "space": D + LIM_4096 + b"5 \r\nhello\r\n0\r\n\r\n",
    "no_crlf_after_data": D + LIM_4096 + b"5\r\nhelloX\r\n",
    "ctl_in_trailer": D + LIM_4096 + b"0\r\nX: \x01\r\n\r\n",
    "long_extension": D + LIM_4096 + b"1;" + b"e" * 300 + b"\r\nx\r\n0\r\n\r\n",
    "truncated": D + LIM_4096 + b"10\r\n0123456789",
    "rt_text": RT + D + b"hello world, streamed in chunks",
    "rt_empty": RT + D,
    "rt_binary": RT + D + bytes(range(256)),
    "rt_long": RT + b"\x03" + b"0123456789abcdef" * 64,
}

# ---- json: one JSON text -------------------------------------------------------------------------
JSON = {
    "object": '{"a":1,"b":[true,false,null],"c":{"d":"e"}}',
    "empty_object": "{}",
    "empty_array": " [ ] ",
    "string_escapes": '"tab\\t nl\\n quote\\" slash\\/ u\\u00e9 pair\\ud83d\\ude00"',
    "utf8": '"caf\xc3\xa9 \xf0\x9f\x98\x80"',
    "numbers": "[0,-0,1.5,-2.25e10,1E+2,3e-7,0.0]",
    "whitespace": ' \t\n\r{ "k" :\n[ 1 , 2 ] }\r\n',
    "leading_zero": "01",
    "dot_no_digit": "1.",
    "trailing_comma": "[1,]",
    "key_no_value": '{"a"}',
    "control_char": '"a\x01b"',
    "lone_surrogate": '"\\ud800"',
    "big_int": "123456789012345678901234567890",
    "big_real": "1e999",
    "nul_escape": '"\\u0000"',
    "bad_utf8": '"\xff"',
    "overlong_utf8": '"\xc0\xaf"',
    "surrogate_utf8": '"\xed\xa0\x80"',
    "depth_64": "[" * 64 + "]" * 64,
    "depth_65": "[" * 65 + "]" * 65,
    "two_values": "1 2",
    "literal_typo": "tru",
    "dup_keys": '{"a":1,"a":2}',
}

# ---- pubparse: mode byte (0 json, 1 ndjson, 2 text), batch-limit byte, body -----------------------
J, N, T = b"\x00", b"\x01", b"\x02"
MAX2, MAX1000 = b"\x01", b"\x80"
PUB = {
    "json_one": J + MAX1000 + b'{"data":"hi"}',
    "json_full": J + MAX1000 + b'{"event":"token","data":{"t":"a","n":[1,2.5]},"key":"k-1"}',
    "json_batch": J + MAX1000 + b'[{"data":1},{"event":"e2","data":"two"},{"data":null}]',
    "json_no_data": J + MAX1000 + b'{"event":"done"}',
    "json_ws": J + MAX1000 + b' { "data" : [ 1 , { "a b" : " c " } ] } \n',
    "json_empty_batch": J + MAX1000 + b"[]",
    "json_too_many": J + MAX2 + b'[{"data":1},{"data":2},{"data":3}]',
    "json_dup": J + MAX1000 + b'{"data":1,"data":2}',
    "json_unknown": J + MAX1000 + b'{"foo":1}',
    "json_bad_event": J + MAX1000 + b'{"event":"bad event","data":1}',
    "json_escaped_event": J + MAX1000 + b'{"event":"\\u0061","data":1}',
    "json_empty_key": J + MAX1000 + b'{"key":"","data":1}',
    "json_trailing": J + MAX1000 + b'{"data":1} x',
    "json_not_object": J + MAX1000 + b'"just a string"',
    "json_dup_in_data": J + MAX1000 + b'{"data":{"a":1,"a":2}}',
    "json_priority": J + MAX1000 + b'[{"data":1,"priority":9},{"data":2,"priority":0},{"data":3}]',
    "json_priority_bad": J + MAX1000 + b'{"data":1,"priority":10}',
    "json_priority_real": J + MAX1000 + b'{"data":1,"priority":1.0}',
    "json_priority_string": J + MAX1000 + b'{"data":1,"priority":"5"}',
    "json_priority_neg": J + MAX1000 + b'{"data":1,"priority":-1}',
    "ndjson_priority": N + MAX1000 + b'{"data":"t0","priority":3}\n{"data":"t1","priority":12}\n',
    "ndjson_lines": N + MAX1000 + b'{"data":"t0"}\n{"data":"t1"}\r\n\n   \n{"event":"done"}',
    "ndjson_bad_middle": N + MAX1000 + b'{"data":1}\n{"data":\n{"data":3}\n',
    "ndjson_array_line": N + MAX1000 + b'[{"data":1}]\n',
    "ndjson_blank": N + MAX1000 + b"\n\r\n \t\n",
    "text_plain": T + MAX1000 + b"hello",
    "text_escapes": T + MAX1000 + b'line1\nline2\t"quoted" back\\slash',
    "text_controls": T + MAX1000 + b"\x00\x01\x1f\x7f",
    "text_utf8": T + MAX1000 + "caf\u00e9 \U0001F600".encode(),
    "text_bad_utf8": T + MAX1000 + b"ok \xff",
    "text_empty": T + MAX1000,
}

# ---- wsproto: one client message -----------------------------------------------------------------
WS = {
    "ping": '{"op":"ping"}',
    "ping_req": '{"op":"ping","req":7}',
    "subscribe": '{"op":"subscribe","topic":"chatbot/s1"}',
    "subscribe_from": '{"op":"subscribe","topic":"chatbot/s1","from":12}',
    "subscribe_tail": '{"op":"subscribe","topic":"chatbot/s1","from":"tail","req":"a"}',
    "unsubscribe": '{"op":"unsubscribe","topic":"agent/run-1"}',
    "publish": '{"op":"publish","topic":"chatbot/s1","event":"token","data":{"t":"hi"},"key":"k1","req":7}',
    "publish_no_data": '{"op":"publish","topic":"chatbot/s1"}',
    "publish_ws": ' { "op" : "publish" , "topic" : "chatbot/s1" , "data" : [ 1 , 2 ] } ',
    "unknown_op": '{"op":"nope"}',
    "bad_topic": '{"op":"publish","topic":"bad"}',
    "from_negative": '{"op":"subscribe","topic":"chatbot/s1","from":-1}',
    "from_fraction": '{"op":"subscribe","topic":"chatbot/s1","from":1.5}',
    "from_max": '{"op":"subscribe","topic":"chatbot/s1","from":18446744073709551615}',
    "dup_op": '{"op":"ping","op":"ping"}',
    "unknown_member": '{"op":"ping","x":1,"req":3}',
    "req_too_long": '{"op":"ping","req":"' + "r" * 70 + '"}',
    "req_object": '{"op":"ping","req":{}}',
    "publish_from": '{"op":"publish","topic":"chatbot/s1","from":1}',
    "unsubscribe_data": '{"op":"unsubscribe","topic":"chatbot/s1","data":1}',
    "escaped_topic": '{"op":"subscribe","topic":"chatbot\\/s1"}',
    "not_json": "hello",
    "array": '[{"op":"ping"}]',
    "trailing": '{"op":"ping"} {}',
    "publish_priority": '{"op":"publish","topic":"chatbot/s1","data":"p","priority":9,"req":1}',
    "publish_priority_bad": '{"op":"publish","topic":"chatbot/s1","data":"p","priority":"9"}',
    "subscribe_priority": '{"op":"subscribe","topic":"chatbot/s1","priority":1}',
}

# ---- config: a config file -----------------------------------------------------------------------
CONFIG = {
    "empty_object": "{}",
    "listen_v6": '{"listen":"[::1]:9000","data_dir":"/var/lib/litegate"}',
    "listen_port0": '{"listen":"0.0.0.0:0"}',
    "listen_noport": '{"listen":"localhost"}',
    "parents_empty": '{"parents":[]}',
    "parents_dup": '{"parents":[{"name":"a"},{"name":"a"}]}',
    "parents_full": '{"parents":[{"name":"chatbot","max_message_bytes":65536,"idle_ttl_s":60,'
                    '"max_retained":100,"priority":9},{"name":"agent-2"}]}',
    "parent_priority": '{"parents":[{"name":"x","priority":10}]}',
    "parent_no_name": '{"parents":[{"priority":1}]}',
    "parent_unknown": '{"parents":[{"name":"x","color":"red"}]}',
    "max_batch_zero": '{"limits":{"max_batch":0}}',
    "storage": '{"storage":{"segment_bytes":1048576,"retention_s":1,"log_max_bytes":0,'
               '"queue_max_bytes":1024}}',
    "unknown": '{"unknown":1}',
    "group_not_object": '{"limits":5}',
    "origins_any": '{"cors_origins":["*"]}',
    "origins_space": '{"cors_origins":["a b"]}',
    "origins_empty_list": '{"cors_origins":[]}',
    "static_null": '{"static_root":null}',
    "static_empty": '{"static_root":""}',
    "testing": '{"testing":{"fail_write_after":3,"fail_fsync_after":0,"fail_errno":28}}',
    "durability_interval": '{"durability":"interval","fsync_interval_ms":5,"log_level":"debug"}',
    "bad_durability": '{"durability":"sometimes"}',
    "root_array": "[]",
    "dup_keys": '{"listen":"127.0.0.1:1","listen":"127.0.0.1:2"}',
    "negative": '{"heartbeat_s":-1}',
    "timeouts": '{"timeouts":{"keepalive_s":1,"body_s":2,"stall_s":3,"shutdown_grace_s":0}}',
    "not_json": "listen = 8080",
}


# ---- cl: three control bytes (segments, two cut points), then the log bytes -----------------------
def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


MORE = 0x10


def rec(flags=0, topic=1, offset=0, time_ms=1700000000000, ev=b"message", key=b"", rkey=b"",
        payload=b'"hi"', prio=0):
    """prio as stored in byte 45: 0 none, else the message's priority + 1 (1..10)."""
    total = 48 + len(ev) + len(key) + len(rkey) + len(payload)
    body = struct.pack("<HBBQQQIBB2x", flags, len(ev), len(key), topic, offset, time_ms,
                       len(payload), len(rkey), prio) + ev + key + rkey + payload
    assert len(body) == total - 12
    return struct.pack("<III", 0x3152474C, total, crc32c(body)) + body


def ctl(nseg, c1=128, c2=128):
    return bytes([nseg - 1, c1, c2])


r0 = rec(offset=0)
r1 = rec(offset=1, ev=b"token", key=b"k-1", payload=b'{"t":"a"}')
r2 = rec(offset=2, ev=b"done", rkey=b"req-7", payload=b"null")
create = rec(flags=1, topic=3, ev=b"", payload=b"chatbot/s1")
delete = rec(flags=2, topic=3, ev=b"", payload=b"chatbot/s1")
chain = rec(MORE, offset=3) + rec(MORE, offset=4) + rec(offset=5)
three = r0 + r1 + r2
bad_crc = bytearray(r1)
bad_crc[-1] ^= 1


def recrc(b):
    """The record @p b (a bytearray edited after rec()) with its CRC made right again."""
    return bytes(b[:8]) + struct.pack("<I", crc32c(bytes(b[12:]))) + bytes(b[12:])


reserved = bytearray(r0)
reserved[46] = 1
reserved_ok_crc = recrc(reserved)
prio_bad = bytearray(r0)
prio_bad[45] = 11
prio_bad_ok_crc = recrc(prio_bad)

CL = {
    "empty": ctl(1),
    "one": ctl(1) + r0,
    "three": ctl(1) + three,
    "topic_create_delete": ctl(1) + create + r0 + delete,
    "chain_whole": ctl(1) + r0 + chain,
    "chain_cut": ctl(1) + r0 + rec(MORE, offset=1) + rec(MORE, offset=2),
    "torn_last": ctl(1) + r0 + r1[:30],
    "torn_header": ctl(1) + r0 + r1[:3],
    "bad_crc_middle": ctl(1) + r0 + bytes(bad_crc) + r2,
    "garbage_tail": ctl(1) + three + b"\x00" * 17,
    "reserved_set": ctl(1) + r0 + reserved_ok_crc,
    "priorities": ctl(1) + rec(offset=0, prio=1) + rec(offset=1, prio=10) + rec(offset=2, prio=0),
    "priority_out_of_range": ctl(1) + r0 + prio_bad_ok_crc,
    "two_segments": ctl(2, int(255 * len(r0) / len(three)) + 1) + three,
    "three_segments": ctl(3, 80, 200) + three + chain,
    "chain_across": ctl(2, 200) + r0 + chain,
    "torn_first_of_two": ctl(2, 40) + r0 + r1[:20] + r2,
    "decode_only": r0[:2],
    # A page-sized segment whose last 3 bytes are a torn magic: the scan decodes at the map's end.
    "page_tail": ctl(1) + rec(payload=b"x" * (4093 - 48 - 7)) + b"LGR",
}


# ---- jwt: mode byte (bits 0-1: 0 raw token, 1 HS256, 2 ES256, 3 RS256 signing; bit 2: the key's
# kid, bit 3: an unknown kid), then the token, or "<header JSON>\0<payload JSON>" to sign ----------
def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=")


FUZZ_SECRET = b"fuzz-secret-0123456789abcdef0123456789"
LG = b'"litegate":{"publish":["chatbot/s1"],"subscribe":["chatbot/*","*"],"consume":["g1","g-*"],"admin":false}'


def hs(header, payload):
    signing = b64u(header) + b"." + b64u(payload)
    return signing + b"." + b64u(hmac.new(FUZZ_SECRET, signing, hashlib.sha256).digest())


RAW, HS, ES, RS, KID, BADKID = b"\x00", 1, 2, 3, 4, 8
JWT = {
    "raw_valid_hs256": RAW + hs(b'{"alg":"HS256","typ":"JWT","kid":"k1"}',
                                b'{"exp":4000000000,"sub":"s",' + LG + b"}"),
    "raw_no_kid": RAW + hs(b'{"alg":"HS256"}', b'{"exp":4000000000.5,"aud":["a","b"],"nbf":1}'),
    "raw_alg_none": RAW + b64u(b'{"alg":"none"}') + b"." + b64u(b'{"exp":1}') + b".",
    "raw_two_parts": RAW + b"eyJhbGciOiJIUzI1NiJ9.e30",
    "raw_five_parts": RAW + b"a.b.c.d.e",
    "raw_padding": RAW + hs(b'{"alg":"HS256"}', b'{"exp":1}') + b"==",
    "raw_stray_bits": RAW + b"eyJhbGciOiJIUzI1NiJ9.e31.AAAA",
    "raw_crit": RAW + hs(b'{"alg":"HS256","crit":["exp"]}', b'{"exp":1}'),
    "raw_bad_pattern": RAW + hs(b'{"alg":"HS256"}', b'{"exp":1,"litegate":{"publish":["a*b"]}}'),
    "raw_dup": RAW + hs(b'{"alg":"HS256","alg":"RS256"}', b'{"exp":1}'),
    "raw_empty": RAW,
    "hs256": bytes([HS | KID]) + b'{"alg":"HS256","typ":"JWT"}\0{"exp":4000000000,' + LG + b"}",
    "hs256_no_kid": bytes([HS]) + b'{"alg":"HS256"}\0{"exp":1e9,"nbf":2e9}',
    "hs256_bad_kid": bytes([HS | BADKID]) + b'{"alg":"HS256"}\0{"exp":4000000000}',
    "es256": bytes([ES | KID]) + b'{"alg":"ES256"}\0{"exp":4000000000,"aud":"litegate"}',
    "es256_as_hs256": bytes([ES]) + b'{"alg":"HS256"}\0{"exp":4000000000}',
    "rs256": bytes([RS | KID]) + b'{"alg":"RS256","typ":"at+jwt"}\0{"exp":-5,' + LG + b"}",
    "rs256_kid_of_hs": bytes([RS]) + b'{"alg":"RS256","kid":"k1"}\0{"exp":4000000000}',
    "hs256_header_rs256": bytes([HS | KID]) + b'{"alg":"RS256"}\0{"exp":4000000000}',
    "no_exp": bytes([HS]) + b'{"alg":"HS256"}\0{"litegate":{"admin":true}}',
    "payload_array": bytes([HS]) + b'{"alg":"HS256"}\0[1]',
}


# ---- headcheck: the bytes from the start of a connection -----------------------------------------
HEADS = {
    "get": "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    "post_body": "POST /v1/topics/chatbot/s1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 "Content-Length: 10\r\n\r\n{\"data\":1}",
    "lf_only": "GET / HTTP/1.0\nHost: x\n\n",
    "sse_pipelined": "GET /v1/sessions/a/events?from=0 HTTP/1.1\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n",
    "incomplete": "GET /v1/ws HTTP/1.1\r\nUpgrade: websocket\r\n",
    "garbage": "HELLO\r\n\r\n",
    "unknown_method": "BREW /pot HTTP/1.1\r\n\r\n",
    "absolute": "GET http://x/ HTTP/1.1\r\n\r\n",
    "bad_escape": "GET /a%zz HTTP/1.1\r\n\r\n",
    "nul_escape": "GET /a%00 HTTP/1.1\r\n\r\n",
    "folded": "GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
    "space_colon": "GET / HTTP/1.1\r\nHost : x\r\n\r\n",
    "two_hosts": "GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n",
    "ctl_value": "GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n",
    "bare_cr": "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",
    "empty_first": "\r\nGET / HTTP/1.1\r\n\r\n",
    "many_fields": "GET / HTTP/1.1\r\n" + "".join("X-%d: v\r\n" % i for i in range(70)) + "\r\n",
    "many_params": "GET /?" + "&".join("p%d" % i for i in range(30)) + " HTTP/1.1\r\n\r\n",
    "version": "GET / HTTP/2.0\r\n\r\n",
    "content_length": "POST /v1/topics/chatbot/s1/messages HTTP/1.1\r\nContent-Length:  42 \r\n\r\n",
    "bad_length": "POST /v1/topics/chatbot/s1/messages HTTP/1.1\r\nContent-Length: 4x\r\n\r\n",
    "chunked": "POST /v1/topics/chatbot/s1/messages HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
    "upgrade_ws": "GET /v1/ws HTTP/1.1\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n\r\n",
    "upgrade_h2c": "GET / HTTP/1.1\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n",
}


# ---- wsmask: a WebSocket client's bytes after the upgrade ------------------------------------------
def ws_frame(op, payload, fin=True, mask=True, length=None):
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | op
    m = 0x80 if mask else 0
    if n < 126:
        hdr = bytes([b0, m | n])
    elif n < 65536:
        hdr = bytes([b0, m | 126]) + n.to_bytes(2, "big")
    else:
        hdr = bytes([b0, m | 127]) + n.to_bytes(8, "big")
    if mask:
        key = b"\x11\x22\x33\x44"
        payload = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
        hdr += key
    return hdr + payload


WSMASK = {
    "masked": ws_frame(1, b'{"op":"ping"}'),
    "unmasked": ws_frame(1, b'{"op":"ping"}', mask=False),
    "masked_then_unmasked": ws_frame(1, b'{"op":"pi', fin=False) + ws_frame(0, b'ng"}', mask=False),
    "len16": ws_frame(1, b"x" * 300) + ws_frame(9, b"p"),
    "len64": ws_frame(1, b"y" * 70000),
    "declared_huge": ws_frame(1, b"z" * 20, length=2 ** 62),
    "control": ws_frame(9, b"hi") + ws_frame(10, b"") + ws_frame(8, b"\x03\xe8"),
    "payload_like_headers": ws_frame(1, b"\x81\x05" * 40),
}


# ---- h2tap: a client's bytes on an HTTP/2 connection, from the preface ----------------------------
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\0\0\0\x04\0\0\0\0\0"  # and empty SETTINGS


def h2_frame(ftype, flags, sid, payload):
    return len(payload).to_bytes(3, "big") + bytes([ftype, flags]) + sid.to_bytes(4, "big") + payload


def hp_lit(name, value, prefix=0x00):
    """HPACK literal with a new name (0x00 without indexing, 0x40 with incremental indexing)."""
    return bytes([prefix, len(name)]) + name + bytes([len(value)]) + value


GET_SSE = b"\x82\x87\x84" + hp_lit(b":path", b"/v1/topics/chatbot/a/events") + hp_lit(b"last-event-id", b"41")
POST = (b"\x83\x87" + hp_lit(b":path", b"/v1/topics/chatbot/a/messages") +
        hp_lit(b"idempotency-key", b"k-1", 0x40) + hp_lit(b"litegate-expected-offset", b"3"))
H2TAP = {
    "sse_get": H2_PREFACE + h2_frame(1, 0x5, 1, GET_SSE),
    "post_body_end": H2_PREFACE + h2_frame(1, 0x4, 1, POST) + h2_frame(0, 0, 1, b"hello") +
                     h2_frame(0, 0x1, 1, b""),
    "dynamic_ref": H2_PREFACE + h2_frame(1, 0x4, 1, POST) + h2_frame(1, 0x5, 3, b"\x83\x87\x84\xbe"),
    "padded_priority_continuation": H2_PREFACE + h2_frame(1, 0x8 | 0x20, 1, b"\x02" + b"\0\0\0\0\x10" +
                                                          GET_SSE[:5] + b"\0\0") +
                                    h2_frame(9, 0x4, 1, GET_SSE[5:]) + h2_frame(0, 0x9, 1, b"\x01ab\0"),
    "reset": H2_PREFACE + h2_frame(1, 0x5, 1, GET_SSE) + h2_frame(3, 0, 1, b"\0\0\0\x08"),
    "trailers": H2_PREFACE + h2_frame(1, 0x4, 1, POST) + h2_frame(0, 0, 1, b"x") +
                h2_frame(1, 0x5, 1, hp_lit(b"x-sum", b"1", 0x40)) + h2_frame(1, 0x5, 3, b"\x82\x87\x84\xbe"),
    "get_with_body": H2_PREFACE + h2_frame(1, 0x4, 1, b"\x82\x87\x84") + h2_frame(0, 0x1, 1, b"x"),
    "ping_window_goaway": H2_PREFACE + h2_frame(6, 0, 0, b"\0" * 8) + h2_frame(8, 0, 0, b"\0\0\x10\0") +
                          h2_frame(7, 0, 0, b"\0" * 8),
}


# ---- settleparse: limit byte (255: 10000), then an ack or nack body ---------------------------------
R1 = "0.1.2a.9f1c0e4b7d2a6c11.chatbot/s1"
R2 = "7.3.2b.03aa41c9e0b7d215.chatbot/s9"
SETTLE = {
    "one": '{"receipts":["%s"]}' % R1,
    "two_pretty": '{\n  "receipts": [\n    "%s",\n    "%s"\n  ]\n}\n' % (R1, R2),
    "python_dumps": '{"receipts": ["%s", "%s"]}' % (R1, R2),
    "at_limit": '{"receipts":["a","b"]}',
    "over_limit": '{"receipts":["a","b","c"]}',
    "empty": '{"receipts":[]}',
    "trailing_comma": '{"receipts":["a",]}',
    "trailing_garbage": '{"receipts":["a"]} x',
    "duplicate_member": '{"receipts":["a"],"receipts":["b"]}',
    "nack_delay": '{"receipts":["%s"],"delay_ms":100}' % R1,
    "not_strings": '{"receipts":["a",1,null,{},[]]}',
    "escape": '{"receipts":["\\u0030.1.2a.9f1c0e4b7d2a6c11.chatbot\\/s1"]}',
    "escaped_key": '{"rec\\u0065ipts":["a"]}',
    "utf8": '{"receipts":["\u00e9"]}',
    "control": '{"receipts":["a\tb"]}',
    "truncated": '{"receipts":["a"',
    "not_object": '["a"]',
}


# ---- h2preface: the bytes of one write on the server's side of an HTTP/2 connection ----------------
def h2_settings(*params, flags=0, sid=0):
    return h2_frame(4, flags, sid, b"".join(i.to_bytes(2, "big") + v.to_bytes(4, "big") for i, v in params))


# What lws 4.1.6 writes with the gateway's settings (tls.c): ids 1, 2, 3, 4, 6 and 8 = 1.
LWS_PREFACE = h2_settings((1, 65536), (2, 0), (3, 128), (4, 0), (6, 4096), (8, 1))
H2PREFACE = {
    "lws_preface": LWS_PREFACE,
    "lws_preface_then_frames": LWS_PREFACE + h2_settings(flags=1) + h2_frame(8, 0, 0, b"\x00\x04\x00\x00")
                               + h2_settings((8, 1)),
    "connect_zero": h2_settings((3, 100), (8, 0)),
    "connect_twice": h2_settings((8, 0x80000000), (8, 2)),
    "empty": h2_settings(),
    "ack": h2_settings((8, 1), flags=1),
    "stream_1": h2_settings((8, 1), sid=1),
    "reserved_bit": h2_settings((8, 1), sid=0x80000000),
    "partial_param": h2_frame(4, 0, 0, b"\x00\x08\x00\x00\x00"),
    "truncated": LWS_PREFACE[:-3],
    "headers": h2_frame(1, 4, 1, b"\x88"),
}


def main():
    for name, s in ROUTES.items():
        write("route", name, s)
    for name, b in CHUNKED.items():
        write("chunked", name, b)
    for name, s in JSON.items():
        write("json", name, s.encode("latin-1") if any(ord(c) > 127 for c in s) else s)
    for name, b in PUB.items():
        write("pubparse", name, b)
    for name, s in WS.items():
        write("wsproto", name, s)
    with open(os.path.join(HERE, "..", "..", "conf", "litegate.json"), "rb") as f:
        write("config", "litegate_json", f.read())
    for name, s in CONFIG.items():
        write("config", name, s)
    for name, b in CL.items():
        write("cl", name, b)
    for name, b in JWT.items():
        write("jwt", name, b)
    for name, s in HEADS.items():
        write("headcheck", name, s)
    for name, b in WSMASK.items():
        write("wsmask", name, b)
    for name, b in H2TAP.items():
        write("h2tap", name, b)
    for name, b in H2PREFACE.items():
        write("h2preface", name, b)
    for name, s in SETTLE.items():
        write("settleparse", name, (b"\x02" if name.endswith("limit") else b"\xff") + s.encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
