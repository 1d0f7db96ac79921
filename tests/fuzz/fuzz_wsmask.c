/*
 * fuzz_wsmask.c - libFuzzer target for the WebSocket frame-boundary follower (gateway/wsmask.c):
 * the bytes a client sends after its upgrade.
 *
 * Input: a client's byte stream. Invariants checked:
 *  - the result equals a plain reference walk over the whole stream (header by header, payloads
 *    skipped by their declared length): the offset of the first unmasked frame's second header
 *    byte, or the whole length when every frame is masked;
 *  - the result does not depend on how the stream is cut into reads: one feed, two feeds split at
 *    a point derived from the input, and one byte per feed all agree;
 *  - once a frame was found unmasked, every later feed returns 0.
 */
#include "fuzz.h"
#include "wsmask.h"

/* The first unmasked frame's second header byte, or @p len: an independent, non-incremental walk. */
static size_t
reference(const uint8_t *p, size_t len)
{
	size_t i = 0;

	while (i + 1 < len) {
		uint8_t len7 = p[i + 1] & 0x7f;
		uint64_t n = len7;
		size_t h = 2, ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;

		if (!(p[i + 1] & 0x80))
			return i + 1;
		if (ext) {
			if (i + 2 + ext > len)
				return len;
			n = 0;
			for (size_t k = 0; k < ext; k++)
				n = (n << 8) | p[i + 2 + k];
		}
		h += ext + 4;
		if (n >= len || i + h + n >= len) /* past the end: no further frame to see */
			return len;
		i += h + (size_t)n;
	}
	return len;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gw_wsmask t;
	size_t whole, got, cut, ref = reference(data, size);

	gw_wsmask_init(&t);
	whole = gw_wsmask_feed(&t, data, size);
	FUZZ_CHECK(whole == ref);
	if (whole < size) {
		FUZZ_CHECK(t.unmasked);
		FUZZ_CHECK(gw_wsmask_feed(&t, data, size) == 0);
	}
	/* Two reads, cut where the input says. */
	cut = size ? (size_t)(fuzz_mix(size * 31 + data[0]) % (size + 1)) : 0;
	gw_wsmask_init(&t);
	got = gw_wsmask_feed(&t, data, cut);
	if (got == cut)
		got += gw_wsmask_feed(&t, data + cut, size - cut);
	FUZZ_CHECK(got == whole);
	/* One byte per read. */
	gw_wsmask_init(&t);
	got = 0;
	for (size_t i = 0; i < size; i++) {
		size_t n = gw_wsmask_feed(&t, data + i, 1);

		got += n;
		if (!n)
			break;
	}
	FUZZ_CHECK(got == whole);
	return 0;
}
