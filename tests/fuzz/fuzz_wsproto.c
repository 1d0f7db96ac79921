/*
 * fuzz_wsproto.c - libFuzzer target for WebSocket client messages (gateway/wsproto.c): one JSON
 * text message -> one operation (subscribe, unsubscribe, publish, ping).
 *
 * Input: the reassembled message, as ws.c hands it over. Invariants checked:
 *  - a refused message gives a documented error code and appends nothing to the publish buffer;
 *    a "req" echoed back is at most GW_WS_REQ_MAX bytes and is itself a JSON number or string;
 *  - an accepted one has a known op; every op but ping names a topic the engine accepts; "from"
 *    only on subscribe; publish data is one compact JSON value appended at the buffer's end, with
 *    a valid event and an empty or valid key; other ops append nothing;
 *  - differential against jansson: an accepted message is a JSON object whose op, topic, event,
 *    key, from and data (json_equal) are what we parsed; and a message that jansson reads as a
 *    well-formed op (without escapes, "from" or "req", which have their own stricter rules) is not
 *    refused.
 */
#include <string.h>

#include <jansson.h>

#include <engine.h>

#include "buf.h"
#include "fuzz.h"
#include "json.h"
#include "route.h"
#include "wsproto.h"

static const char *const ops[] = { "", "subscribe", "unsubscribe", "publish", "ping" };

static int
is_one_value(const char *p, size_t len, enum gw_json_type *t)
{
	size_t pos = 0;

	return len && gw_json_skip(p, len, &pos, t, NULL) == 0 && pos == len;
}

