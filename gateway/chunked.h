/*
 * chunked.h - a strict, incremental decoder of HTTP/1.1 chunked request bodies (RFC 9112 7.1).
 *
 * Pure code over (buf, len): no lws, no I/O, so a libFuzzer target can drive it. Used by the
 * service thread for publish bodies, because libwebsockets 4.1.6 hands the raw chunk framing to
 * LWS_CALLBACK_HTTP_BODY and never reports the end of a chunked body.
 *
 * Strict means: hex sizes only (no sign, no spaces, at most 16 digits and at most max_chunk), CRLF
 * everywhere (a bare LF is an error), chunk extensions and trailer lines limited in length and made of
 * visible characters, spaces and tabs. The decoder stops at the end of the trailer section and
 * reports how many input bytes it consumed, so bytes after the body are never taken as body.
 */
#ifndef GW_CHUNKED_H
#define GW_CHUNKED_H

#include <stddef.h>
#include <stdint.h>

enum {
	GW_CHUNKED_MORE = 0,   /* need more input */
	GW_CHUNKED_DONE = 1,   /* the last chunk and the trailers were read: the body has ended */
	GW_CHUNKED_ERROR = -1, /* malformed framing or a limit passed: see c->err */
	GW_CHUNKED_ABORT = -2, /* the output callback returned non-zero */
};

#define GW_CHUNKED_LINE_MAX 256        /* a size line with its extensions, or one trailer line */
#define GW_CHUNKED_TRAILERS_MAX 8192   /* all trailer lines together */

/* Receives decoded body bytes; @p p points into the caller's input. Non-zero stops decoding. */
typedef int (*gw_chunked_out_fn)(void *ctx, const char *p, size_t n);

struct gw_chunked {
	int state;          /* position in the grammar (chunked.c) */
	uint64_t size;      /* chunk size being parsed, then bytes of chunk data still to come */
	unsigned digits;    /* hex digits seen in the size */
	size_t line;        /* bytes seen in the current size/extension or trailer line */
	size_t trailers;    /* trailer bytes seen so far */
	uint64_t max_chunk; /* largest accepted chunk size */
	uint64_t total;     /* decoded body bytes so far */
	const char *err;    /* static description after GW_CHUNKED_ERROR */
};

/** @brief Start decoding a new body. @p max_chunk bounds one chunk's declared size. */
void gw_chunked_init(struct gw_chunked *c, uint64_t max_chunk);

/**
 * @brief Decode @p len bytes of framing.
 * @param[out] used input bytes consumed (all of them unless DONE, ERROR or ABORT came first).
 * @return GW_CHUNKED_MORE, GW_CHUNKED_DONE, GW_CHUNKED_ERROR or GW_CHUNKED_ABORT. After DONE or
 *         ERROR, further calls return the same result and consume nothing.
 */
int gw_chunked_feed(struct gw_chunked *c, const char *in, size_t len, size_t *used,
		    gw_chunked_out_fn out, void *ctx);

#endif /* GW_CHUNKED_H */
