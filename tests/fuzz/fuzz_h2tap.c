/*
 * fuzz_h2tap.c - libFuzzer target for the HTTP/2 frame tap (gateway/h2tap.c): the bytes a client
 * sends on an h2 connection, from its preface on (the corpus starts with the preface, so the
 * fuzzer gets past it).
 *
 * Invariants checked:
 *  - no crash, leak or sanitizer report on any input;
 *  - the outcome does not depend on how the stream is cut into reads: one feed, two feeds split at
 *    a point derived from the input, and one byte per feed agree on success or failure and on every
 *    stream's recorded state (id, method, the kept headers, body bytes, end and reset);
 *  - after a failure, every later feed fails.
 */
#include "fuzz.h"
#include "h2tap.h"

/* A digest of everything the tap recorded, to compare runs. */
static uint64_t
digest(struct gw_h2tap *t, int rc)
{
	uint64_t h = fuzz_mix((uint64_t)(rc + 2));
	struct gw_h2stream *s;

	while ((s = gw_h2tap_next_opened(t))) {
		h = fuzz_mix(h ^ s->sid) ^ s->data_bytes;
		h = fuzz_mix(h ^ (uint64_t)(s->end_stream | s->reset << 1 | s->headers_done << 2 |
					    s->has_length << 3));
		for (const char *p = s->method; *p; p++)
			h = fuzz_mix(h ^ (uint8_t)*p);
		for (int i = 0; i < GW_H2H_COUNT; i++) {
			FUZZ_CHECK(!s->hdr[i] || strlen(s->hdr[i]) <= s->hdr_len[i]);
			FUZZ_CHECK(!s->hdr[i] || strlen(s->hdr[i]) <= GW_H2H_VALUE_MAX);
			for (size_t k = 0; s->hdr[i] && s->hdr[i][k]; k++)
				h = fuzz_mix(h ^ (uint8_t)s->hdr[i][k] ^ (uint64_t)i << 9);
		}
	}
	while ((s = gw_h2tap_next_changed(t)))
		h = fuzz_mix(h ^ s->sid ^ 0x5555);
	return h;
}

static uint64_t
run(const uint8_t *data, size_t size, size_t piece)
{
	struct gw_h2tap *t = gw_h2tap_new(4096, 65536, 256);
	uint64_t d;
	int rc = 0;

	FUZZ_CHECK(t);
	for (size_t i = 0; i < size && !rc; i += piece)
		rc = gw_h2tap_feed(t, data + i, size - i < piece ? size - i : piece);
	if (rc)
		FUZZ_CHECK(gw_h2tap_feed(t, (const uint8_t *)"\0", 1) == -1);
	d = digest(t, rc);
	gw_h2tap_free(t);
	return d;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t whole = run(data, size, size ? size : 1);
	size_t cut = size ? (size_t)(fuzz_mix(size * 31 + data[size / 2]) % size) + 1 : 1;

	FUZZ_CHECK(run(data, size, cut) == whole);
	FUZZ_CHECK(run(data, size, 1) == whole);
	return 0;
}
