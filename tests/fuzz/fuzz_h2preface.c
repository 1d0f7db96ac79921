/*
 * fuzz_h2preface.c - libFuzzer target for the rewrite of the server's HTTP/2 preface
 * (gateway/h2preface.c): the bytes of one SSL_write() on an h2 connection (gateway/h2settings.c).
 *
 * Input: the bytes written. Invariants checked:
 *  - gw_h2_preface_scan() and gw_h2_preface_no_connect() agree, and both match an independent
 *    reading of the frame header: -1 exactly when the input does not start with a whole SETTINGS
 *    frame without ACK on stream 0 whose payload is whole 6-byte parameters;
 *  - -1 leaves every byte as it was; otherwise only value bytes of SETTINGS_ENABLE_CONNECT_PROTOCOL
 *    parameters of that first frame change, they are all 0 afterwards, and the count returned is
 *    the number of such parameters whose value was not 0 (so nothing past the frame, no id and no
 *    other parameter ever changes, and the length stays);
 *  - a second pass changes nothing and returns 0;
 *  - a cut inside the frame (at an input-derived point) is never patched.
 */
#include "fuzz.h"
#include "h2preface.h"

/* The payload length of the frame at the start by the rules of h2preface.h, or -1. */
static long
reference_payload(const uint8_t *p, size_t len)
{
	uint32_t n, sid;

	if (len < 9)
		return -1;
	n = (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
	sid = ((uint32_t)p[5] << 24 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 8 | p[8]) & 0x7fffffffu;
	if (p[3] != 4 || (p[4] & 1) || sid || n % 6 || 9 + (size_t)n > len)
		return -1;
	return (long)n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy = malloc(size ? size : 1);
	long n = reference_payload(data, size);
	int scan = gw_h2_preface_scan(data, size), r, want = 0;

	FUZZ_CHECK(copy);
	if (size)
		memcpy(copy, data, size);
	r = gw_h2_preface_no_connect(copy, size);
	FUZZ_CHECK(r == scan);
	FUZZ_CHECK((r < 0) == (n < 0));
	if (r < 0) {
		FUZZ_CHECK(fuzz_mem_eq(copy, data, size));
		free(copy);
		return 0;
	}
	for (size_t i = 0; i < size; i++) {
		size_t k = i >= 9 && i < 9 + (size_t)n ? (i - 9) % 6 : 0;
		int is_value = i >= 9 && i < 9 + (size_t)n && k >= 2;
		const uint8_t *param = data + i - k;
		int connect = is_value && (param[0] << 8 | param[1]) == 0x8;

		if (connect)
			FUZZ_CHECK(copy[i] == 0);
		else
			FUZZ_CHECK(copy[i] == data[i]);
		if (connect && k == 2 && (param[2] | param[3] | param[4] | param[5]))
			want++;
	}
	FUZZ_CHECK(r == want);
	FUZZ_CHECK(gw_h2_preface_no_connect(copy, size) == 0);
	FUZZ_CHECK(gw_h2_preface_scan(copy, size) == 0);
	/* Cut inside the frame: not whole, so not patched. */
	{
		size_t cut = (size_t)(fuzz_mix(fuzz_hash(data, size)) % (9 + (size_t)n));

		memcpy(copy, data, cut);
		FUZZ_CHECK(gw_h2_preface_no_connect(copy, cut) == -1);
		FUZZ_CHECK(fuzz_mem_eq(copy, data, cut));
	}
	free(copy);
	return 0;
}
