/*
 * h2tap.c - the client's HTTP/2 frames, followed for what lws 4.1.6 loses (h2tap.h).
 *
 * A streaming parser: bytes come in whatever pieces TLS records cut them into. The 9-byte frame
 * header is gathered first; the header block fragments of HEADERS and CONTINUATION frames (their
 * payload without pad length, priority and padding) are joined in a buffer that grows as needed,
 * until END_HEADERS, then decoded at once; DATA and RST_STREAM are only counted. Between requests a
 * tap holds no buffer: an idle connection costs the stream records and HPACK's table. Every
 * header block is decoded, trailers and blocks of streams already forgotten included: HPACK's
 * dynamic table is shared by the whole connection, so skipping one would put the decoder out of
 * step with the client's encoder (and with lws's decoder).
 */
#include "h2tap.h"

#include <nghttp2/nghttp2.h>
#include <stdlib.h>
#include <string.h>

#define PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define PREFACE_LEN 24
#define FRAME_MAX 16384     /* SETTINGS_MAX_FRAME_SIZE announced (tls.c): lws refuses larger */
#define BLOCK_KEEP 4096     /* a block buffer larger than this is freed after its block */

enum { T_DATA = 0x0, T_HEADERS = 0x1, T_RST_STREAM = 0x3, T_CONTINUATION = 0x9 };
enum { F_END_STREAM = 0x1, F_END_HEADERS = 0x4, F_PADDED = 0x8, F_PRIORITY = 0x20 };

struct gw_h2tap {
	nghttp2_hd_inflater *inflater;
	size_t max_block;
	int failed;
	size_t preface;                /* bytes of the client preface passed */
	uint8_t head[9];               /* the frame header being gathered */
	size_t head_len;
	uint32_t len, sid;             /* the current frame */
	uint8_t type, flags;
	size_t got;                    /* of its payload, bytes passed */
	uint8_t pad;                   /* DATA, HEADERS: its pad length (PADDED) */
	uint8_t *block;                /* the header block being joined */
	size_t block_len, block_cap;
	uint32_t block_sid;            /* nonzero: a block is open, CONTINUATION must come next */
	struct gw_h2stream *block_stream;
	int block_end_stream;
	struct gw_h2stream *streams;   /* in stream order */
	size_t n_streams, n_changed, max_streams;
	uint32_t max_sid;              /* the highest stream the client opened */
};

static const char *const hdr_names[GW_H2H_COUNT] = {
	[GW_H2H_LAST_EVENT_ID] = "last-event-id",
	[GW_H2H_IDEMPOTENCY_KEY] = "idempotency-key",
	[GW_H2H_EXPECTED_OFFSET] = "litegate-expected-offset",
};

struct gw_h2tap *
gw_h2tap_new(size_t max_block, uint32_t table_size, size_t max_streams)
{
	struct gw_h2tap *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->max_block = max_block;
	t->max_streams = max_streams;
	if (nghttp2_hd_inflate_new(&t->inflater) ||
	    nghttp2_hd_inflate_change_table_size(t->inflater, table_size)) {
		gw_h2tap_free(t);
		return NULL;
	}
	return t;
}

static void
stream_free(struct gw_h2stream *s)
{
	for (int i = 0; i < GW_H2H_COUNT; i++)
		free(s->hdr[i]);
	free(s);
}

void
gw_h2tap_free(struct gw_h2tap *t)
{
	if (!t)
		return;
	while (t->streams) {
		struct gw_h2stream *s = t->streams;

		t->streams = s->next;
		stream_free(s);
	}
	if (t->inflater)
		nghttp2_hd_inflate_del(t->inflater);
	free(t->block);
	free(t);
}

static struct gw_h2stream *
find(struct gw_h2tap *t, uint32_t sid)
{
	for (struct gw_h2stream *s = t->streams; s; s = s->next)
		if (s->sid == sid)
			return s;
	return NULL;
}

/* A HEADERS frame on a stream id above every earlier one opens a stream (RFC 9113 5.1.1). */
static struct gw_h2stream *
open_stream(struct gw_h2tap *t, uint32_t sid)
{
	struct gw_h2stream *s, **tail;

	if (t->n_streams >= t->max_streams || !(s = calloc(1, sizeof(*s))))
		return NULL;
	s->sid = sid;
	for (tail = &t->streams; *tail; tail = &(*tail)->next)
		;
	*tail = s;
	t->n_streams++;
	t->max_sid = sid;
	return s;
}

static void
mark_changed(struct gw_h2tap *t, struct gw_h2stream *s)
{
	if (!s->changed) {
		s->changed = 1;
		t->n_changed++;
	}
}

static int
name_is(const nghttp2_nv *nv, const char *name)
{
	size_t n = strlen(name);

	return nv->namelen == n && !memcmp(nv->name, name, n);
}

