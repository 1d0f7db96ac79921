/*
 * h2tap_test.c - the HTTP/2 frame tap (gateway/h2tap.c) on client byte streams built here, with
 * header blocks encoded by nghttp2's HPACK encoder the way a client encodes them (Huffman strings,
 * the dynamic table shared across requests).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <nghttp2/nghttp2.h>

#include "h2tap.h"

#define PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

struct wire {
	uint8_t b[1 << 17];
	size_t len;
	nghttp2_hd_deflater *enc;
};

static void
wire_init(struct wire *w)
{
	memset(w, 0, offsetof(struct wire, enc));
	assert_int_equal(nghttp2_hd_deflate_new(&w->enc, 4096), 0);
	memcpy(w->b, PREFACE, 24);
	w->len = 24;
	/* an empty SETTINGS frame, as every client sends after the preface */
	memcpy(w->b + w->len, "\0\0\0\x04\0\0\0\0\0", 9);
	w->len += 9;
}

static void
wire_free(struct wire *w)
{
	nghttp2_hd_deflate_del(w->enc);
}

static void
frame(struct wire *w, uint8_t type, uint8_t flags, uint32_t sid, const void *p, size_t n)
{
	uint8_t *h = w->b + w->len;

	h[0] = (uint8_t)(n >> 16);
	h[1] = (uint8_t)(n >> 8);
	h[2] = (uint8_t)n;
	h[3] = type;
	h[4] = flags;
	h[5] = (uint8_t)(sid >> 24);
	h[6] = (uint8_t)(sid >> 16);
	h[7] = (uint8_t)(sid >> 8);
	h[8] = (uint8_t)sid;
	memcpy(h + 9, p, n);
	w->len += 9 + n;
}

/* A header block of name/value pairs (NULL-terminated list), encoded as a client would. */
static size_t
encode(struct wire *w, uint8_t *out, size_t cap, const char *const *kv)
{
	nghttp2_nv nv[16];
	size_t n = 0;
	ssize_t len;

	for (; kv[2 * n]; n++) {
		nv[n].name = (uint8_t *)kv[2 * n];
		nv[n].namelen = strlen(kv[2 * n]);
		nv[n].value = (uint8_t *)kv[2 * n + 1];
		nv[n].valuelen = strlen(kv[2 * n + 1]);
		nv[n].flags = NGHTTP2_NV_FLAG_NONE;
	}
	len = nghttp2_hd_deflate_hd(w->enc, out, cap, nv, n);
	assert_true(len > 0);
	return (size_t)len;
}

static void
headers(struct wire *w, uint32_t sid, uint8_t flags, const char *const *kv)
{
	uint8_t blk[4096];

	frame(w, 0x1, flags | 0x4, sid, blk, encode(w, blk, sizeof(blk), kv));
}

static struct gw_h2tap *
tap_new(void)
{
	struct gw_h2tap *t = gw_h2tap_new(65536, 65536, 256);

	assert_non_null(t);
	return t;
}

static const char *const sse_get[] = { ":method", "GET", ":scheme", "https", ":authority", "localhost",
				       ":path", "/v1/topics/chatbot/a/events", "accept", "text/event-stream",
				       "last-event-id", "41", NULL };

static void
test_headers_lws_drops_are_kept_whatever_the_cuts(void **state)
{
	static const size_t cuts[] = { 1 << 20, 1, 7, 100 };
	struct wire w;

	(void)state;
	wire_init(&w);
	headers(&w, 1, 0x1, sse_get);
	for (size_t c = 0; c < sizeof(cuts) / sizeof(cuts[0]); c++) {
		struct gw_h2tap *t = tap_new();
		struct gw_h2stream *s;

		for (size_t i = 0; i < w.len; i += cuts[c]) {
			size_t n = w.len - i < cuts[c] ? w.len - i : cuts[c];

			assert_int_equal(gw_h2tap_feed(t, w.b + i, n), 0);
		}
		s = gw_h2tap_next_opened(t);
		assert_non_null(s);
		assert_int_equal(s->sid, 1);
		assert_true(s->headers_done);
		assert_string_equal(s->method, "GET");
		assert_string_equal(s->hdr[GW_H2H_LAST_EVENT_ID], "41");
		assert_int_equal(s->hdr_len[GW_H2H_LAST_EVENT_ID], 2);
		assert_null(s->hdr[GW_H2H_IDEMPOTENCY_KEY]);
		assert_true(s->end_stream);
		assert_ptr_equal(gw_h2tap_next_changed(t), s);
		assert_null(gw_h2tap_next_changed(t));
		assert_null(gw_h2tap_next_opened(t));
		gw_h2tap_free(t);
	}
	wire_free(&w);
}

