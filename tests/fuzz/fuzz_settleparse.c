/*
 * fuzz_settleparse.c - libFuzzer target for the fast path of ack and nack bodies
 * (gateway/settleparse.c), checked against jansson, which reads every body the fast path declines.
 *
 * Input: a byte m (the receipt limit: m, or 10000 when m is 255), then the body. Invariants checked:
 *  - a body the fast path recognises (n receipts) is one jansson accepts (JSON_REJECT_DUPLICATES, as
 *    consume.c loads it) as an object whose only member is "receipts", an array of n strings, 1 <= n
 *    <= the limit, each equal byte for byte to the span the fast path gave (so the settle code sees
 *    the same receipts either way, and the checks jansson's path makes would accept the body);
 *  - every span lies inside the body;
 *  - a declined body leaves the output buffer as it was.
 */
#include <jansson.h>

#include "fuzz.h"
#include "settleparse.h"

static void
check_against_jansson(const char *body, size_t len, size_t max, const struct gw_span *s, size_t n)
{
	json_error_t jerr;
	json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr), *arr;

	FUZZ_CHECK(root != NULL);
	FUZZ_CHECK(json_is_object(root));
	FUZZ_CHECK(json_object_size(root) == 1);
	arr = json_object_get(root, "receipts");
	FUZZ_CHECK(json_is_array(arr));
	FUZZ_CHECK(json_array_size(arr) == n);
	FUZZ_CHECK(n >= 1 && n <= max);
	for (size_t i = 0; i < n; i++) {
		json_t *v = json_array_get(arr, i);

		FUZZ_CHECK(json_is_string(v));
		FUZZ_CHECK(json_string_length(v) == s[i].len);
		FUZZ_CHECK(fuzz_mem_eq(json_string_value(v), s[i].p, s[i].len));
		FUZZ_CHECK(s[i].p >= body && s[i].p + s[i].len <= body + len);
	}
	json_decref(root);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct gw_span before = { "x", 1 };
	struct gw_buf out;
	const char *body;
	size_t len, max, n;

	if (size < 1)
		return 0;
	max = data[0] == 255 ? 10000 : data[0];
	body = (const char *)data + 1;
	len = size - 1;
	gw_buf_init(&out, 0);
	gw_buf_append(&out, &before, sizeof(before));
	n = gw_settle_scan(body, len, max, &out);
	FUZZ_CHECK(out.len == (n + 1) * sizeof(struct gw_span));
	if (n)
		check_against_jansson(body, len, max, (const struct gw_span *)gw_buf_data(&out) + 1, n);
	gw_buf_free(&out);
	return 0;
}