/* The value, or "" when it is longer than GW_H2H_VALUE_MAX. */
static char *
copy_value(const nghttp2_nv *nv)
{
	size_t n = nv->valuelen <= GW_H2H_VALUE_MAX ? nv->valuelen : 0;
	char *v = malloc(n + 1);

	if (v) {
		memcpy(v, nv->value, n);
		v[n] = '\0';
	}
	return v;
}

/* One decoded header of a stream's first block. */
static int
record(struct gw_h2stream *s, const nghttp2_nv *nv)
{
	if (name_is(nv, ":method")) {
		size_t n = nv->valuelen < sizeof(s->method) - 1 ? nv->valuelen : sizeof(s->method) - 1;

		memcpy(s->method, nv->value, n);
		s->method[n] = '\0';
		return 0;
	}
	if (name_is(nv, "content-length")) {
		s->has_length = 1;
		return 0;
	}
	for (int i = 0; i < GW_H2H_COUNT; i++) {
		if (name_is(nv, hdr_names[i])) {
			if (!s->hdr[i]) {
				if (!(s->hdr[i] = copy_value(nv)))
					return -1;
				s->hdr_len[i] = nv->valuelen;
			}
			return 0;
		}
	}
	return 0;
}

/* The block is whole: decode it (always, to keep HPACK in step), keep what a new stream needs. */
static int
decode_block(struct gw_h2tap *t)
{
	struct gw_h2stream *s = t->block_stream;
	const uint8_t *in = t->block ? t->block : (const uint8_t *)""; /* an empty block has no buffer */
	size_t left = t->block_len;

	for (;;) {
		nghttp2_nv nv;
		int flags = 0;
		ssize_t n = nghttp2_hd_inflate_hd2(t->inflater, &nv, &flags, in, left, 1);

		if (n < 0)
			return -1;
		in += n;
		left -= (size_t)n;
		if ((flags & NGHTTP2_HD_INFLATE_EMIT) && s && !s->headers_done && record(s, &nv))
			return -1;
		if (flags & NGHTTP2_HD_INFLATE_FINAL) {
			nghttp2_hd_inflate_end_headers(t->inflater);
			break;
		}
		if (!(flags & NGHTTP2_HD_INFLATE_EMIT) && !left)
			return -1; /* not FINAL with all of it given: cut short */
	}
	if (s) {
		s->headers_done = 1;
		if (t->block_end_stream && !s->end_stream) {
			s->end_stream = 1;
			mark_changed(t, s);
		}
	}
	t->block_len = 0;
	t->block_sid = 0;
	t->block_stream = NULL;
	if (t->block_cap > BLOCK_KEEP) {
		free(t->block);
		t->block = NULL;
		t->block_cap = 0;
	}
	return 0;
}

static int
block_append(struct gw_h2tap *t, const uint8_t *p, size_t n)
{
	if (n > t->max_block - t->block_len)
		return -1;
	if (t->block_len + n > t->block_cap) {
		size_t cap = t->block_cap ? t->block_cap : 256;
		uint8_t *b;

		while (cap < t->block_len + n)
			cap *= 2;
		if (cap > t->max_block)
			cap = t->max_block;
		if (!(b = realloc(t->block, cap)))
			return -1;
		t->block = b;
		t->block_cap = cap;
	}
	memcpy(t->block + t->block_len, p, n);
	t->block_len += n;
	return 0;
}

/* The bytes of a HEADERS frame before its block fragment: pad length, priority. */
static size_t
headers_prefix(const struct gw_h2tap *t)
{
	return (t->flags & F_PADDED ? 1 : 0) + (t->flags & F_PRIORITY ? 5 : 0);
}

/* @p k payload bytes of a HEADERS or CONTINUATION frame, from offset t->got: keep the fragment. */
static int
block_bytes(struct gw_h2tap *t, const uint8_t *p, size_t k)
{
	size_t from = 0, to = t->len;

	if (t->type == T_HEADERS) {
		if ((t->flags & F_PADDED) && !t->got && k) {
			t->pad = p[0];
			if (headers_prefix(t) + t->pad > t->len)
				return -1;
		}
		from = headers_prefix(t);
		to = t->len - t->pad;
	}
	/* the part of [got, got + k) inside [from, to) */
	if (from < t->got)
		from = t->got;
	if (to > t->got + k)
		to = t->got + k;
	return from < to ? block_append(t, p + (from - t->got), to - from) : 0;
}

static int
body_method(const struct gw_h2stream *s)
{
	return !strcmp(s->method, "POST") || !strcmp(s->method, "PUT") || !strcmp(s->method, "PATCH");
}

