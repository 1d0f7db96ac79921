/*
 * buf_test.c - unit tests of gateway/buf.c's number formatting, which replaces printf on the hot
 * paths (SSE ids, offsets, pop receipts): it must write what printf would.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"

static void
check_x64(uint64_t v, unsigned min_digits)
{
	char want[40];
	struct gw_buf b;

	snprintf(want, sizeof(want), "<%0*llx>", (int)min_digits, (unsigned long long)v);
	gw_buf_init(&b, 16); /* with headroom, as replies have */
	gw_buf_putc(&b, '<');
	gw_buf_x64(&b, v, min_digits);
	gw_buf_putc(&b, '>');
	assert_int_equal(b.len, strlen(want));
	assert_memory_equal(gw_buf_data(&b), want, b.len);
	gw_buf_free(&b);
}

static void
check_u64(uint64_t v)
{
	char want[40];
	struct gw_buf b;

	snprintf(want, sizeof(want), "%llu", (unsigned long long)v);
	gw_buf_init(&b, 0);
	gw_buf_u64(&b, v);
	assert_int_equal(b.len, strlen(want));
	assert_memory_equal(gw_buf_data(&b), want, b.len);
	gw_buf_free(&b);
}

static void
hex_as_printf_writes_it(void **state)
{
	static const uint64_t values[] = { 0, 1, 9, 10, 15, 16, 0xff, 0x100, 0x0123456789abcdefull,
					   0xfedcba9876543210ull, UINT64_MAX, 1ull << 60, 0xfull << 60 };

	(void)state;
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		check_x64(values[i], 1);  /* a receipt's nonce: %llx */
		check_x64(values[i], 16); /* its MAC: %016llx */
		check_x64(values[i], 5);
	}
}

static void
decimal_as_printf_writes_it(void **state)
{
	static const uint64_t values[] = { 0, 1, 9, 10, 99, 100, 1732570000123ull, UINT32_MAX,
					   UINT64_MAX };

	(void)state;
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++)
		check_u64(values[i]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(hex_as_printf_writes_it),
		cmocka_unit_test(decimal_as_printf_writes_it),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
