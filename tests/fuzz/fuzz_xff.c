/*
 * fuzz_xff.c - libFuzzer target for client addresses behind trusted proxies (gateway/xff.c): the
 * X-Forwarded-For value a client or proxy sends, and the addresses and blocks of the config.
 *
 * Input: a byte n, then n bytes of a CIDR block (the trusted proxies), then an X-Forwarded-For
 * value. Invariants checked:
 *  - an address that parses formats to text that parses back to the same 16 bytes;
 *  - a block that parses has a prefix of at most 128 bits, no bits set past it, and contains its
 *    own address;
 *  - a chosen client is the address of one of the value's entries, and is untrusted unless every
 *    entry from it rightwards is trusted;
 *  - with no trusted block, the client is the rightmost entry when that one parses.
 */
#include "fuzz.h"
#include "xff.h"

static void
check_round_trip(const uint8_t a[16])
{
	char text[GW_ADDR_TEXT_MAX];
	uint8_t b[16];

	gw_addr_format(a, text, sizeof(text));
	FUZZ_CHECK(gw_addr_parse(text, strlen(text), b) == 0);
	FUZZ_CHECK(!memcmp(a, b, 16));
}

/* Is @p a the address of one comma-separated entry of @p v? */
static int
is_entry(const char *v, size_t len, const uint8_t a[16])
{
	size_t start = 0;

	while (start <= len) {
		const char *comma = memchr(v + start, ',', len - start);
		size_t end = comma ? (size_t)(comma - v) : len;
		uint8_t e[16];

		if (!gw_addr_parse(v + start, end - start, e) && !memcmp(e, a, 16))
			return 1;
		start = end + 1;
	}
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gw_cidr block;
	const char *cidr, *v;
	size_t cidr_len, len, n_trusted = 0;
	uint8_t a[16];

	if (size < 1 || (size_t)data[0] > size - 1)
		return 0;
	cidr = (const char *)data + 1;
	cidr_len = data[0];
	v = cidr + cidr_len;
	len = size - 1 - cidr_len;

	if (!gw_addr_parse(cidr, cidr_len, a))
		check_round_trip(a);
	if (!gw_cidr_parse(cidr, cidr_len, &block)) {
		FUZZ_CHECK(block.bits <= 128);
		for (unsigned b = block.bits; b < 128; b++)
			FUZZ_CHECK(!(block.addr[b / 8] & (0x80u >> (b % 8))));
		FUZZ_CHECK(gw_cidr_match(&block, 1, block.addr));
		n_trusted = 1;
	}
	if (!gw_addr_parse(v, len, a))
		check_round_trip(a);
	if (gw_xff_client(v, len, &block, n_trusted, a)) {
		FUZZ_CHECK(is_entry(v, len, a));
		check_round_trip(a);
	}
	if (gw_xff_client(v, len, NULL, 0, a)) {
		const char *last = v + len;
		uint8_t r[16];

		while (last > v && last[-1] != ',')
			last--;
		FUZZ_CHECK(!gw_addr_parse(last, len - (size_t)(last - v), r) && !memcmp(r, a, 16));
	}
	return 0;
}
