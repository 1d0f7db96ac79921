/*
 * h2tap.h - what libwebsockets 4.1.6 loses of a client's HTTP/2 requests, read from the client's
 * side of the connection (the bytes lws reads after TLS, conn_tls.c).
 *
 * lws 4.1.6 keeps only the request headers it has a token for, so an h2 stream loses
 * Last-Event-ID, Idempotency-Key and Litegate-Expected-Offset; it does not report the END_STREAM
 * that ends a body sent without Content-Length; it does not close a stream the client reset; and a
 * DATA frame on a GET-like stream without Content-Length makes it abort (assert in lws_read_h1).
 * The tap follows the client's frames (RFC 9113 4.1) byte for byte, decodes every header block with
 * nghttp2's HPACK decoder (so the decoding state stays in step with lws's), and keeps, per stream,
 * those headers and what it saw of the body. It only reads: lws gets the bytes unchanged.
 *
 * Pure code over (buf, len): no lws, no sockets; fuzzed (tests/fuzz/fuzz_h2tap.c). One tap per
 * connection, used by one thread.
 */
#ifndef GW_H2TAP_H
#define GW_H2TAP_H

#include <stddef.h>
#include <stdint.h>

/* The request headers lws drops on h2 that the gateway reads. */
enum gw_h2hdr {
	GW_H2H_LAST_EVENT_ID,
	GW_H2H_IDEMPOTENCY_KEY,
	GW_H2H_EXPECTED_OFFSET,
	GW_H2H_COUNT
};

/* The longest header value kept. A longer one keeps only its length (hdr_len), which is all its
 * readers need to refuse it: they read into buffers of at most this plus one. Without a cap, one
 * large value put in the HPACK table once could be copied for every stream (one byte each). */
#define GW_H2H_VALUE_MAX 255

/* One client stream, from its first HEADERS frame until gw_h2tap_forget(). */
struct gw_h2stream {
	struct gw_h2stream *next;     /* the tap's list, in stream order */
	uint32_t sid;
	void *user;                   /* the caller's (the gateway maps it to lws's stream wsi) */
	char *hdr[GW_H2H_COUNT];      /* the first value of each, NUL-terminated (empty when longer
	                                 than GW_H2H_VALUE_MAX); NULL: absent */
	size_t hdr_len[GW_H2H_COUNT]; /* its true length */
	char method[8];               /* :method, cut at 7 bytes */
	uint64_t data_bytes;          /* DATA payload so far, padding excluded */
	unsigned headers_done : 1;    /* the first header block is decoded: hdr[] and method are final */
	unsigned has_length : 1;      /* a content-length header came */
	unsigned end_stream : 1;      /* the client ended its side (END_STREAM on HEADERS or DATA) */
	unsigned reset : 1;           /* the client sent RST_STREAM */
	unsigned changed : 1;         /* end_stream or reset was set since gw_h2tap_next_changed() */
	unsigned taken : 1;           /* returned by gw_h2tap_next_opened() */
};

struct gw_h2tap;

/**
 * @brief A tap for one connection. @p max_block bounds one header block (compressed, all its
 *        frames), @p table_size is the SETTINGS_HEADER_TABLE_SIZE the server announced (the
 *        largest HPACK table the client may use), @p max_streams the streams it follows at once
 *        (more fails the connection: lws refuses past its own limit anyway). NULL when out of
 *        memory.
 */
struct gw_h2tap *gw_h2tap_new(size_t max_block, uint32_t table_size, size_t max_streams);
void gw_h2tap_free(struct gw_h2tap *t);

/**
 * @brief Follow @p len more bytes the client sent, from its connection preface on.
 * @return 0, or -1 when the connection must end before lws reads these bytes: a header block that
 *         cannot be followed (over @p max_block, undecodable, a frame out of order), which would
 *         leave the decoding state behind the client's, more streams than max_streams, or a DATA
 *         frame lws 4.1.6 mishandles: payload on a stream whose method is not POST, PUT or PATCH
 *         and that has no content-length (lws aborts), or padding on a stream without
 *         content-length (lws may hand the padding over as body bytes, and the body's end could
 *         not be told). After -1 the tap stays failed.
 */
int gw_h2tap_feed(struct gw_h2tap *t, const uint8_t *buf, size_t len);

/** @brief The next stream the client opened, in the order it opened them (the order lws creates
 *  its stream wsis in), each once; NULL when there is none. */
struct gw_h2stream *gw_h2tap_next_opened(struct gw_h2tap *t);

/** @brief A stream whose end_stream or reset was set since the last call (and clears its
 *  `changed`); NULL when none. */
struct gw_h2stream *gw_h2tap_next_changed(struct gw_h2tap *t);

/** @brief Whether any stream is `changed`: gw_h2tap_feed() set end_stream or reset. */
int gw_h2tap_has_changed(const struct gw_h2tap *t);

/** @brief Every stream not forgotten, in stream order (follow `next`). */
struct gw_h2stream *gw_h2tap_streams(struct gw_h2tap *t);

/** @brief Drop @p s (its wsi is gone). */
void gw_h2tap_forget(struct gw_h2tap *t, struct gw_h2stream *s);

#endif /* GW_H2TAP_H */
