"""Authorization (auth.mode "jwt") against the real binary: tokens from the header, the query and a
cookie; HS256, RS256 and ES256 with keys chosen by kid; refusals (401 with WWW-Authenticate, 403);
every checked route; WebSocket upgrades and operations; streams that end with their token.

RS256 and ES256 keys are made at run time with the openssl CLI, which also signs those tokens; HS256
tokens come from `litegate token` (the development sub-command) and from a signer written here.
"""

import base64
import hashlib
import hmac
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

import harness
from harness import Gateway, TestCase, WSClosed

SECRET1 = "k1-secret-0123456789abcdef0123456789"
SECRET2 = "k2-secret-fedcba9876543210fedcba9876"


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(ttl=300, **kw):
    now = int(time.time())
    c = {"iat": now, "exp": now + ttl}
    c.update(kw)
    return c


def der_to_raw(der, n=32):
    """An ECDSA DER signature (SEQUENCE of two INTEGERs) as the r||s that JWS uses."""
    assert der[0] == 0x30
    i = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
    out = b""
    for _ in range(2):
        assert der[i] == 0x02
        ln = der[i + 1]
        v = der[i + 2:i + 2 + ln].lstrip(b"\x00")
        out += v.rjust(n, b"\x00")
        i += 2 + ln
    return out


