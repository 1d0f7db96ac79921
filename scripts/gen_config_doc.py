#!/usr/bin/env python3
"""Writes docs/config.md from schemas/config.schema.json, so the config reference cannot drift from
the schema the tests validate the default config against. `--check` exits 1 if the file is stale
(run by ctest as config_doc_fresh)."""
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

HEAD = """# Configuration

`litegate` reads one JSON file: `--config FILE`, or `conf/litegate.json` by default. Every field is
optional; a field left out takes the default below. Command-line flags override the file:
`--listen ADDR:PORT`, `--data-dir DIR`, `--log-level LEVEL` (also `--help`, `--version`, and the
`litegate token` sub-command, see [security.md](security.md)). A bad file or flag prints the field
and what is wrong, and exits with status 2. The file is read once at start; the config is then
immutable.

The JSON Schema is [schemas/config.schema.json](../schemas/config.schema.json). This page is
generated from it by `scripts/gen_config_doc.py` (a test fails when they differ).

| field | type | default | meaning |
|---|---|---|---|
"""

TAIL = """
## Durability

`fsync` (the default): a publish is acknowledged after its group commit's `fdatasync`. `interval`:
the log is `fdatasync`ed every `fsync_interval_ms` and a publish is acknowledged after its write;
a power loss can take back up to that long of acknowledged messages (a crash of the process
alone cannot). `none`: the operating system decides when to write back. See
[storage.md](storage.md).

## Example: a public deployment

```json
{
  "listen": "0.0.0.0:443",
  "data_dir": "/var/lib/litegate",
  "tls": { "cert": "/etc/litegate/cert.pem", "key": "/etc/litegate/key.pem" },
  "auth": { "mode": "jwt", "public_keys": ["/etc/litegate/issuer.pem"], "audience": "chat" },
  "cors_origins": ["https://chat.example.com"],
  "parents": [ { "name": "chatbot" }, { "name": "agent", "priority": 7 } ]
}
```
"""


def rows(props, prefix, out):
    for key, v in props.items():
        name = prefix + key
        kind = v.get("type", "")
        if isinstance(kind, list):
            kind = " or ".join(kind)
        if "enum" in v:
            kind = " \\| ".join("`%s`" % e for e in v["enum"])
        default = "" if "default" not in v else "`%s`" % json.dumps(v["default"])
        desc = v.get("description", "").replace("|", "\\|").replace("\n", " ")
        if v.get("type") == "object" and "properties" in v:
            out.append((name, "object", default, desc))
            rows(v["properties"], name + ".", out)
        elif v.get("type") == "array" and isinstance(v.get("items"), dict) and "properties" in v["items"]:
            out.append((name + "[]", "array of objects", default, desc))
            rows(v["items"]["properties"], name + "[].", out)
        else:
            out.append((name, kind, default, desc))


def render():
    schema = json.load(open(os.path.join(ROOT, "schemas", "config.schema.json")))
    out = []
    rows(schema.get("properties", {}), "", out)
    body = "".join("| `%s` | %s | %s | %s |\n" % r for r in out)
    return HEAD + body + TAIL


def main():
    path = os.path.join(ROOT, "docs", "config.md")
    text = render()
    if "--check" in sys.argv:
        cur = open(path).read() if os.path.exists(path) else ""
        if cur != text:
            print("docs/config.md is stale: run scripts/gen_config_doc.py", file=sys.stderr)
            return 1
        print("docs/config.md matches schemas/config.schema.json")
        return 0
    open(path, "w").write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