static void
test_dynamic_table_and_trailers_stay_in_step(void **state)
{
	static const char *const post[] = { ":method", "POST", ":scheme", "https", ":path",
					    "/v1/topics/chatbot/a/messages", "idempotency-key", "k-123",
					    "litegate-expected-offset", "7", NULL };
	static const char *const trailer[] = { "x-checksum", "abc", "idempotency-key", "k-123", NULL };
	struct gw_h2tap *t = tap_new();
	struct gw_h2stream *s[3];
	struct wire w;

	(void)state;
	wire_init(&w);
	headers(&w, 1, 0, post);
	frame(&w, 0x0, 0, 1, "hello", 5);
	headers(&w, 1, 0x1, trailer); /* trailers: decoded (the table), not recorded */
	headers(&w, 3, 0, post);      /* the encoder now refers to its dynamic table */
	headers(&w, 5, 0x1, sse_get);
	assert_int_equal(gw_h2tap_feed(t, w.b, w.len), 0);
	for (int i = 0; i < 3; i++)
		s[i] = gw_h2tap_next_opened(t);
	assert_int_equal(s[0]->sid, 1);
	assert_int_equal(s[1]->sid, 3);
	assert_int_equal(s[2]->sid, 5);
	for (int i = 0; i < 2; i++) {
		assert_string_equal(s[i]->method, "POST");
		assert_string_equal(s[i]->hdr[GW_H2H_IDEMPOTENCY_KEY], "k-123");
		assert_string_equal(s[i]->hdr[GW_H2H_EXPECTED_OFFSET], "7");
	}
	assert_int_equal(s[0]->data_bytes, 5);
	assert_true(s[0]->end_stream); /* by the trailers */
	assert_false(s[1]->end_stream);
	assert_string_equal(s[2]->hdr[GW_H2H_LAST_EVENT_ID], "41");
	gw_h2tap_free(t);
	wire_free(&w);
}

static void
test_body_end_padding_continuation_and_reset(void **state)
{
	static const char *const post[] = { ":method", "POST", ":scheme", "https", ":path",
					    "/v1/topics/agent/x/messages", "content-type",
					    "application/x-ndjson", "last-event-id", "9", NULL };
	static const char *const put_len[] = { ":method", "PUT", ":scheme", "https", ":path", "/x",
					       "content-length", "6", NULL };
	uint8_t blk[512], hp[600], padded[32];
	struct gw_h2tap *t = tap_new();
	struct gw_h2stream *s;
	struct wire w;
	size_t n, h = 0;

	(void)state;
	wire_init(&w);
	/* HEADERS with PADDED and PRIORITY, its block cut in two, the rest in a CONTINUATION */
	n = encode(&w, blk, sizeof(blk), post);
	hp[h++] = 3; /* pad length */
	memcpy(hp + h, "\0\0\0\0\x10", 5);
	h += 5;
	memcpy(hp + h, blk, 4);
	h += 4;
	memset(hp + h, 0, 3);
	h += 3;
	frame(&w, 0x1, 0x8 | 0x20, 1, hp, h);
	frame(&w, 0x9, 0x4, 1, blk + 4, n - 4);
	frame(&w, 0x0, 0, 1, "{\"data\":1}\n", 11);
	frame(&w, 0x0, 0, 1, "abcdef", 6);
	/* a padded DATA frame, on a stream with a length: 6 bytes of data, 4 of padding */
	headers(&w, 3, 0, put_len);
	padded[0] = 4;
	memcpy(padded + 1, "abcdef\0\0\0\0", 10);
	frame(&w, 0x0, 0x8 | 0x1, 3, padded, 11);
	assert_int_equal(gw_h2tap_feed(t, w.b, w.len), 0);
	s = gw_h2tap_next_opened(t);
	assert_int_equal(gw_h2tap_next_opened(t)->data_bytes, 6);
	assert_ptr_equal(gw_h2tap_next_changed(t)->sid, 3); /* its END_STREAM */
	assert_string_equal(s->hdr[GW_H2H_LAST_EVENT_ID], "9");
	assert_int_equal(s->data_bytes, 17);
	assert_false(s->end_stream);
	assert_false(gw_h2tap_has_changed(t));
	/* an empty DATA frame ends the body: the end a length-less body never gets from lws */
	w.len = 0;
	frame(&w, 0x0, 0x1, 1, "", 0);
	assert_int_equal(gw_h2tap_feed(t, w.b, w.len), 0);
	assert_true(s->end_stream);
	assert_true(gw_h2tap_has_changed(t));
	assert_ptr_equal(gw_h2tap_next_changed(t), s);
	/* a reset stream */
	w.len = 0;
	headers(&w, 5, 0x1, sse_get);
	frame(&w, 0x3, 0, 5, "\0\0\0\x08", 4);
	frame(&w, 0x3, 0, 99, "\0\0\0\x08", 4); /* unknown stream: ignored */
	assert_int_equal(gw_h2tap_feed(t, w.b, w.len), 0);
	s = gw_h2tap_next_opened(t);
	assert_true(s->reset);
	assert_ptr_equal(gw_h2tap_next_changed(t), s); /* reset and end_stream: reported once */
	assert_null(gw_h2tap_next_changed(t));
	gw_h2tap_forget(t, s);
	assert_null(gw_h2tap_next_opened(t));
	gw_h2tap_free(t);
	wire_free(&w);
}

