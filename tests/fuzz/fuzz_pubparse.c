/*
 * fuzz_pubparse.c - libFuzzer target for publish bodies (gateway/pubparse.c): application/json
 * (one message or a batch), application/x-ndjson lines, text/plain.
 *
 * Input: a mode byte (json, ndjson, text), a batch-limit byte, then the body. Invariants checked:
 *  - a refused body leaves the batch exactly as it was (messages and arena bytes) and gives one of
 *    the documented error codes;
 *  - every accepted message has a valid event name (as the engine checks it), an empty or valid
 *    key, and data that is one compact JSON value inside the arena, packed back to back;
 *  - JSON: differential against jansson: each message's data means the same JSON as the body's
 *    "data" member (json_equal), its event, key and priority are the body's; and a body jansson reads as a
 *    well-formed batch within the limits is not refused;
 *  - NDJSON: lines are split as publish.c splits them; a line is accepted exactly when the same
 *    text is accepted as a one-message JSON body that is an object, with the same message;
 *  - text: accepted exactly when the body is valid UTF-8, and the stored JSON string decodes
 *    (jansson) back to the body's bytes.
 */
#include <string.h>

#include <jansson.h>

#include <engine.h>

#include "buf.h"
#include "fuzz.h"
#include "json.h"
#include "pubparse.h"
#include "route.h"

static int
known_code(const char *c)
{
	static const char *const codes[] = { "bad_json", "bad_message", "bad_event",
					     "too_many_messages", "bad_text" };

	for (size_t i = 0; c && i < sizeof(codes) / sizeof(codes[0]); i++)
		if (!strcmp(c, codes[i]))
			return 1;
	return 0;
}

static int
is_one_value(const char *p, size_t len, enum gw_json_type *t)
{
	size_t pos = 0;

	return len && gw_json_skip(p, len, &pos, t, NULL) == 0 && pos == len;
}

/* A snapshot of a batch, to prove a failed parse changed nothing. */
struct snap {
	size_t n, len;
	unsigned char *bytes;
	struct gw_msg *msgs;
};

static void
snap_take(struct snap *s, const struct gw_batch *b)
{
	s->n = b->n;
	s->len = b->arena.len;
	s->bytes = malloc(s->len ? s->len : 1);
	s->msgs = malloc((s->n ? s->n : 1) * sizeof(*s->msgs));
	if (s->len)
		memcpy(s->bytes, gw_buf_data(&b->arena), s->len);
	if (s->n)
		memcpy(s->msgs, b->msgs, s->n * sizeof(*s->msgs));
}

static void
snap_same(const struct snap *s, const struct gw_batch *b)
{
	FUZZ_CHECK(b->n == s->n && b->arena.len == s->len);
	FUZZ_CHECK(fuzz_mem_eq(gw_buf_data(&b->arena), s->bytes, s->len));
	FUZZ_CHECK(fuzz_mem_eq(b->msgs, s->msgs, s->n * sizeof(*s->msgs)));
}

static void
snap_free(struct snap *s)
{
	free(s->bytes);
	free(s->msgs);
}

/* Check the outcome of one parse call: messages [from, b->n) are new. */
static void
check_outcome(int rc, const struct snap *before, const struct gw_batch *b, const struct gw_perr *e)
{
	FUZZ_CHECK(rc == 0 || rc == -1);
	if (rc) {
		FUZZ_CHECK(known_code(e->code));
		FUZZ_CHECK(strnlen(e->message, sizeof(e->message)) < sizeof(e->message));
		snap_same(before, b);
		return;
	}
	FUZZ_CHECK(b->n >= before->n);
	for (size_t i = before->n; i < b->n; i++) {
		const struct gw_msg *m = &b->msgs[i];
		const char *d = (const char *)gw_buf_data(&b->arena) + m->off;
		size_t el = strnlen(m->event, sizeof(m->event));
		size_t kl = strnlen(m->key, sizeof(m->key));
		enum gw_json_type t;
		struct gw_buf c;

		FUZZ_CHECK(el < sizeof(m->event) && eng_event_name_check(m->event, el) == 0);
		FUZZ_CHECK(kl < sizeof(m->key) && (kl == 0 || gw_name_key_ok(m->key, kl)));
		FUZZ_CHECK(m->off == (i ? b->msgs[i - 1].off + b->msgs[i - 1].len : 0));
		FUZZ_CHECK(m->off + m->len <= b->arena.len && m->len > 0);
		FUZZ_CHECK(is_one_value(d, m->len, &t));
		gw_buf_init(&c, 0);
		gw_json_compact(d, m->len, &c);
		/* already compact */
		FUZZ_CHECK(c.len == m->len && fuzz_mem_eq(gw_buf_data(&c), d, m->len));
		gw_buf_free(&c);
	}
	FUZZ_CHECK(b->n == before->n ||
		   b->msgs[b->n - 1].off + b->msgs[b->n - 1].len == b->arena.len);
}