/* The frame header is whole. */
static int
frame_start(struct gw_h2tap *t)
{
	struct gw_h2stream *s;

	t->len = (uint32_t)t->head[0] << 16 | (uint32_t)t->head[1] << 8 | t->head[2];
	t->type = t->head[3];
	t->flags = t->head[4];
	t->sid = ((uint32_t)t->head[5] << 24 | (uint32_t)t->head[6] << 16 | (uint32_t)t->head[7] << 8 |
		  t->head[8]) & 0x7fffffffu;
	t->got = 0;
	t->pad = 0;
	if (t->len > FRAME_MAX)
		return -1;
	if (t->block_sid && (t->type != T_CONTINUATION || t->sid != t->block_sid))
		return -1; /* a header block must not be interleaved (RFC 9113 6.10) */
	switch (t->type) {
	case T_HEADERS:
		if (!t->sid || t->len < headers_prefix(t))
			return -1;
		s = find(t, t->sid);
		if (!s && t->sid > t->max_sid && (t->sid & 1) && !(s = open_stream(t, t->sid)))
			return -1;
		t->block_sid = t->sid;
		t->block_stream = s;
		t->block_end_stream = t->flags & F_END_STREAM;
		break;
	case T_CONTINUATION:
		if (!t->block_sid)
			return -1;
		break;
	case T_DATA:
		/* lws 4.1.6 hands such a payload to its HTTP/1 reader in a state it asserts on; and it
		 * may pass a padded frame's padding on as body bytes, so a body without a length could
		 * not be told ended (its bytes would never add up). */
		s = find(t, t->sid);
		if (s && s->headers_done && !s->has_length &&
		    ((!body_method(s) && t->len > (t->flags & F_PADDED ? 1u : 0u)) ||
		     (t->flags & F_PADDED)))
			return -1;
		break;
	default:
		break;
	}
	return 0;
}

/* The frame's payload has all passed. */
static int
frame_end(struct gw_h2tap *t)
{
	struct gw_h2stream *s;

	switch (t->type) {
	case T_HEADERS:
	case T_CONTINUATION:
		return t->flags & F_END_HEADERS ? decode_block(t) : 0;
	case T_DATA:
		if ((t->flags & F_PADDED) && (!t->len || (size_t)t->pad + 1 > t->len))
			return -1;
		if ((s = find(t, t->sid))) {
			s->data_bytes += t->len - (t->flags & F_PADDED ? (size_t)t->pad + 1 : 0);
			if ((t->flags & F_END_STREAM) && !s->end_stream) {
				s->end_stream = 1;
				mark_changed(t, s);
			}
		}
		return 0;
	case T_RST_STREAM:
		if ((s = find(t, t->sid)) && !s->reset) {
			s->reset = 1;
			mark_changed(t, s);
		}
		return 0;
	default:
		return 0;
	}
}

int
gw_h2tap_feed(struct gw_h2tap *t, const uint8_t *p, size_t n)
{
	if (t->failed)
		return -1;
	while (n) {
		size_t k;

		if (t->preface < PREFACE_LEN) {
			if (*p != (uint8_t)PREFACE[t->preface])
				goto fail;
			t->preface++;
			p++;
			n--;
			continue;
		}
		if (t->head_len < sizeof(t->head)) {
			k = sizeof(t->head) - t->head_len;
			k = k < n ? k : n;
			memcpy(t->head + t->head_len, p, k);
			t->head_len += k;
			p += k;
			n -= k;
			if (t->head_len < sizeof(t->head))
				break;
			if (frame_start(t))
				goto fail;
		}
		k = t->len - t->got;
		k = k < n ? k : n;
		if ((t->type == T_HEADERS || t->type == T_CONTINUATION) && block_bytes(t, p, k))
			goto fail;
		else if (t->type == T_DATA && k && !t->got)
			t->pad = p[0];
		t->got += k;
		p += k;
		n -= k;
		if (t->got == t->len) {
			t->head_len = 0;
			if (frame_end(t))
				goto fail;
		}
	}
	return 0;
fail:
	t->failed = 1;
	return -1;
}

struct gw_h2stream *
gw_h2tap_next_opened(struct gw_h2tap *t)
{
	for (struct gw_h2stream *s = t->streams; s; s = s->next) {
		if (!s->taken) {
			s->taken = 1;
			return s;
		}
	}
	return NULL;
}

struct gw_h2stream *
gw_h2tap_next_changed(struct gw_h2tap *t)
{
	if (!t->n_changed)
		return NULL;
	for (struct gw_h2stream *s = t->streams; s; s = s->next) {
		if (s->changed) {
			s->changed = 0;
			t->n_changed--;
			return s;
		}
	}
	return NULL;
}

struct gw_h2stream *
gw_h2tap_streams(struct gw_h2tap *t)
{
	return t->streams;
}

int
gw_h2tap_has_changed(const struct gw_h2tap *t)
{
	return t->n_changed > 0;
}

void
gw_h2tap_forget(struct gw_h2tap *t, struct gw_h2stream *s)
{
	for (struct gw_h2stream **pp = &t->streams; *pp; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	}
	if (s->changed)
		t->n_changed--;
	if (t->block_stream == s)
		t->block_stream = NULL;
	t->n_streams--;
	stream_free(s);
}
