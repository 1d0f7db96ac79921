/*
 * wsproto.c - WebSocket client frames to operations. Pure code (see wsproto.h).
 */
#include "wsproto.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "json.h"
#include "route.h"

enum { F_OP, F_TOPIC, F_FROM, F_EVENT, F_DATA, F_KEY, F_REQ, F_ID, F_EXPECTED, F_GROUP, F_PRIORITY,
       F_COUNT };

/* "key" is the earlier name of "id": a publish may carry one or the other. */
static const char *const field_names[F_COUNT] = { "op", "topic", "from", "event", "data", "key", "req",
						  "id", "expected_offset", "group", "priority" };

struct scan {
	struct gw_json_field f[F_COUNT];
	int seen[F_COUNT];
	const char *dup;
	int unknown;
};

static int
on_field(void *ctx, const struct gw_json_field *f)
{
	struct scan *s = ctx;

	for (int i = 0; i < F_COUNT; i++) {
		if (f->key_len == strlen(field_names[i]) && !memcmp(f->key, field_names[i], f->key_len)) {
			if (s->seen[i]) {
				if (!s->dup)
					s->dup = field_names[i];
				return 0;
			}
			s->seen[i] = 1;
			s->f[i] = *f;
			return 0;
		}
	}
	/* Keep scanning: a later "req" still lets the error reply name the request. */
	s->unknown = 1;
	return 0;
}

/* The bytes of a string member without escapes, or -1 (the names we accept never need escapes). */
static int
plain_str(const struct gw_json_field *f, const char **s, size_t *n)
{
	if (f->type != GW_J_STRING || f->raw_len < 2 || memchr(f->raw, '\\', f->raw_len))
		return -1;
	*s = f->raw + 1;
	*n = f->raw_len - 2;
	return 0;
}

static int
is(const char *s, size_t n, const char *lit)
{
	return n == strlen(lit) && !memcmp(s, lit, n);
}

int
gw_ws_parse(const char *p, size_t len, struct gw_ws_op *op, struct gw_buf *data,
	    struct gw_perr *e)
{
	struct gw_json_err jerr = { 0, NULL };
	struct scan s;
	size_t pos = 0, n;
	const char *v;
	int rc;