/* jansson's view of one message object: NULL if it is not one we must accept. */
static int
jansson_msg_ok(json_t *o)
{
	const char *k;
	json_t *v;

	if (!json_is_object(o))
		return 0;
	json_object_foreach(o, k, v) {
		if (!strcmp(k, "event")) {
			if (!json_is_string(v) ||
			    !gw_name_event_ok(json_string_value(v), json_string_length(v)))
				return 0;
		} else if (!strcmp(k, "key")) {
			if (!json_is_string(v) ||
			    !gw_name_key_ok(json_string_value(v), json_string_length(v)))
				return 0;
		} else if (!strcmp(k, "priority")) {
			/* an integer 0..9 as JSON writes it (jansson reads 1.0 and 1e0 as reals) */
			if (!json_is_integer(v) || json_integer_value(v) < 0 ||
			    json_integer_value(v) > ENG_PRIORITY_MAX)
				return 0;
		} else if (strcmp(k, "data")) {
			return 0;
		}
	}
	return 1;
}

/* The message we stored says what jansson reads in the body's object. */
static void
same_as_jansson(const struct gw_batch *b, size_t i, json_t *o)
{
	const struct gw_msg *m = &b->msgs[i];
	json_t *ev = json_object_get(o, "event"), *key = json_object_get(o, "id");
	json_t *data = json_object_get(o, "data"), *ours;
	json_error_t jerr;

	FUZZ_CHECK(!strcmp(m->event, ev ? json_string_value(ev) : "message"));
	if (!key)
		key = json_object_get(o, "key"); /* the earlier name of "id" */
	FUZZ_CHECK(!strcmp(m->key, key ? json_string_value(key) : ""));
	{
		json_t *prio = json_object_get(o, "priority");

		FUZZ_CHECK(m->has_priority == (prio != NULL));
		FUZZ_CHECK(!prio || (json_is_integer(prio) &&
				     json_integer_value(prio) == (json_int_t)m->priority));
	}
	ours = json_loadb((const char *)gw_buf_data(&b->arena) + m->off, m->len,
			  JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	FUZZ_CHECK(ours != NULL); /* the body parsed, so its data does */
	FUZZ_CHECK(data ? json_equal(ours, data) : json_is_null(ours));
	json_decref(ours);
}

static void
json_mode(const char *p, size_t len, size_t max_msgs, struct gw_batch *b)
{
	struct gw_perr e = { NULL, "" };
	struct snap s;
	size_t n0 = b->n;
	int rc;
	json_error_t jerr;
	json_t *root;

	snap_take(&s, b);
	rc = gw_pub_parse_json(p, len, max_msgs, b, &e);
	check_outcome(rc, &s, b, &e);
	snap_free(&s);
	if (!rc)
		FUZZ_CHECK(b->n > n0 && b->n - n0 <= max_msgs);

	/* Duplicate names inside data are kept as written (RFC 8259 leaves them to the reader), so
	 * compare with jansson's last-wins reading; message members are checked strictly below. */
	root = json_loadb(p, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	if (!root) {
		/* We accepted what jansson refuses only where jansson is stricter on purpose. */
		if (!rc)
			FUZZ_CHECK(json_error_code(&jerr) == json_error_numeric_overflow ||
				   strstr(jerr.text, "invalid Unicode"));
		return;
	}
	if (!rc) {
		/* Messages in order, each the same as jansson's reading of it. */
		if (json_is_array(root)) {
			FUZZ_CHECK(json_array_size(root) == b->n - n0);
			for (size_t i = 0; i < b->n - n0; i++)
				same_as_jansson(b, n0 + i, json_array_get(root, i));
		} else {
			FUZZ_CHECK(b->n - n0 == 1);
			same_as_jansson(b, n0, root);
		}
	} else if (!memchr(p, '\\', len) && !memchr(p, '\0', len) &&
		   fuzz_json_nesting(p, len) < GW_JSON_DEPTH_MAX - 2) {
		/* Refused: then jansson must see something wrong with it as a batch too. Names with
		 * escapes are refused on purpose (they never need one), hence no backslash at all;
		 * jansson skips raw NUL bytes between tokens, which JSON does not allow. */
		json_t *strict = json_loadb(p, len, JSON_DECODE_ANY | JSON_ALLOW_NUL |
						    JSON_REJECT_DUPLICATES, &jerr);
		int ok = strict != NULL;

		if (ok && json_is_array(strict)) {
			size_t i;
			json_t *o;

			ok = json_array_size(strict) > 0 && json_array_size(strict) <= max_msgs;
			json_array_foreach(strict, i, o) ok = ok && jansson_msg_ok(o);
		} else if (ok) {
			ok = jansson_msg_ok(strict);
		}
		FUZZ_CHECK(!ok);
		json_decref(strict);
	}
	json_decref(root);
}

/* One NDJSON line: exactly a one-message JSON body that is an object. */
static void
line(const char *p, size_t len, struct gw_batch *b)
{
	struct gw_perr e = { NULL, "" }, e2 = { NULL, "" };
	struct snap s;
	struct gw_batch alone;
	size_t n0 = b->n, pos = 0, l = len;
	int rc, rc2;

	snap_take(&s, b);
	rc = gw_pub_parse_line(p, len, b, &e);
	check_outcome(rc, &s, b, &e);
	snap_free(&s);
	if (l && p[l - 1] == '\r')
		l--;
	gw_json_ws(p, l, &pos);
	if (pos == l) {
		FUZZ_CHECK(rc == 0 && b->n == n0); /* blank: nothing, no error */
		return;
	}
	gw_batch_init(&alone);
	rc2 = gw_pub_parse_json(p, l, 1, &alone, &e2);
	if (p[pos] != '{')
		FUZZ_CHECK(rc == -1);
	else
		FUZZ_CHECK(rc == rc2);
	if (!rc && !rc2) {
		const struct gw_msg *a = &b->msgs[n0], *m = &alone.msgs[0];

		FUZZ_CHECK(b->n == n0 + 1 && alone.n == 1);
		FUZZ_CHECK(!strcmp(a->event, m->event) && !strcmp(a->key, m->key));
		FUZZ_CHECK(a->len == m->len && !memcmp(gw_buf_data(&b->arena) + a->off,
						       gw_buf_data(&alone.arena), a->len));
	}
	gw_batch_free(&alone);
}

/* As publish.c: split on '\n'; a last line without one still counts. */
static void
ndjson_mode(const char *p, size_t len, struct gw_batch *b)
{
	while (len) {
		const char *nl = memchr(p, '\n', len);
		size_t take = nl ? (size_t)(nl - p) : len;

		line(p, take, b);
		if (!nl)
			break;
		p += take + 1;
		len -= take + 1;
	}
}

static void
text_mode(const char *p, size_t len, struct gw_batch *b)
{
	struct gw_perr e = { NULL, "" };
	struct snap s;
	size_t n0 = b->n;
	int rc;

	snap_take(&s, b);
	rc = gw_pub_parse_text(p, len, b, &e);
	check_outcome(rc, &s, b, &e);
	snap_free(&s);
	FUZZ_CHECK((rc == 0) == gw_utf8_valid(p, len));
	if (!rc) {
		const struct gw_msg *m = &b->msgs[n0];
		json_error_t jerr;
		json_t *str;

		FUZZ_CHECK(b->n == n0 + 1 && !strcmp(m->event, "message") && m->key[0] == '\0');
		str = json_loadb((const char *)gw_buf_data(&b->arena) + m->off, m->len,
				 JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
		FUZZ_CHECK(str && json_is_string(str));
		FUZZ_CHECK(json_string_length(str) == len &&
			   fuzz_mem_eq(json_string_value(str), p, len));
		json_decref(str);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gw_batch b;
	struct gw_perr e;
	const char *p = (const char *)data + 2;
	size_t len, max_msgs;

	if (size < 2)
		return 0;
	len = size - 2;
	max_msgs = data[1] >= 128 ? 1000 : 1 + data[1] % 8;
	gw_batch_init(&b);
	/* A message already in the batch, so "unchanged on failure" means something. */
	FUZZ_CHECK(gw_pub_parse_text("earlier", 7, &b, &e) == 0 && b.n == 1);
	switch (data[0] % 3) {
	case 0:
		json_mode(p, len, max_msgs, &b);
		break;
	case 1:
		ndjson_mode(p, len, &b);
		break;
	default:
		text_mode(p, len, &b);
		break;
	}
	gw_batch_free(&b);
	return 0;
}
