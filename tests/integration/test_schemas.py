"""schemas/ against reality: the config file validates, the schema defaults are the shipped
config's values, and real replies and frames of a running gateway validate against the schemas.

The standard library has no JSON Schema validator, so a small one for the keywords schemas/ uses
(type, enum, const, required, properties, additionalProperties, items, min/max, minItems,
maxItems, minLength, maxLength, pattern, oneOf, local $ref) is below.
"""

import json
import os
import re

import harness
from harness import TestCase

SCHEMAS = os.path.join(harness.REPO, "schemas")


def load(name):
    with open(os.path.join(SCHEMAS, name)) as f:
        return json.load(f)


def type_ok(value, t):
    if t == "object":
        return isinstance(value, dict)
    if t == "array":
        return isinstance(value, list)
    if t == "string":
        return isinstance(value, str)
    if t == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if t == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if t == "boolean":
        return isinstance(value, bool)
    if t == "null":
        return value is None
    raise AssertionError("unknown type " + t)


def errors(value, schema, root, path="$"):
    """A list of messages; empty when @value is valid."""
    if "$ref" in schema:
        ref = schema["$ref"]
        assert ref.startswith("#/"), ref
        target = root
        for part in ref[2:].split("/"):
            target = target[part]
        return errors(value, target, root, path)
    out = []
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(type_ok(value, t) for t in types):
            return ["%s: %r is not %s" % (path, value, types)]
    if "enum" in schema and value not in schema["enum"]:
        out.append("%s: %r not in %s" % (path, value, schema["enum"]))
    if "const" in schema and value != schema["const"]:
        out.append("%s: %r != %r" % (path, value, schema["const"]))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            out.append("%s: %r < %r" % (path, value, schema["minimum"]))
        if "maximum" in schema and value > schema["maximum"]:
            out.append("%s: %r > %r" % (path, value, schema["maximum"]))
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            out.append("%s: %r does not match %s" % (path, value, schema["pattern"]))
        if len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength", 1 << 60):
            out.append("%s: length of %r" % (path, value))
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0) or len(value) > schema.get("maxItems", 1 << 60):
            out.append("%s: %d items" % (path, len(value)))
        if "items" in schema:
            for i, v in enumerate(value):
                out += errors(v, schema["items"], root, "%s[%d]" % (path, i))
    if isinstance(value, dict):
        for k in schema.get("required", []):
            if k not in value:
                out.append("%s: missing %s" % (path, k))
        props = schema.get("properties", {})
        for k, v in value.items():
            if k in props:
                out += errors(v, props[k], root, "%s.%s" % (path, k))
            elif schema.get("additionalProperties") is False:
                out.append("%s: unexpected member %s" % (path, k))
    if "oneOf" in schema:
        matches = [s for s in schema["oneOf"] if not errors(value, s, root, path)]
        if len(matches) != 1:
            out.append("%s: %r matches %d of oneOf" % (path, value, len(matches)))
    return out


class Schemas(TestCase):
    def check(self, value, name):
        schema = load(name)
        errs = errors(value, schema, schema)
        self.assertEqual(errs, [], "%s: %r" % (name, value))

    def refuse(self, value, name):
        schema = load(name)
        self.assertTrue(errors(value, schema, schema), "%s accepted %r" % (name, value))

    def test_every_schema_is_draft_2020_12_json(self):
        names = sorted(n for n in os.listdir(SCHEMAS) if n.endswith(".json"))
        self.assertGreaterEqual(len(names), 8)
        for n in names:
            s = load(n)
            self.assertEqual(s["$schema"], "https://json-schema.org/draft/2020-12/schema", n)

    def test_shipped_config_validates_and_matches_the_schema_defaults(self):
        with open(os.path.join(harness.REPO, "conf", "litegate.json")) as f:
            conf = json.load(f)
        self.check(conf, "config.schema.json")
        schema = load("config.schema.json")

        def walk(props, values, prefix):
            for k, v in values.items():
                p = props[k]
                if isinstance(v, dict):
                    walk(p["properties"], v, prefix + k + ".")
                elif "default" in p:
                    self.assertEqual(v, p["default"], prefix + k)

        walk(schema["properties"], conf, "")
        self.refuse({"listen": "nope"}, "config.schema.json")
        self.refuse({"limits": {"max_body_bytes": 1}}, "config.schema.json")
        self.refuse({"parents": [{"name": "Bad"}]}, "config.schema.json")
        # What the schema refuses, the binary refuses too (exit 2), and the reverse for valid input.
        self.check(self.gw.config, "config.schema.json")

    def test_http_replies(self):
        self.check({"event": "token", "data": {"x": 1}}, "message.schema.json")
        self.check([{"data": 1}, {"event": "end"}], "message.schema.json")
        self.refuse({"event": "bad event"}, "message.schema.json")
        self.refuse([], "message.schema.json")
        self.check(self.gw.publish("chatbot/s", [{"data": 1}, {"data": 2}]), "publish-reply.schema.json")
        self.check(self.gw.http("GET", "/v1/topics/chatbot/s")[2], "topic.schema.json")
        self.check(self.gw.http("GET", "/v1/topics/chatbot/s/messages?from=1")[2], "history.schema.json")
        for method, path, body in [("GET", "/v1/nope", None), ("POST", "/v1/topics/chatbot/s/messages", "{"),
                                   ("PUT", "/v1/topics/chatbot/s", None), ("GET", "/v1/topics/zz/s", None),
                                   ("POST", "/v1/topics/tiny/s/messages", {"data": "x" * 3000})]:
            st, _, reply = self.gw.http(method, path, body,
                                        {"Content-Type": "application/json"} if body else None)
            self.assertGreaterEqual(st, 400)
            self.check(reply, "error.schema.json")

    def test_websocket_frames(self):
        self.gw.publish("short/x", [{"data": i} for i in range(8)])
        ws = self.gw.ws()
        self.addCleanup(ws.close)
        frames = [
            {"op": "subscribe", "topic": "short/x", "from": 0, "req": 1},
            {"op": "subscribe", "topic": "chatbot/y", "from": 9, "req": "b"},
            {"op": "publish", "topic": "chatbot/y", "event": "e", "data": [1], "req": 2},
            {"op": "unsubscribe", "topic": "short/x"},
            {"op": "ping"},
            {"op": "unsubscribe", "topic": "short/x", "req": 3},
        ]
        for f in frames:
            self.check(f, "ws-client.schema.json")
            ws.send(f)
        seen = set()
        while not {"message", "subscribed", "ack", "gap", "reset", "unsubscribed", "pong", "error"} <= seen:
            m = ws.recv(timeout=5)
            self.check(m, "ws-server.schema.json")
            seen.add(m["type"])
        self.refuse({"op": "subscribe"}, "ws-client.schema.json")
        self.refuse({"op": "ping", "x": 1}, "ws-client.schema.json")

    def test_sse_control_events(self):
        self.gw.publish("short/s", [{"data": i} for i in range(8)])
        sse = self.gw.sse("/v1/topics/short/s/events?from=0")
        self.addCleanup(sse.close)
        ev = sse.next()
        self.assertEqual(ev["event"], "gap")
        self.check(json.loads(ev["data"]), "sse-events.schema.json")
        sse2 = self.gw.sse("/v1/topics/short/s/events?from=50")
        self.addCleanup(sse2.close)
        ev = sse2.next()
        self.assertEqual(ev["event"], "reset")
        self.check(json.loads(ev["data"]), "sse-events.schema.json")


if __name__ == "__main__":
    harness.main()