	memset(op, 0, sizeof(*op));
	memset(&s, 0, sizeof(s));
	rc = gw_json_object(p, len, &pos, on_field, &s, &jerr);
	/* Keep req whenever it was seen, even if a later member was wrong. */
	if (s.seen[F_REQ]) {
		const struct gw_json_field *f = &s.f[F_REQ];

		if ((f->type == GW_J_NUMBER || f->type == GW_J_STRING) && f->raw_len <= GW_WS_REQ_MAX) {
			memcpy(op->req, f->raw, f->raw_len);
			op->req[f->raw_len] = '\0';
		} else if (rc == 0) {
			return gw_perr_set(e, "bad_request", "req must be a number or a string of at most %d bytes",
				    GW_WS_REQ_MAX);
		}
	}
	if (rc < 0)
		return gw_perr_set(e, "bad_json", "%s at byte %zu", jerr.what, jerr.pos);
	if (s.dup)
		return gw_perr_set(e, "bad_request", "member \"%s\" repeated", s.dup);
	if (s.unknown)
		return gw_perr_set(e, "bad_request",
			    "unknown member (known: op, topic, from, group, event, data, id, expected_offset, "
			    "priority, req)");
	gw_json_ws(p, len, &pos);
	if (pos != len)
		return gw_perr_set(e, "bad_json", "unexpected data after the JSON object at byte %zu", pos);
	if (!s.seen[F_OP] || plain_str(&s.f[F_OP], &v, &n))
		return gw_perr_set(e, "bad_request", "op must be a string");
	if (is(v, n, "subscribe"))
		op->op = GW_WS_OP_SUBSCRIBE;
	else if (is(v, n, "unsubscribe"))
		op->op = GW_WS_OP_UNSUBSCRIBE;
	else if (is(v, n, "publish"))
		op->op = GW_WS_OP_PUBLISH;
	else if (is(v, n, "ping"))
		op->op = GW_WS_OP_PING;
	else
		return gw_perr_set(e, "bad_request", "unknown op (subscribe, unsubscribe, publish, ping)");
	if (op->op == GW_WS_OP_PING)
		return 0;
	if (!s.seen[F_TOPIC] || plain_str(&s.f[F_TOPIC], &v, &n) || !gw_name_topic_ok(v, n))
		return gw_perr_set(e, "bad_topic", "topic must be \"<parent>/<id>\"");
	memcpy(op->topic, v, n);
	op->topic[n] = '\0';
	if (op->op == GW_WS_OP_SUBSCRIBE && s.seen[F_FROM]) {
		const struct gw_json_field *f = &s.f[F_FROM];

		op->has_from = 1;
		if (f->type == GW_J_STRING && is(f->raw, f->raw_len, "\"tail\""))
			op->from_tail = 1;
		else if (f->type != GW_J_NUMBER || gw_parse_u64(f->raw, f->raw_len, &op->from))
			return gw_perr_set(e, "bad_request", "from must be an offset (a non-negative integer) or \"tail\"");
	}
	if (op->op == GW_WS_OP_SUBSCRIBE && s.seen[F_GROUP]) {
		if (plain_str(&s.f[F_GROUP], &v, &n) || n > GW_WS_GROUP_MAX || !gw_name_id_ok(v, n))
			return gw_perr_set(e, "bad_name", "group must be 1 to %d of [A-Za-z0-9_.:-], not starting with '.'",
				    GW_WS_GROUP_MAX);
		memcpy(op->group, v, n);
		op->group[n] = '\0';
	}
	if (op->op != GW_WS_OP_PUBLISH) {
		if (s.seen[F_EVENT] || s.seen[F_DATA] || s.seen[F_KEY] || s.seen[F_ID] ||
		    s.seen[F_EXPECTED] || s.seen[F_PRIORITY] ||
		    (op->op == GW_WS_OP_UNSUBSCRIBE && (s.seen[F_FROM] || s.seen[F_GROUP])))
			return gw_perr_set(e, "bad_request", "member not valid for this op");
		return 0;
	}
	if (s.seen[F_FROM] || s.seen[F_GROUP])
		return gw_perr_set(e, "bad_request", "from and group are not valid for publish");
	if (s.seen[F_EVENT]) {
		if (plain_str(&s.f[F_EVENT], &v, &n) || !gw_name_event_ok(v, n))
			return gw_perr_set(e, "bad_event", "event must be 1 to 64 of [A-Za-z0-9_.:-]");
		memcpy(op->msg.event, v, n);
		op->msg.event[n] = '\0';
	} else {
		memcpy(op->msg.event, "message", 8);
	}
	if (s.seen[F_KEY] && s.seen[F_ID])
		return gw_perr_set(e, "bad_request", "give \"id\" or \"key\" (its earlier name), not both");
	if (s.seen[F_KEY] || s.seen[F_ID]) {
		if (plain_str(&s.f[s.seen[F_ID] ? F_ID : F_KEY], &v, &n) || !gw_name_key_ok(v, n))
			return gw_perr_set(e, "bad_request", "id must be a string of 1 to 128 of [A-Za-z0-9_.:-]");
		memcpy(op->msg.key, v, n);
		op->msg.key[n] = '\0';
	}
	if (s.seen[F_EXPECTED]) {
		const struct gw_json_field *f = &s.f[F_EXPECTED];

		if (f->type != GW_J_NUMBER || gw_parse_u64(f->raw, f->raw_len, &op->msg.expected))
			return gw_perr_set(e, "bad_request",
				    "expected_offset must be an offset (a non-negative integer)");
		op->msg.has_expected = 1;
	}
	if (s.seen[F_PRIORITY]) {
		const struct gw_json_field *f = &s.f[F_PRIORITY];

		if (f->type != GW_J_NUMBER || gw_parse_priority(f->raw, f->raw_len, &op->msg.priority))
			return gw_perr_set(e, "bad_request", "priority must be an integer from 0 to 9");
		op->msg.has_priority = 1;
	}
	op->msg.off = data->len;
	if (s.seen[F_DATA])
		gw_json_compact(s.f[F_DATA].raw, s.f[F_DATA].raw_len, data);
	else
		gw_buf_append(data, "null", 4);
	op->msg.len = data->len - op->msg.off;
	return 0;
}