static const char *
jstr(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* What jansson makes of an accepted message must be what we parsed. */
static void
same_as_jansson(json_t *o, const struct gw_ws_op *op, const struct gw_buf *data)
{
	json_t *from = json_object_get(o, "from"), *d = json_object_get(o, "data"), *ours;
	json_error_t jerr;

	FUZZ_CHECK(json_is_object(o));
	FUZZ_CHECK(jstr(o, "op") && !strcmp(jstr(o, "op"), ops[op->op]));
	if (op->op == GW_WS_OP_PING)
		return;
	FUZZ_CHECK(jstr(o, "topic") && !strcmp(jstr(o, "topic"), op->topic));
	if (op->has_from && op->from_tail)
		FUZZ_CHECK(jstr(o, "from") && !strcmp(jstr(o, "from"), "tail"));
	else if (op->has_from)
		FUZZ_CHECK(json_is_integer(from) && (uint64_t)json_integer_value(from) == op->from);
	else
		FUZZ_CHECK(from == NULL);
	if (op->op != GW_WS_OP_PUBLISH)
		return;
	FUZZ_CHECK(!strcmp(jstr(o, "event") ? jstr(o, "event") : "message", op->msg.event));
	/* "id" is the producer key; "key" is its earlier name. */
	FUZZ_CHECK(!strcmp(jstr(o, "id") ? jstr(o, "id") : jstr(o, "key") ? jstr(o, "key") : "",
			   op->msg.key));
	ours = json_loadb((const char *)gw_buf_data(data) + op->msg.off, op->msg.len,
			  JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	FUZZ_CHECK(ours != NULL);
	FUZZ_CHECK(d ? json_equal(ours, d) : json_is_null(ours));
	json_decref(ours);
}

/* The grammar of wsproto.h, read from jansson's tree (no "from", no "req"): 1 if it must pass. */
static int
must_accept(json_t *o)
{
	const char *k, *op, *topic;
	json_t *v;
	int pub;

	if (!json_is_object(o))
		return 0;
	json_object_foreach(o, k, v) {
		if (strcmp(k, "op") && strcmp(k, "topic") && strcmp(k, "event") &&
		    strcmp(k, "data") && strcmp(k, "key"))
			return 0;
	}
	if (!(op = jstr(o, "op")))
		return 0;
	if (!strcmp(op, "ping"))
		return 1;
	if (strcmp(op, "subscribe") && strcmp(op, "unsubscribe") && strcmp(op, "publish"))
		return 0;
	topic = jstr(o, "topic");
	if (!topic || eng_topic_name_check(topic, strlen(topic)) != 0)
		return 0;
	pub = !strcmp(op, "publish");
	v = json_object_get(o, "event");
	if (v && (!pub || !json_is_string(v) ||
		  eng_event_name_check(json_string_value(v), json_string_length(v))))
		return 0;
	v = json_object_get(o, "key");
	if (v && (!pub || !json_is_string(v) ||
		  !gw_name_key_ok(json_string_value(v), json_string_length(v))))
		return 0;
	if (json_object_get(o, "data") && !pub)
		return 0;
	return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *in, size_t size)
{
	const char *p = (const char *)in;
	struct gw_ws_op op;
	struct gw_perr e = { NULL, "" };
	struct gw_buf data;
	size_t d0, rl, tl;
	int rc;
	json_error_t jerr;
	json_t *root;

	gw_buf_init(&data, 0);
	gw_buf_puts(&data, "[earlier publish data]"); /* ws.c reuses one buffer per connection */
	d0 = data.len;
	rc = gw_ws_parse(p, size, &op, &data, &e);
	FUZZ_CHECK(rc == 0 || rc == -1);

	rl = strnlen(op.req, sizeof(op.req));
	FUZZ_CHECK(rl <= GW_WS_REQ_MAX);
	if (rl) {
		enum gw_json_type t;

		FUZZ_CHECK(is_one_value(op.req, rl, &t) && (t == GW_J_NUMBER || t == GW_J_STRING));
	}
	if (rc) {
		FUZZ_CHECK(e.code);
		FUZZ_CHECK(!strcmp(e.code, "bad_json") || !strcmp(e.code, "bad_request") ||
			   !strcmp(e.code, "bad_topic") || !strcmp(e.code, "bad_event"));
		FUZZ_CHECK(strnlen(e.message, sizeof(e.message)) < sizeof(e.message));
		FUZZ_CHECK(data.len == d0);
	} else {
		FUZZ_CHECK(op.op >= GW_WS_OP_SUBSCRIBE && op.op <= GW_WS_OP_PING);
		FUZZ_CHECK(!op.from_tail || op.has_from);
		FUZZ_CHECK(!op.has_from || op.op == GW_WS_OP_SUBSCRIBE);
		tl = strnlen(op.topic, sizeof(op.topic));
		FUZZ_CHECK(tl < sizeof(op.topic));
		if (op.op == GW_WS_OP_PING)
			FUZZ_CHECK(tl == 0);
		else
			FUZZ_CHECK(eng_topic_name_check(op.topic, tl) == 0);
		if (op.op == GW_WS_OP_PUBLISH) {
			size_t el = strnlen(op.msg.event, sizeof(op.msg.event));
			size_t kl = strnlen(op.msg.key, sizeof(op.msg.key));
			const char *d = (const char *)gw_buf_data(&data) + op.msg.off;
			enum gw_json_type t;
			struct gw_buf c;

			FUZZ_CHECK(eng_event_name_check(op.msg.event, el) == 0);
			FUZZ_CHECK(kl == 0 || gw_name_key_ok(op.msg.key, kl));
			FUZZ_CHECK(op.msg.off == d0 && op.msg.len);
			FUZZ_CHECK(op.msg.off + op.msg.len == data.len);
			FUZZ_CHECK(is_one_value(d, op.msg.len, &t));
			gw_buf_init(&c, 0);
			gw_json_compact(d, op.msg.len, &c);
			FUZZ_CHECK(c.len == op.msg.len && fuzz_mem_eq(gw_buf_data(&c), d, c.len));
			gw_buf_free(&c);
		} else {
			FUZZ_CHECK(data.len == d0);
		}
	}

	root = json_loadb(p, size, JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES,
			  &jerr);
	if (!root) {
		if (!rc)
			FUZZ_CHECK(json_error_code(&jerr) == json_error_numeric_overflow ||
				   json_error_code(&jerr) == json_error_duplicate_key ||
				   strstr(jerr.text, "invalid Unicode"));
	} else if (!rc) {
		same_as_jansson(root, &op, &data);
	} else if (!memchr(p, '\\', size) && !memchr(p, '\0', size) &&
		   fuzz_json_nesting(p, size) < GW_JSON_DEPTH_MAX - 2) {
		/* No escapes (names refuse them on purpose); no raw NUL (jansson skips it). */
		FUZZ_CHECK(!must_accept(root));
	}
	json_decref(root);
	gw_buf_free(&data);
	return 0;
}
