/*
 * pubparse.c - publish bodies to messages. Pure code (see pubparse.h).
 */
#include "pubparse.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "json.h"
#include "route.h"
#include "xalloc.h"

void
gw_batch_init(struct gw_batch *b)
{
	b->msgs = NULL;
	b->n = b->cap = 0;
	gw_buf_init(&b->arena, 0);
}

void
gw_batch_reset(struct gw_batch *b)
{
	b->n = 0;
	gw_buf_reset(&b->arena);
}

void
gw_batch_free(struct gw_batch *b)
{
	free(b->msgs);
	gw_buf_free(&b->arena);
	gw_batch_init(b);
}

void
gw_batch_views(const struct gw_batch *b, eng_msg_in *out)
{
	const unsigned char *base = gw_buf_data(&b->arena);

	for (size_t i = 0; i < b->n; i++) {
		out[i].event = b->msgs[i].event;
		out[i].data = base + b->msgs[i].off;
		out[i].len = b->msgs[i].len;
		out[i].key = b->msgs[i].key[0] ? b->msgs[i].key : NULL;
		out[i].has_priority = b->msgs[i].has_priority;
		out[i].priority = b->msgs[i].priority;
	}
}

int
gw_parse_priority(const char *s, size_t len, uint8_t *out)
{
	if (len == 2 && s[0] == '-' && s[1] == '0') { /* JSON's minus zero is the integer 0 */
		*out = 0;
		return 0;
	}
	if (len != 1 || s[0] < '0' || s[0] > '0' + ENG_PRIORITY_MAX)
		return -1;
	*out = (uint8_t)(s[0] - '0');
	return 0;
}

int
gw_perr_set(struct gw_perr *e, const char *code, const char *fmt, ...)
{
	va_list ap;

	e->code = code;
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
	return -1;
}

/* Collects the members of one message object. */
struct msg_scan {
	const struct gw_json_field *event, *data, *key, *expected, *priority;
	struct gw_json_field fields[5];
	const char *dup;     /* a repeated member ("id" and "key" are one member) */
	const char *unknown; /* first unknown member name (not NUL-terminated: see unknown_len) */
	size_t unknown_len;
};

static int
on_field(void *ctx, const struct gw_json_field *f)
{
	struct msg_scan *s = ctx;
	const struct gw_json_field **slot;
	int idx;

	if (f->key_len == 5 && !memcmp(f->key, "event", 5)) {
		slot = &s->event;
		idx = 0;
	} else if (f->key_len == 4 && !memcmp(f->key, "data", 4)) {
		slot = &s->data;
		idx = 1;
	} else if ((f->key_len == 2 && !memcmp(f->key, "id", 2)) ||
		   (f->key_len == 3 && !memcmp(f->key, "key", 3))) {
		slot = &s->key; /* "key" is the earlier name of "id" */
		idx = 2;
	} else if (f->key_len == 15 && !memcmp(f->key, "expected_offset", 15)) {
		slot = &s->expected;
		idx = 3;
	} else if (f->key_len == 8 && !memcmp(f->key, "priority", 8)) {
		slot = &s->priority;
		idx = 4;
	} else {
		s->unknown = f->key;
		s->unknown_len = f->key_len;
		return 1;
	}
	if (*slot) {
		static const char *const names[] = { "event", "data", "id", "expected_offset",
						     "priority" };

		s->dup = names[idx];
		return 1;
	}
	s->fields[idx] = *f;
	*slot = &s->fields[idx];
	return 0;
}

/* A name member must be a plain string: "..." with only name characters, so no escapes. */
static int
name_member(const struct gw_json_field *f, int (*ok)(const char *, size_t), char *dst, size_t dstsz)
{
	size_t n;

	if (f->type != GW_J_STRING || f->raw_len < 2)
		return -1;
	n = f->raw_len - 2;
	if (n >= dstsz || !ok(f->raw + 1, n))
		return -1;
	memcpy(dst, f->raw + 1, n);
	dst[n] = '\0';
	return 0;
}

static void
push_msg(struct gw_batch *b, const struct gw_msg *m)
{
	if (b->n == b->cap) {
		b->cap = b->cap ? b->cap * 2 : 8;
		b->msgs = xrealloc(b->msgs, b->cap * sizeof(*b->msgs));
	}
	b->msgs[b->n++] = *m;
}

