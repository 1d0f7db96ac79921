/*
 * fuzz_chunked.c - libFuzzer target for the chunked request body decoder (gateway/chunked.c).
 *
 * Input: one flags byte, one limit byte, then the body. Two modes:
 *  - decode (flags bit 0 clear): the body is raw framing. It is decoded in one call, again split at
 *    three points derived from the input, and again one byte per call; the three runs must agree on
 *    the result, the bytes consumed, the error and every decoded byte (streaming state is the whole
 *    point of an incremental decoder). Decoded bytes never exceed the input consumed; ERROR
 *    stops on the offending byte; DONE ends on the final CRLF; after DONE or ERROR a call
 *    consumes nothing.
 *    A callback that aborts on its k-th call leaves a state from which feeding the rest finishes
 *    exactly like the run that never aborted.
 *  - round trip (bit 0 set): the body is payload. It is framed with chunk sizes, hex case, leading
 *    zeros, extensions and trailers derived from the input, followed by bytes of a next request; it
 *    must decode to the payload exactly, consume the framing and not one byte more, and a limit one
 *    below the largest chunk must refuse it.
 */
#include <string.h>

#include "buf.h"
#include "chunked.h"
#include "fuzz.h"

/* Collects decoded bytes; optionally aborts on the k-th call (1-based; 0 = never). */
struct sink {
	struct gw_buf out;
	unsigned calls, abort_at;
};

static int
on_out(void *ctx, const char *p, size_t n)
{
	struct sink *s = ctx;

	gw_buf_append(&s->out, p, n);
	return ++s->calls == s->abort_at;
}

struct run {
	int rc;
	size_t used; /* input bytes consumed in all */
	const char *err;
	uint64_t total;
};

/* Feed in[0..len) in pieces ending at the given cut points (ascending, <= len). */
static struct run
feed(const char *in, size_t len, uint64_t max_chunk, const size_t *cuts, size_t ncuts,
     struct sink *s)
{
	struct gw_chunked c;
	struct run r = { GW_CHUNKED_MORE, 0, NULL, 0 };
	size_t at = 0;

	gw_chunked_init(&c, max_chunk);
	for (size_t k = 0; k <= ncuts && r.rc == GW_CHUNKED_MORE; k++) {
		size_t end = k < ncuts ? cuts[k] : len, used = (size_t)-1;

		if (end < at)
			continue;
		r.rc = gw_chunked_feed(&c, in + at, end - at, &used, on_out, s);
		FUZZ_CHECK(used <= end - at);
		FUZZ_CHECK(r.rc != GW_CHUNKED_MORE || used == end - at);
		r.used += used;
		at += used;
	}
	r.err = c.err;
	r.total = c.total;
	FUZZ_CHECK(r.rc >= GW_CHUNKED_ABORT && r.rc <= GW_CHUNKED_DONE);
	FUZZ_CHECK(r.total == s->out.len);
	FUZZ_CHECK(r.total <= r.used && r.used <= len);
	FUZZ_CHECK((r.rc == GW_CHUNKED_ERROR) == (r.err != NULL));
	if (r.rc == GW_CHUNKED_ERROR)
		FUZZ_CHECK(r.used < len); /* the offending byte is not consumed */
	if (r.rc == GW_CHUNKED_DONE)
		FUZZ_CHECK(r.used >= 5 && !memcmp(in + r.used - 2, "\r\n", 2)); /* "0\r\n\r\n" */
	if (r.rc == GW_CHUNKED_DONE || r.rc == GW_CHUNKED_ERROR) {
		/* Terminal: another call changes nothing, even with more input. */
		size_t used = 1;
		int again = gw_chunked_feed(&c, in, len, &used, on_out, s);

		FUZZ_CHECK(again == r.rc && used == 0 && c.total == r.total);
	}
	return r;
}

static void
same(const struct run *a, const struct sink *sa, const struct run *b, const struct sink *sb)
{
	FUZZ_CHECK(a->rc == b->rc);
	FUZZ_CHECK(a->used == b->used);
	FUZZ_CHECK(a->total == b->total);
	FUZZ_CHECK((a->err == NULL) == (b->err == NULL) && (!a->err || !strcmp(a->err, b->err)));
	FUZZ_CHECK(sa->out.len == sb->out.len &&
		   fuzz_mem_eq(gw_buf_data(&sa->out), gw_buf_data(&sb->out), sa->out.len));
}

static const uint64_t limits[] = { 0, 1, 15, 16, 255, 4096, 1u << 20, UINT64_MAX };

