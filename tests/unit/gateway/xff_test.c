/*
 * xff_test.c - unit tests of gateway/xff.c: addresses as proxies write them, CIDR blocks, and the
 * choice of the client in an X-Forwarded-For list behind trusted proxies.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "xff.h"

static const char *
fmt(const uint8_t a[16])
{
	static char text[GW_ADDR_TEXT_MAX];

	gw_addr_format(a, text, sizeof(text));
	return text;
}

static const char *
parse_fmt(const char *s)
{
	uint8_t a[16];

	if (gw_addr_parse(s, strlen(s), a))
		return "-";
	return fmt(a);
}

static void
addresses_in_the_forms_proxies_write(void **state)
{
	(void)state;
	assert_string_equal(parse_fmt("203.0.113.7"), "203.0.113.7");
	assert_string_equal(parse_fmt("  203.0.113.7\t"), "203.0.113.7");
	assert_string_equal(parse_fmt("203.0.113.7:51234"), "203.0.113.7");
	assert_string_equal(parse_fmt("2001:db8::1"), "2001:db8::1");
	assert_string_equal(parse_fmt("[2001:db8::1]"), "2001:db8::1");
	assert_string_equal(parse_fmt("[2001:db8::1]:443"), "2001:db8::1");
	assert_string_equal(parse_fmt("::ffff:10.1.2.3"), "10.1.2.3");
	/* Not addresses. */
	assert_string_equal(parse_fmt(""), "-");
	assert_string_equal(parse_fmt("unknown"), "-");
	assert_string_equal(parse_fmt("203.0.113"), "-");
	assert_string_equal(parse_fmt("203.0.113.7:"), "-");
	assert_string_equal(parse_fmt("203.0.113.7:123456"), "-");
	assert_string_equal(parse_fmt("203.0.113.7:80x"), "-");
	assert_string_equal(parse_fmt("[2001:db8::1"), "-");
	assert_string_equal(parse_fmt("[2001:db8::1]x"), "-");
	assert_string_equal(parse_fmt("[203.0.113.7]"), "-");
	assert_string_equal(parse_fmt("203.0.113.7 1.2.3.4"), "-");
	assert_string_equal(parse_fmt("_hidden"), "-");
}

static int
in(const char *cidr, const char *addr)
{
	struct gw_cidr c;
	uint8_t a[16];

	assert_int_equal(gw_cidr_parse(cidr, strlen(cidr), &c), 0);
	assert_int_equal(gw_addr_parse(addr, strlen(addr), a), 0);
	return gw_cidr_match(&c, 1, a);
}

static void
cidr_blocks(void **state)
{
	struct gw_cidr c;

	(void)state;
	assert_true(in("10.0.0.0/8", "10.200.3.4"));
	assert_false(in("10.0.0.0/8", "11.0.0.1"));
	assert_true(in("10.1.2.3", "10.1.2.3"));
	assert_false(in("10.1.2.3", "10.1.2.4"));
	assert_true(in("10.1.2.3/20", "10.1.15.255")); /* host bits in the block are ignored */
	assert_false(in("10.1.2.3/20", "10.1.16.0"));
	assert_true(in("0.0.0.0/0", "198.51.100.1"));
	assert_false(in("0.0.0.0/0", "2001:db8::1")); /* every IPv4 address, not every address */
	assert_true(in("::/0", "2001:db8::1"));
	assert_true(in("2001:db8::/32", "2001:db8:ffff::1"));
	assert_false(in("2001:db8::/32", "2001:db9::1"));
	assert_true(in("fd00::/7", "fdab::1"));
	assert_false(in("fd00::/7", "fe00::1"));
	assert_true(in("::1", "::1"));
	assert_int_equal(gw_cidr_parse("10.0.0.0/33", 11, &c), -1);
	assert_int_equal(gw_cidr_parse("::/129", 6, &c), -1);
	assert_int_equal(gw_cidr_parse("10.0.0.0/", 9, &c), -1);
	assert_int_equal(gw_cidr_parse("10.0.0.0/a", 10, &c), -1);
	assert_int_equal(gw_cidr_parse("/8", 2, &c), -1);
}

static const char *
client(const char *xff, const char *const *trusted)
{
	struct gw_cidr set[8];
	size_t n = 0;
	uint8_t a[16];

	for (; trusted[n]; n++)
		assert_int_equal(gw_cidr_parse(trusted[n], strlen(trusted[n]), &set[n]), 0);
	if (!gw_xff_client(xff, strlen(xff), set, n, a))
		return "-";
	return fmt(a);
}

static void
the_client_is_the_rightmost_untrusted_entry(void **state)
{
	static const char *const proxies[] = { "10.0.0.0/8", "2001:db8::/32", NULL };
	static const char *const none[] = { NULL };

	(void)state;
	/* One proxy appended what it saw. */
	assert_string_equal(client("198.51.100.9", proxies), "198.51.100.9");
	/* A client-sent prefix is ignored: the proxy's appended entry wins. */
	assert_string_equal(client("1.1.1.1, 198.51.100.9", proxies), "198.51.100.9");
	/* Two trusted hops in between are skipped. */
	assert_string_equal(client("1.1.1.1, 198.51.100.9, 10.0.0.5,10.9.9.9", proxies),
			    "198.51.100.9");
	assert_string_equal(client("198.51.100.9, [2001:db8::7]:443", proxies), "198.51.100.9");
	/* Every entry trusted: the leftmost. */
	assert_string_equal(client("10.1.1.1, 10.2.2.2", proxies), "10.1.1.1");
	/* A malformed entry ends the walk at the last address believed. */
	assert_string_equal(client("198.51.100.9, unknown, 10.0.0.5", proxies), "10.0.0.5");
	assert_string_equal(client("198.51.100.9, unknown", proxies), "-");
	assert_string_equal(client("1.2.3.4,,10.0.0.5", proxies), "10.0.0.5");
	assert_string_equal(client("", proxies), "-");
	assert_string_equal(client(",", proxies), "-");
	/* No trusted hops: the rightmost entry. */
	assert_string_equal(client("1.1.1.1, 198.51.100.9", none), "198.51.100.9");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(addresses_in_the_forms_proxies_write),
		cmocka_unit_test(cidr_blocks),
		cmocka_unit_test(the_client_is_the_rightmost_untrusted_entry),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