/* Parse one message object at *pos and append it. On failure nothing of it is kept. */
static int
parse_msg(const char *p, size_t len, size_t *pos, struct gw_batch *b, struct gw_perr *e)
{
	struct msg_scan s;
	struct gw_json_err jerr = { 0, NULL };
	struct gw_msg m;
	size_t mark = b->arena.len;
	int rc;

	memset(&s, 0, sizeof(s));
	gw_json_ws(p, len, pos);
	if (*pos >= len || p[*pos] != '{')
		return gw_perr_set(e, "bad_message", "a message must be a JSON object (at byte %zu)", *pos);
	rc = gw_json_object(p, len, pos, on_field, &s, &jerr);
	if (rc < 0)
		return gw_perr_set(e, "bad_json", "%s at byte %zu", jerr.what, jerr.pos);
	if (rc > 0 && s.dup)
		return gw_perr_set(e, "bad_message", "member \"%s\" repeated%s", s.dup,
			    s.dup[0] == 'i' ? " (\"key\" is another name for \"id\")" : "");
	if (rc > 0) {
		char name[48];
		size_t n = s.unknown_len < sizeof(name) - 1 ? s.unknown_len : sizeof(name) - 1;

		memcpy(name, s.unknown, n);
		name[n] = '\0';
		return gw_perr_set(e, "bad_message",
			    "unknown member \"%s\" (a message has event, data, id, expected_offset and "
			    "priority)",
			    name);
	}
	memset(&m, 0, sizeof(m));
	if (s.event) {
		if (name_member(s.event, gw_name_event_ok, m.event, sizeof(m.event)))
			return gw_perr_set(e, "bad_event", "event must be 1 to 64 of [A-Za-z0-9_.:-]");
	} else {
		memcpy(m.event, "message", 8);
	}
	if (s.key && name_member(s.key, gw_name_key_ok, m.key, sizeof(m.key)))
		return gw_perr_set(e, "bad_message",
			    "a message's id must be a string of 1 to 128 of [A-Za-z0-9_.:-]");
	if (s.expected) {
		if (s.expected->type != GW_J_NUMBER ||
		    gw_parse_u64(s.expected->raw, s.expected->raw_len, &m.expected))
			return gw_perr_set(e, "bad_message",
				    "expected_offset must be an offset (a non-negative integer)");
		m.has_expected = 1;
	}
	if (s.priority) {
		if (s.priority->type != GW_J_NUMBER ||
		    gw_parse_priority(s.priority->raw, s.priority->raw_len, &m.priority))
			return gw_perr_set(e, "bad_message", "priority must be an integer from 0 to 9");
		m.has_priority = 1;
	}
	m.off = mark;
	if (s.data)
		gw_json_compact(s.data->raw, s.data->raw_len, &b->arena);
	else
		gw_buf_append(&b->arena, "null", 4);
	m.len = b->arena.len - mark;
	push_msg(b, &m);
	return 0;
}

int
gw_pub_parse_json(const char *p, size_t len, size_t max_msgs, struct gw_batch *b,
		  struct gw_perr *e)
{
	size_t pos = 0, n0 = b->n, mark = b->arena.len;

	gw_json_ws(p, len, &pos);
	if (pos >= len)
		return gw_perr_set(e, "bad_json", "empty body");
	if (p[pos] == '[') {
		pos++;
		gw_json_ws(p, len, &pos);
		if (pos < len && p[pos] == ']')
			return gw_perr_set(e, "bad_message", "empty batch");
		for (;;) {
			if (b->n - n0 >= max_msgs) {
				gw_perr_set(e, "too_many_messages", "a batch holds at most %zu messages", max_msgs);
				goto fail;
			}
			if (parse_msg(p, len, &pos, b, e))
				goto fail;
			gw_json_ws(p, len, &pos);
			if (pos < len && p[pos] == ',') {
				pos++;
				continue;
			}
			if (pos < len && p[pos] == ']') {
				pos++;
				break;
			}
			gw_perr_set(e, "bad_json", "',' or ']' expected at byte %zu", pos);
			goto fail;
		}
	} else if (parse_msg(p, len, &pos, b, e)) {
		goto fail;
	}
	gw_json_ws(p, len, &pos);
	if (pos != len) {
		gw_perr_set(e, "bad_json", "unexpected data after the JSON value at byte %zu", pos);
		goto fail;
	}
	return 0;
fail:
	b->n = n0;
	b->arena.len = mark;
	return -1;
}

int
gw_pub_parse_line(const char *p, size_t len, struct gw_batch *b, struct gw_perr *e)
{
	size_t pos = 0, n0 = b->n, mark = b->arena.len;

	if (len && p[len - 1] == '\r')
		len--;
	gw_json_ws(p, len, &pos);
	if (pos == len)
		return 0;
	if (parse_msg(p, len, &pos, b, e))
		goto fail;
	gw_json_ws(p, len, &pos);
	if (pos != len) {
		gw_perr_set(e, "bad_json", "one JSON object per line: unexpected data at byte %zu", pos);
		goto fail;
	}
	return 0;
fail:
	b->n = n0;
	b->arena.len = mark;
	return -1;
}

int
gw_pub_parse_text(const char *p, size_t len, struct gw_batch *b, struct gw_perr *e)
{
	struct gw_msg m;

	if (!gw_utf8_valid(p, len))
		return gw_perr_set(e, "bad_text", "text/plain body is not valid UTF-8");
	memset(&m, 0, sizeof(m));
	memcpy(m.event, "message", 8);
	m.off = b->arena.len;
	gw_buf_json_str(&b->arena, p, len);
	m.len = b->arena.len - m.off;
	push_msg(b, &m);
	return 0;
}