static void
decode_mode(const char *in, size_t len, uint8_t flags, uint64_t max_chunk, uint64_t h)
{
	struct sink whole = { 0 }, split = { 0 }, bytes = { 0 };
	struct run rw, rs, rb;
	size_t cuts[3];

	gw_buf_init(&whole.out, 0);
	gw_buf_init(&split.out, 0);
	gw_buf_init(&bytes.out, 0);
	rw = feed(in, len, max_chunk, NULL, 0, &whole);
	FUZZ_CHECK(rw.rc != GW_CHUNKED_ABORT);

	for (size_t k = 0; k < 3; k++)
		cuts[k] = len ? (size_t)(fuzz_mix(h + k) % (len + 1)) : 0;
	/* ascending */
	for (size_t i = 0; i < 3; i++)
		for (size_t j = i + 1; j < 3; j++)
			if (cuts[j] < cuts[i]) {
				size_t t = cuts[i];
				cuts[i] = cuts[j];
				cuts[j] = t;
			}
	rs = feed(in, len, max_chunk, cuts, 3, &split);
	same(&rw, &whole, &rs, &split);

	if (len <= 4096) {
		size_t *every = malloc((len ? len : 1) * sizeof(size_t));

		for (size_t i = 0; i < len; i++)
			every[i] = i + 1;
		rb = feed(in, len, max_chunk, every, len, &bytes);
		same(&rw, &whole, &rb, &bytes);
		free(every);
	}

	/* Abort on the k-th output call, then resume with the rest of the input. */
	if (whole.calls) {
		struct sink ab = { 0 };
		struct gw_chunked c;
		size_t used = 0, used2 = 0;
		int rc;

		gw_buf_init(&ab.out, 0);
		ab.abort_at = 1 + (unsigned)((flags >> 1) % whole.calls);
		gw_chunked_init(&c, max_chunk);
		rc = gw_chunked_feed(&c, in, len, &used, on_out, &ab);
		FUZZ_CHECK(rc == GW_CHUNKED_ABORT);
		FUZZ_CHECK(c.total == ab.out.len && used <= len);
		FUZZ_CHECK(ab.out.len <= whole.out.len &&
			   fuzz_mem_eq(gw_buf_data(&ab.out), gw_buf_data(&whole.out), ab.out.len));
		ab.abort_at = 0;
		rc = gw_chunked_feed(&c, in + used, len - used, &used2, on_out, &ab);
		FUZZ_CHECK(rc == rw.rc && used + used2 == rw.used && c.total == rw.total);
		FUZZ_CHECK(ab.out.len == whole.out.len &&
			   fuzz_mem_eq(gw_buf_data(&ab.out), gw_buf_data(&whole.out), ab.out.len));
		gw_buf_free(&ab.out);
	}
	gw_buf_free(&whole.out);
	gw_buf_free(&split.out);
	gw_buf_free(&bytes.out);
}

static void
roundtrip_mode(const char *payload, size_t plen, uint64_t h)
{
	static const char hexl[] = "0123456789abcdef", hexu[] = "0123456789ABCDEF";
	struct gw_buf enc;
	struct sink s = { 0 }, s2 = { 0 }, s3 = { 0 };
	struct run r;
	uint64_t biggest = 0;
	size_t at = 0, framed, cuts[2];
	unsigned step = 0;

	gw_buf_init(&enc, 0);
	while (at < plen) {
		uint64_t x = fuzz_mix(h + step++);
		size_t n = 1 + (size_t)(x % 300), zeros = (x >> 16) % 8, nd = 0;
		const char *hex = (x >> 20) & 1 ? hexu : hexl;
		char digits[16];

		if (n > plen - at)
			n = plen - at;
		if (n > biggest)
			biggest = n;
		for (size_t v = n; v; v >>= 4)
			digits[nd++] = hex[v & 15];
		for (size_t z = 0; z < zeros; z++)
			gw_buf_putc(&enc, '0');
		while (nd)
			gw_buf_putc(&enc, digits[--nd]);
		if ((x >> 24) & 1)
			gw_buf_puts(&enc, ";name=\"va lue\"\t;x");
		gw_buf_puts(&enc, "\r\n");
		gw_buf_append(&enc, payload + at, n);
		gw_buf_puts(&enc, "\r\n");
		at += n;
	}
	gw_buf_puts(&enc, (h >> 8) & 1 ? "000;last\r\n" : "0\r\n");
	if ((h >> 9) & 1)
		gw_buf_puts(&enc, "Trailer-A: 1\r\nX-Checksum: abc def\r\n");
	gw_buf_puts(&enc, "\r\n");
	framed = enc.len;
	gw_buf_puts(&enc, "GET / HTTP/1.1\r\n\r\n"); /* the next request: must not be eaten */

	gw_buf_init(&s.out, 0);
	r = feed((const char *)gw_buf_data(&enc), enc.len, biggest, NULL, 0, &s);
	FUZZ_CHECK(r.rc == GW_CHUNKED_DONE);
	FUZZ_CHECK(r.used == framed);
	FUZZ_CHECK(s.out.len == plen && fuzz_mem_eq(gw_buf_data(&s.out), payload, plen));

	cuts[0] = (size_t)(fuzz_mix(h ^ 0x55) % (enc.len + 1));
	cuts[1] = cuts[0] + (size_t)(fuzz_mix(h ^ 0xaa) % (enc.len - cuts[0] + 1));
	gw_buf_init(&s2.out, 0);
	r = feed((const char *)gw_buf_data(&enc), enc.len, UINT64_MAX, cuts, 2, &s2);
	FUZZ_CHECK(r.rc == GW_CHUNKED_DONE && r.used == framed && s2.out.len == plen &&
		   fuzz_mem_eq(gw_buf_data(&s2.out), payload, plen));

	if (biggest) {
		gw_buf_init(&s3.out, 0);
		r = feed((const char *)gw_buf_data(&enc), enc.len, biggest - 1, NULL, 0, &s3);
		FUZZ_CHECK(r.rc == GW_CHUNKED_ERROR && strstr(r.err, "limit"));
		gw_buf_free(&s3.out);
	}
	gw_buf_free(&s.out);
	gw_buf_free(&s2.out);
	gw_buf_free(&enc);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t h;

	if (size < 2)
		return 0;
	h = fuzz_hash(data, size);
	if (data[0] & 1)
		roundtrip_mode((const char *)data + 2, size - 2, h);
	else
		decode_mode((const char *)data + 2, size - 2, data[0], limits[data[1] & 7], h);
	return 0;
}