class Keys:
    """RSA and EC key pairs made by the openssl CLI, in a temporary directory."""

    def __init__(self):
        if not shutil.which("openssl"):
            raise unittest.SkipTest("the openssl CLI is not installed")
        self.dir = tempfile.mkdtemp(prefix="litegate-keys-")
        self.paths = {}
        for name, args in (("rsa", ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
                           ("rsa2", ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
                           ("ec", ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]),
                           ("ec384", ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"]),
                           ("rsa1024", ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"])):
            priv = os.path.join(self.dir, name + ".key")
            pub = os.path.join(self.dir, name + ".pub")
            subprocess.run(["openssl", *args, "-out", priv], check=True, capture_output=True)
            subprocess.run(["openssl", "pkey", "-in", priv, "-pubout", "-out", pub], check=True,
                           capture_output=True)
            self.paths[name] = (priv, pub)

    def pub(self, name):
        return self.paths[name][1]

    def sign(self, name, alg, payload, kid=None, header_extra=None):
        header = {"alg": alg, "typ": "JWT"}
        if kid:
            header["kid"] = kid
        header.update(header_extra or {})
        signing = (b64u(json.dumps(header).encode()) + "." + b64u(json.dumps(payload).encode())).encode()
        r = subprocess.run(["openssl", "dgst", "-sha256", "-sign", self.paths[name][0]], input=signing,
                           check=True, capture_output=True)
        sig = r.stdout if alg.startswith("RS") else der_to_raw(r.stdout)
        return signing.decode() + "." + b64u(sig)

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def hs256(secret, payload, kid=None, header=None):
    h = header if header is not None else {"alg": "HS256", "typ": "JWT"}
    if kid:
        h = dict(h, kid=kid)
    signing = b64u(json.dumps(h).encode()) + "." + b64u(json.dumps(payload).encode())
    mac = hmac.new(secret.encode() if isinstance(secret, str) else secret, signing.encode(), hashlib.sha256)
    return signing + "." + b64u(mac.digest())


def cli_token(config_path, *args):
    r = subprocess.run([harness.binary_path(), "token", "--config", config_path, *args],
                       capture_output=True, text=True, timeout=10)
    if r.returncode:
        raise AssertionError("litegate token failed: %s" % r.stderr)
    return r.stdout.strip()


def bearer(tok):
    return {"Authorization": "Bearer " + tok}


KEYS = None


def setUpModule():
    global KEYS
    KEYS = Keys()


def tearDownModule():
    if KEYS:
        KEYS.close()


def jwt_config(**extra):
    auth = {"mode": "jwt",
            "hs256_secrets": [{"kid": "k1", "secret": SECRET1}, {"kid": "k2", "secret": SECRET2}],
            "public_keys": [{"kid": "rsa-1", "path": KEYS.pub("rsa")}, {"kid": "ec-1", "path": KEYS.pub("ec")}],
            "leeway_s": 0, "cookie": "lg_token"}
    auth.update(extra)
    return {"auth": auth}


class AuthTestCase(TestCase):
    def setUp(self):
        self.CONFIG = jwt_config()
        super().setUp()

    def tok(self, ttl=300, kid="k1", **lg):
        return hs256(SECRET1 if kid == "k1" else SECRET2, claims(ttl, litegate=lg), kid=kid)

    def assert_refused(self, resp, status, code, challenge_error=None):
        """A refusal with its RFC 6750 challenge: no error attribute when no token came,
        invalid_token for a bad one, insufficient_scope for a valid one out of scope."""
        st, hdrs, body = self.assert_status(resp, status, code)
        www = hdrs.get("www-authenticate", "")
        self.assertTrue(www.startswith('Bearer realm="litegate"'), hdrs)
        challenge_error = challenge_error or {"invalid_token": "invalid_token",
                                              "forbidden": "insufficient_scope"}.get(code)
        if challenge_error:
            self.assertIn('error="%s"' % challenge_error, www)
        else:
            self.assertNotIn("error=", www)
        return body


class Tokens(AuthTestCase):
    def test_missing_token_is_401_with_a_bearer_challenge(self):
        self.assert_refused(self.gw.http("POST", "/v1/topics/chatbot/a/messages", {"data": 1}), 401,
                            "unauthorized")
        self.assert_refused(self.gw.http("GET", "/v1/topics/chatbot/a/messages"), 401, "unauthorized")
        self.assert_refused(self.gw.http("GET", "/v1/topics/chatbot/a"), 401, "unauthorized")
        self.assert_refused(self.gw.http("GET", "/metrics"), 401, "unauthorized")
        sse = self.gw.sse("/v1/topics/chatbot/a/events")
        self.assertEqual(sse.status, 401)
        self.assertIn("www-authenticate", sse.headers)
        sse.close()

    def test_health_and_preflight_need_no_token(self):
        self.assertEqual(self.gw.http("GET", "/healthz")[0], 200)
        st, hdrs, _ = self.gw.http("OPTIONS", "/v1/topics/chatbot/a/messages",
                                   headers={"Origin": "http://allowed.example",
                                            "Access-Control-Request-Method": "POST"})
        self.assertEqual(st, 204)
        self.assertIn("authorization", hdrs["access-control-allow-headers"])

    def test_header_query_and_cookie_carry_the_token(self):
        t = self.tok(publish=["chatbot/a"], subscribe=["chatbot/a"])
        self.assertEqual(self.gw.publish("chatbot/a", {"data": 1}, headers=bearer(t))["first_offset"], 0)
        self.gw.publish("chatbot/a", {"data": 2}, headers={"Authorization": "bearer   " + t + "  "})
        st, _, page = self.gw.http("GET", "/v1/topics/chatbot/a/messages?access_token=%s&from=1" % t)
        self.assertEqual(st, 200, page)
        self.assertEqual([m["data"] for m in page["messages"]], [2])  # ?from= still read beside the token
        st, _, page = self.gw.http("GET", "/v1/topics/chatbot/a/messages?limit=1&access_token=" + t)
        self.assertEqual((st, len(page["messages"])), (200, 1))
        st, _, page = self.gw.http("GET", "/v1/topics/chatbot/a/messages",
                                   headers={"Cookie": "other=1; lg_token=%s; x=y" % t})
        self.assertEqual(st, 200, page)
        st, _, page = self.gw.http("GET", "/v1/topics/chatbot/a/messages", headers={"Cookie": 'lg_token="%s"' % t})
        self.assertEqual(st, 200, page)
        # Another cookie's name is not ours; another scheme is not a bearer token.
        self.assert_refused(self.gw.http("GET", "/v1/topics/chatbot/a/messages",
                                         headers={"Cookie": "xlg_token=%s" % t}), 401, "unauthorized")
        self.assert_refused(self.gw.http("GET", "/v1/topics/chatbot/a/messages",
                                         headers={"Authorization": "Basic dXNlcjpwdw=="}), 401,
                            "invalid_token", "invalid_token")
        # The header wins over the query: a bad header token is not rescued by a good query one.
        self.assert_refused(self.gw.http("GET", "/v1/topics/chatbot/a/messages?access_token=" + t,
                                         headers=bearer(t + "x")), 401, "invalid_token", "invalid_token")

    def test_bad_tokens_are_401_invalid_token(self):
        c = claims(litegate={"admin": True})
        cases = {
            "garbage": "not-a-token",
            "two parts": "a.b",
            "bad signature": hs256(SECRET1, c, kid="k1")[:-3] + "AAA",
            "wrong secret": hs256("x" * 40, c, kid="k1"),
            "unknown kid": hs256(SECRET1, c, kid="nope"),
            "expired": hs256(SECRET1, claims(-5, litegate={"admin": True}), kid="k1"),
            "no exp": hs256(SECRET1, {"litegate": {"admin": True}}, kid="k1"),
            "not yet valid": hs256(SECRET1, dict(c, nbf=int(time.time()) + 600), kid="k1"),
            "audience for someone else": hs256(SECRET1, dict(c, aud="other"), kid="k1"),
            "alg none": b64u(b'{"alg":"none","typ":"JWT"}') + "." + b64u(json.dumps(c).encode()) + ".",
            "alg none signed": hs256(SECRET1, c, header={"alg": "none"}),
            "unsupported alg": hs256(SECRET1, c, header={"alg": "HS512"}),
            "crit header": hs256(SECRET1, c, kid="k1", header={"alg": "HS256", "crit": ["b64"], "b64": False}),
            "padding": hs256(SECRET1, c, kid="k1") + "=",
            "bad claim": hs256(SECRET1, dict(c, litegate={"publish": "chatbot/*"}), kid="k1"),
            "bad pattern": hs256(SECRET1, dict(c, litegate={"publish": ["chat bot/*"]}), kid="k1"),
            "duplicate member": "%s.%s.x" % (b64u(b'{"alg":"HS256","alg":"none"}'), b64u(b"{}")),
            "kid of an RSA key": hs256(SECRET1, c, kid="rsa-1"),
        }
        for name, tok in cases.items():
            with self.subTest(name):
                body = self.assert_refused(self.gw.http("GET", "/metrics", headers=bearer(tok)), 401,
                                           "invalid_token", "invalid_token")
                self.assertTrue(body["error"]["message"])
        # None of those got anywhere: the counter saw them.
        st, _, text = self.gw.http("GET", "/metrics", headers=bearer(self.tok(admin=True)))
        self.assertEqual(st, 200)
        line = [l for l in text.decode().splitlines() if l.startswith("litegate_auth_unauthorized_total ")]
        self.assertGreaterEqual(int(line[0].split()[1]), len(cases))

    def test_alg_confusion_rsa_public_key_as_hmac_secret(self):
        # The classic attack: sign HS256 with the server's RSA public key bytes as the secret.
        with open(KEYS.pub("rsa"), "rb") as f:
            pem = f.read()
        c = claims(litegate={"admin": True})
        for kid in ("rsa-1", None):
            tok = hs256(pem, c, kid=kid)
            self.assert_refused(self.gw.http("GET", "/metrics", headers=bearer(tok)), 401,
                                "invalid_token", "invalid_token")
        # ... and an RS256 header on an HMAC'd token with an HS key's kid.
        tok = hs256(SECRET1, c, kid="k1", header={"alg": "RS256"})
        self.assert_refused(self.gw.http("GET", "/metrics", headers=bearer(tok)), 401, "invalid_token")

    def test_rs256_es256_and_kid_rotation(self):
        c = claims(litegate={"admin": True})
        good = {
            "hs256 k1": hs256(SECRET1, c, kid="k1"),
            "hs256 k2": hs256(SECRET2, c, kid="k2"),
            "hs256 no kid": hs256(SECRET2, c),  # every HS key is tried
            "rs256": KEYS.sign("rsa", "RS256", c, kid="rsa-1"),
            "rs256 no kid": KEYS.sign("rsa", "RS256", c),
            "es256": KEYS.sign("ec", "ES256", c, kid="ec-1"),
            "es256 no kid": KEYS.sign("ec", "ES256", c),
        }
        for name, tok in good.items():
            with self.subTest(name):
                self.assertEqual(self.gw.http("GET", "/metrics", headers=bearer(tok))[0], 200)
        bad = {
            "rs256 by another key": KEYS.sign("rsa2", "RS256", c, kid="rsa-1"),
            "rs256 named as the ec key": KEYS.sign("rsa", "RS256", c, kid="ec-1"),
            "es256 named as the rsa key": KEYS.sign("ec", "ES256", c, kid="rsa-1"),
            "es256 by another curve": KEYS.sign("ec384", "ES256", c),
        }
        for name, tok in bad.items():
            with self.subTest(name):
                self.assert_refused(self.gw.http("GET", "/metrics", headers=bearer(tok)), 401, "invalid_token")


class Audience(TestCase):
    def setUp(self):
        self.CONFIG = jwt_config(audience="litegate-prod", leeway_s=30)
        super().setUp()

    def test_audience_and_leeway(self):
        lg = {"admin": True}
        ok = [hs256(SECRET1, claims(litegate=lg, aud="litegate-prod"), kid="k1"),
              hs256(SECRET1, claims(litegate=lg, aud=["x", "litegate-prod"]), kid="k1"),
              # expired 10 s ago, within the 30 s leeway; nbf 10 s ahead, within it too
              hs256(SECRET1, claims(-10, litegate=lg, aud="litegate-prod"), kid="k1"),
              hs256(SECRET1, claims(litegate=lg, aud="litegate-prod", nbf=int(time.time()) + 10), kid="k1")]
        for tok in ok:
            self.assertEqual(self.gw.http("GET", "/metrics", headers=bearer(tok))[0], 200)
        bad = [hs256(SECRET1, claims(litegate=lg), kid="k1"),
               hs256(SECRET1, claims(litegate=lg, aud="other"), kid="k1"),
               hs256(SECRET1, claims(-40, litegate=lg, aud="litegate-prod"), kid="k1")]
        for tok in bad:
            self.assertEqual(self.gw.http("GET", "/metrics", headers=bearer(tok))[0], 401)
        # litegate token takes the audience from the config.
        tok = cli_token(self.gw.config_path, "--admin")
        self.assertEqual(self.gw.http("GET", "/metrics", headers=bearer(tok))[0], 200)


class Scopes(AuthTestCase):
    def test_publish_scope(self):
        t = self.tok(publish=["chatbot/mine", "agent/*"])
        self.gw.publish("chatbot/mine", {"data": 1}, headers=bearer(t))
        self.gw.publish("agent/anything", {"data": 1}, headers=bearer(t))
        self.assert_refused(self.gw.http("POST", "/v1/topics/chatbot/other/messages", {"data": 1},
                                         headers=bearer(t)), 403, "forbidden", "insufficient_scope")
        self.assert_refused(self.gw.http("POST", "/v1/sessions/mine2/messages", {"data": 1},
                                         headers=bearer(t)), 403, "forbidden", "insufficient_scope")
        # Publishing is not reading.
        self.assert_refused(self.gw.http("GET", "/v1/topics/chatbot/mine/messages", headers=bearer(t)),
                            403, "forbidden", "insufficient_scope")
        # NDJSON and text bodies are checked the same way.
        self.assertEqual(self.gw.http("POST", "/v1/topics/chatbot/other/messages", '{"data":1}\n',
                                      {"Content-Type": "application/x-ndjson", **bearer(t)})[0], 403)
        up = harness.ChunkedUpload(self.gw.port, "/v1/topics/chatbot/other/messages",
                                   extra_headers=bearer(t))
        try:
            st, _, body = up.response()
            self.assertEqual((st, body["error"]["code"]), (403, "forbidden"))
        finally:
            up.close()

    def test_subscribe_scope_covers_sse_history_and_topic_info(self):
        admin = self.tok(admin=True)
        self.gw.publish("chatbot/s1", [{"data": 1}, {"data": 2}], headers=bearer(admin))
        self.gw.publish("chatbot/s2", {"data": 1}, headers=bearer(admin))
        t = self.tok(subscribe=["chatbot/s1"])
        self.assertEqual(self.gw.http("GET", "/v1/topics/chatbot/s1", headers=bearer(t))[0], 200)
        self.assertEqual(self.gw.http("GET", "/v1/topics/chatbot/s1/messages", headers=bearer(t))[0], 200)
        for path in ("/v1/topics/chatbot/s2", "/v1/topics/chatbot/s2/messages", "/v1/sessions/s2/events"):
            self.assert_refused(self.gw.http("GET", path, headers=bearer(t)), 403, "forbidden")
        sse = self.gw.sse("/v1/topics/chatbot/s1/events?access_token=" + t)
        try:
            self.assertEqual(sse.status, 200)
            self.assertEqual([m[2] for m in sse.messages(2)], [1, 2])
        finally:
            sse.close()
        sse = self.gw.sse("/v1/topics/chatbot/s2/events?access_token=" + t)
        self.assertEqual((sse.status, sse.body["error"]["code"]), (403, "forbidden"))
        sse.close()
        # Reading is not publishing.
        self.assertEqual(self.gw.http("POST", "/v1/topics/chatbot/s1/messages", {"data": 3},
                                      headers=bearer(t))[0], 403)

    def test_delete_and_metrics_need_admin(self):
        admin = self.tok(admin=True)
        user = self.tok(publish=["*"], subscribe=["*"], consume=["*"])
        self.gw.publish("chatbot/d", {"data": 1}, headers=bearer(user))
        self.assert_refused(self.gw.http("DELETE", "/v1/topics/chatbot/d", headers=bearer(user)), 403,
                            "forbidden")
        self.assert_refused(self.gw.http("GET", "/metrics", headers=bearer(user)), 403, "forbidden")
        self.assertEqual(self.gw.http("DELETE", "/v1/topics/chatbot/d", headers=bearer(admin))[0], 200)
        st, _, text = self.gw.http("GET", "/metrics", headers=bearer(admin))
        self.assertEqual(st, 200)
        self.assertIn(b"litegate_auth_forbidden_total 2", text)
        # admin may do everything else too.
        self.gw.publish("chatbot/d", {"data": 2}, headers=bearer(admin))
        st, _, page = self.gw.http("GET", "/v1/topics/chatbot/d/messages", headers=bearer(admin))
        self.assertEqual((st, [m["data"] for m in page["messages"]]), (200, [2]))

    def test_metrics_scope_reads_metrics_and_nothing_else(self):
        scraper = self.tok(metrics=True)
        st, _, text = self.gw.http("GET", "/metrics", headers=bearer(scraper))
        self.assertEqual(st, 200)
        self.assertIn(b"litegate_auth_forbidden_total 0", text)
        self.assert_refused(self.gw.http("POST", "/v1/topics/chatbot/m/messages", {"data": 1},
                                         headers=bearer(scraper)), 403, "forbidden")
        self.assert_refused(self.gw.http("GET", "/v1/topics/chatbot/m/messages",
                                         headers=bearer(scraper)), 403, "forbidden")
        self.assert_refused(self.gw.http("DELETE", "/v1/topics/chatbot/m", headers=bearer(scraper)),
                            403, "forbidden")
        self.assert_refused(self.gw.http("GET", "/v1/groups", headers=bearer(scraper)), 403,
                            "forbidden")
        # metrics must be a boolean: anything else makes the token invalid.
        self.assert_refused(self.gw.http("GET", "/metrics", headers=bearer(self.tok(metrics="yes"))),
                            401, "invalid_token")
        # The sub-command mints one.
        cli = cli_token(self.gw.config_path, "--metrics")
        self.assertEqual(self.gw.http("GET", "/metrics", headers=bearer(cli))[0], 200)
        self.assertEqual(self.gw.http("GET", "/v1/topics/chatbot/m", headers=bearer(cli))[0], 403)

    def test_cli_token_scopes(self):
        t = cli_token(self.gw.config_path, "--publish", "chatbot/cli", "--subscribe", "chatbot/*",
                      "--sub", "tester", "--kid", "k1")
        self.gw.publish("chatbot/cli", {"data": 1}, headers=bearer(t))
        self.assertEqual(self.gw.http("POST", "/v1/topics/chatbot/x/messages", {"data": 1},
                                      headers=bearer(t))[0], 403)
        self.assertEqual(self.gw.http("GET", "/v1/topics/chatbot/x", headers=bearer(t))[0], 404)
        expired = cli_token(self.gw.config_path, "--admin", "--ttl", "-10")
        self.assertEqual(self.gw.http("GET", "/metrics", headers=bearer(expired))[0], 401)


class GroupAuth(AuthTestCase):
    def test_consume_and_group_administration(self):
        admin = bearer(self.tok(admin=True))
        worker = bearer(self.tok(consume=["workers-*"]))
        other = bearer(self.tok(consume=["other"], publish=["*"], subscribe=["*"]))
        gdef = {"parent": "chatbot", "events": ["prompt"], "invisible_ms": 30000}
        # Defining, changing, listing and deleting groups, and moving their offsets, is admin work.
        for method, path, body in (("PUT", "/v1/groups/workers-1", gdef), ("GET", "/v1/groups", None),
                                   ("POST", "/v1/groups/workers-1/subscriptions", {"add": ["chatbot/a"]}),
                                   ("PUT", "/v1/groups/workers-1/offsets?topic=chatbot/a", {"offset": 0}),
                                   ("DELETE", "/v1/groups/workers-1", None)):
            with self.subTest(method + " " + path):
                self.assert_refused(self.gw.http(method, path, body, headers=worker), 403, "forbidden")
                self.assert_refused(self.gw.http(method, path, body), 401, "unauthorized")
        st, _, body = self.gw.http("PUT", "/v1/groups/workers-1", gdef, headers=admin)
        self.assertIn(st, (200, 201), body)
        self.gw.publish("chatbot/g1", {"event": "prompt", "data": "hi"}, headers=admin)
        # Popping, acking and reading the group need consume on it, and only on it.
        self.assert_refused(self.gw.http("POST", "/v1/groups/workers-1/pop", {"max": 1}, headers=other),
                            403, "forbidden")
        self.assertEqual(self.gw.http("GET", "/v1/groups/workers-1", headers=worker)[0], 200)
        deadline = time.time() + 10
        msgs = []
        while not msgs and time.time() < deadline:
            st, _, body = self.gw.http("POST", "/v1/groups/workers-1/pop", {"max": 1, "wait_ms": 1000},
                                       headers=worker)
            self.assertEqual(st, 200, body)
            msgs = body["messages"]
        self.assertEqual(msgs[0]["data"], "hi")
        self.assert_refused(self.gw.http("POST", "/v1/groups/workers-1/ack",
                                         {"receipts": [msgs[0]["receipt"]]}, headers=other), 403, "forbidden")
        st, _, body = self.gw.http("POST", "/v1/groups/workers-1/ack", {"receipts": [msgs[0]["receipt"]]},
                                   headers=worker)
        self.assertEqual(st, 200, body)
        self.assertEqual(self.gw.http("GET", "/v1/groups/workers-1/offsets?topic=chatbot/g1",
                                      headers=worker)[0], 200)
        self.assertEqual(self.gw.http("DELETE", "/v1/groups/workers-1", headers=admin)[0], 200)


class WebSocketAuth(AuthTestCase):
    def raw_upgrade(self, path="/v1/ws", headers=None):
        s = socket.create_connection(("127.0.0.1", self.gw.port), timeout=5)
        req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" % path)
        for k, v in (headers or {}).items():
            req += "%s: %s\r\n" % (k, v)
        s.sendall((req + "\r\n").encode())
        try:
            s.settimeout(5)
            head = b""
            while b"\r\n" not in head:
                head += s.recv(1)
            self.assertTrue(head.startswith(b"HTTP/1.1 "), head)
            return harness.read_http_response(s, head)
        finally:
            s.close()

    def test_upgrade_needs_a_valid_token(self):
        st, hdrs, body = self.raw_upgrade()
        self.assertEqual((st, body["error"]["code"]), (401, "unauthorized"))
        self.assertTrue(hdrs["www-authenticate"].startswith("Bearer"))
        st, hdrs, body = self.raw_upgrade(headers=bearer("a.b.c"))
        self.assertEqual((st, body["error"]["code"]), (401, "invalid_token"))
        self.assertEqual(self.gw.http("GET", "/healthz")[0], 200)

    def test_operations_are_checked_against_the_scope(self):
        admin = self.tok(admin=True)
        self.gw.publish("chatbot/w1", {"data": "x"}, headers=bearer(admin))
        t = self.tok(subscribe=["chatbot/w*"], publish=["chatbot/w1"])
        for ws in (self.gw.ws(headers=bearer(t)), self.gw.ws("/v1/ws?access_token=" + t),
                   self.gw.ws(headers={"Cookie": "lg_token=" + t})):
            try:
                ws.send({"op": "subscribe", "topic": "agent/x", "req": 1})
                m = ws.recv()
                self.assertEqual((m["type"], m["code"], m["req"]), ("error", "forbidden", 1))
                ws.send({"op": "publish", "topic": "chatbot/w2", "data": 1, "req": 2})
                m = ws.recv()
                self.assertEqual((m["type"], m["code"], m["req"]), ("error", "forbidden", 2))
                ws.send({"op": "subscribe", "topic": "chatbot/w1", "req": 3})
                m, _ = ws.recv_until(lambda m: m["type"] == "message")
                self.assertEqual(m["data"], "x")
                ws.send({"op": "publish", "topic": "chatbot/w1", "data": "y", "req": 4})
                m, _ = ws.recv_until(lambda m: m["type"] == "ack")
                self.assertEqual(m["req"], 4)
            finally:
                ws.close()


class Expiry(AuthTestCase):
    def test_sse_ends_with_its_token(self):
        t = hs256(SECRET1, claims(2, litegate={"subscribe": ["chatbot/*"], "publish": ["chatbot/*"]}), kid="k1")
        sse = self.gw.sse("/v1/topics/chatbot/exp/events", headers=bearer(t))
        try:
            self.assertEqual(sse.status, 200)
            self.gw.publish("chatbot/exp", {"data": 1}, headers=bearer(t))
            self.assertEqual(sse.messages(1)[0][2], 1)
            t0 = time.time()
            ev = sse.next(timeout=6)
            while ev.get("event") != "error":
                ev = sse.next(timeout=6)
            self.assertEqual(json.loads(ev["data"])["code"], "token_expired")
            self.assertNotIn("id", ev)  # the stream's last id stays the last message's
            self.assertTrue(sse.wait_closed(5))
            self.assertLess(time.time() - t0, 5)
        finally:
            sse.close()

    def test_websocket_ends_with_its_token(self):
        t = hs256(SECRET1, claims(2, litegate={"subscribe": ["chatbot/*"]}), kid="k1")
        ws = self.gw.ws(headers=bearer(t))
        try:
            ws.send({"op": "subscribe", "topic": "chatbot/wexp", "req": 1})
            self.assertEqual(ws.recv()["type"], "subscribed")
            m = ws.recv(timeout=6)
            self.assertEqual((m["type"], m["code"]), ("error", "token_expired"))
            with self.assertRaises(WSClosed) as cm:
                ws.recv(timeout=5)
            self.assertEqual(cm.exception.code, 1008)
        finally:
            ws.close()
        st, _, text = self.gw.http("GET", "/metrics", headers=bearer(self.tok(admin=True)))
        self.assertIn(b"litegate_auth_expired_streams_total 1", text)


class Config(unittest.TestCase):
    def run_config(self, auth):
        gw = Gateway({"auth": auth})
        try:
            r = subprocess.run([harness.binary_path(), "--config", gw.config_path], capture_output=True,
                               text=True, timeout=10, cwd=gw.tmp)
            return r.returncode, r.stderr
        finally:
            shutil.rmtree(gw.tmp, ignore_errors=True)

    def test_bad_auth_configs_exit_2_naming_the_field(self):
        cases = [
            ({"mode": "jwt"}, "needs hs256_secrets or public_keys"),
            ({"mode": "maybe"}, "auth.mode"),
            ({"mode": "jwt", "hs256_secrets": ["short"]}, "auth.hs256_secrets[0]"),
            ({"mode": "jwt", "hs256_secrets": [SECRET1], "extra": 1}, "auth.extra: unknown field"),
            ({"mode": "jwt", "public_keys": ["/nonexistent.pem"]}, "/nonexistent.pem"),
            ({"mode": "jwt", "public_keys": [KEYS.paths["rsa"][0]]}, "public key"),  # a private key file
            ({"mode": "jwt", "public_keys": [KEYS.pub("ec384")]}, "P-256"),
            ({"mode": "jwt", "public_keys": [KEYS.pub("rsa1024")]}, "2048"),
            ({"mode": "jwt", "hs256_secrets": [{"kid": "a", "secret": SECRET1}, {"kid": "a", "secret": SECRET2}]},
             "used twice"),
            ({"mode": "jwt", "hs256_secrets": [SECRET1], "cookie": "bad name"}, "auth.cookie"),
        ]
        for auth, needle in cases:
            with self.subTest(needle):
                rc, err = self.run_config(auth)
                self.assertEqual(rc, 2, err)
                self.assertIn(needle, err)

    def test_mode_none_allows_everything(self):
        gw = Gateway({"auth": {"mode": "none"}})
        try:
            gw.start()
            gw.publish("chatbot/free", {"data": 1})
            self.assertEqual(gw.http("GET", "/metrics")[0], 200)
        finally:
            gw.close()


if __name__ == "__main__":
    harness.main()