/* Each is fed after a good request; the tap must refuse it and stay failed. */
static void
test_what_ends_the_connection(void **state)
{
	static const char *const get_no_end[] = { ":method", "GET", ":scheme", "https", ":path", "/x", NULL };
	static const char *const delete_len[] = { ":method", "DELETE", ":scheme", "https", ":path", "/x",
						  "content-length", "2", NULL };
	uint8_t big[16385] = { 0 };

	(void)state;
	for (int c = 0; c < 7; c++) {
		struct gw_h2tap *t = tap_new();
		struct wire w;
		int rc;

		wire_init(&w);
		headers(&w, 1, 0x1, sse_get);
		switch (c) {
		case 0: /* body bytes on a GET without content-length: lws 4.1.6 would abort */
			headers(&w, 3, 0, get_no_end);
			frame(&w, 0x0, 0x1, 3, "x", 1);
			break;
		case 1: /* a frame inside an open header block */
			frame(&w, 0x1, 0, 3, "\x82", 1);
			frame(&w, 0x0, 0, 1, "x", 1);
			break;
		case 2: /* over SETTINGS_MAX_FRAME_SIZE */
			frame(&w, 0x0, 0, 1, big, sizeof(big));
			break;
		case 3: /* an undecodable block (index 200 is in no table) */
			frame(&w, 0x1, 0x5, 3, "\xff\x49", 2);
			break;
		case 4: /* a CONTINUATION with no block open */
			frame(&w, 0x9, 0x4, 1, "\x82", 1);
			break;
		case 5: { /* padding on a body without a length: lws may deliver it as body bytes */
			static const char *const post[] = { ":method", "POST", ":scheme", "https", ":path",
							    "/x", NULL };

			headers(&w, 3, 0, post);
			frame(&w, 0x0, 0x8, 3, "\x01a\0", 3);
			break;
		}
		case 6: /* more streams than it follows at once */
			for (uint32_t sid = 3; sid < 3 + 2 * 256; sid += 2)
				headers(&w, sid, 0x1, sse_get);
			break;
		}
		rc = gw_h2tap_feed(t, w.b, w.len);
		assert_int_equal(rc, -1);
		assert_int_equal(gw_h2tap_feed(t, (const uint8_t *)"\0", 1), -1);
		gw_h2tap_free(t);
		wire_free(&w);
	}
	{
		/* a body with a length on a DELETE is lws's to read: fine */
		struct gw_h2tap *t = tap_new();
		struct wire w;

		wire_init(&w);
		headers(&w, 1, 0, delete_len);
		frame(&w, 0x0, 0x1, 1, "{}", 2);
		assert_int_equal(gw_h2tap_feed(t, w.b, w.len), 0);
		gw_h2tap_free(t);
		wire_free(&w);
	}
	{
		struct gw_h2tap *t = tap_new();

		assert_int_equal(gw_h2tap_feed(t, (const uint8_t *)"GET / HTTP/1.1\r\n", 16), -1);
		gw_h2tap_free(t);
	}
}

static void
test_long_values_keep_only_their_length(void **state)
{
	char big[1000];
	const char *const get_big[] = { ":method", "GET", ":scheme", "https", ":path", "/e",
					"last-event-id", big, NULL };
	struct gw_h2tap *t = tap_new();
	struct gw_h2stream *s;
	struct wire w;

	(void)state;
	memset(big, '7', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	wire_init(&w);
	/* the encoder indexes the big value once, then refers to it: each stream costs its length */
	for (uint32_t sid = 1; sid < 1 + 2 * 100; sid += 2)
		headers(&w, sid, 0x1, get_big);
	assert_int_equal(gw_h2tap_feed(t, w.b, w.len), 0);
	while ((s = gw_h2tap_next_opened(t))) {
		assert_string_equal(s->hdr[GW_H2H_LAST_EVENT_ID], "");
		assert_int_equal(s->hdr_len[GW_H2H_LAST_EVENT_ID], sizeof(big) - 1);
	}
	gw_h2tap_free(t);
	wire_free(&w);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_headers_lws_drops_are_kept_whatever_the_cuts),
		cmocka_unit_test(test_dynamic_table_and_trailers_stay_in_step),
		cmocka_unit_test(test_body_end_padding_continuation_and_reset),
		cmocka_unit_test(test_what_ends_the_connection),
		cmocka_unit_test(test_long_values_keep_only_their_length),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
