/*
 * settleparse_test.c - unit tests of gateway/settleparse.c: the ack/nack bodies the fast path reads,
 * and the ones it leaves to jansson (it must recognise nothing jansson and the settle checks would
 * refuse, and nothing whose strings jansson would decode to other bytes).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "settleparse.h"

/* Scan @p body; the receipts joined by '|' (or "-" when the fast path declined). */
static const char *
scan(const char *body, size_t max)
{
	static char text[4096];
	struct gw_buf out;
	size_t n, used = 0;

	gw_buf_init(&out, 0);
	n = gw_settle_scan(body, strlen(body), max, &out);
	if (!n) {
		assert_int_equal(out.len, 0); /* nothing appended when declined */
		gw_buf_free(&out);
		return "-";
	}
	assert_int_equal(out.len, n * sizeof(struct gw_span));
	text[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		const struct gw_span *s = (const struct gw_span *)gw_buf_data(&out) + i;

		assert_true(s->p >= body && s->p + s->len <= body + strlen(body));
		used += (size_t)snprintf(text + used, sizeof(text) - used, "%s%.*s", i ? "|" : "",
					 (int)s->len, s->p);
	}
	gw_buf_free(&out);
	return text;
}

static void
reads_the_shape_workers_send(void **state)
{
	(void)state;
	assert_string_equal(scan("{\"receipts\":[\"0.1.2a.9f1c0e4b7d2a6c11.chatbot/s1\"]}", 10),
			    "0.1.2a.9f1c0e4b7d2a6c11.chatbot/s1");
	assert_string_equal(scan("{\"receipts\":[\"a\",\"b\",\"c\"]}", 10), "a|b|c");
	/* Python's json.dumps, pretty printers, CRLF: whitespace between any two tokens. */
	assert_string_equal(scan("{\"receipts\": [\"a\", \"b\"]}", 10), "a|b");
	assert_string_equal(scan(" \r\n\t{ \"receipts\" :\n[\n  \"a\" ,\n  \"b\"\n]\n}\r\n", 10), "a|b");
	/* Any printable ASCII but '"' and '\\' is taken as it is, receipt or not (the settle
	 * checks refuse what is not a receipt, with the string in the error). */
	assert_string_equal(scan("{\"receipts\":[\"\",\" \",\"~!@#$%^&*()/{}[],:\"]}", 10),
			    "| |~!@#$%^&*()/{}[],:");
	/* Exactly max receipts. */
	assert_string_equal(scan("{\"receipts\":[\"a\",\"b\"]}", 2), "a|b");
}

static void
leaves_everything_else_to_jansson(void **state)
{
	(void)state;
	/* What jansson and the settle checks refuse: syntax, shape, counts. */
	assert_string_equal(scan("", 10), "-");
	assert_string_equal(scan("{", 10), "-");
	assert_string_equal(scan("{\"receipts\":[\"a\"]", 10), "-");
	assert_string_equal(scan("{\"receipts\":[\"a\"", 10), "-");
	assert_string_equal(scan("{\"receipts\":[\"a", 10), "-");
	assert_string_equal(scan("{\"receipts\":[]}", 10), "-");
	assert_string_equal(scan("{\"receipts\":[\"a\",]}", 10), "-");
	assert_string_equal(scan("{\"receipts\":[,\"a\"]}", 10), "-");
	assert_string_equal(scan("{\"receipts\":[\"a\" \"b\"]}", 10), "-");
	assert_string_equal(scan("{\"receipts\":[\"a\"]} x", 10), "-");
	assert_string_equal(scan("{\"receipts\":[\"a\"]}{}", 10), "-");
	assert_string_equal(scan("{\"receipts\":\"a\"}", 10), "-");
	assert_string_equal(scan("{\"receipts\":[[\"a\"]]}", 10), "-");
	assert_string_equal(scan("{\"receipts\":[1]}", 10), "-");
	assert_string_equal(scan("{\"receipts\":[\"a\",null]}", 10), "-");
	assert_string_equal(scan("{\"receipts\":[\"a\",\"b\",\"c\"]}", 2), "-");
	assert_string_equal(scan("[\"a\"]", 10), "-");
	assert_string_equal(scan("{\"receipts\":[\"a\"],\"receipts\":[\"b\"]}", 10), "-");
	assert_string_equal(scan("{\"receipts\":[\"a\"],\"x\":1}", 10), "-");
	assert_string_equal(scan("{\"x\":1,\"receipts\":[\"a\"]}", 10), "-");
	assert_string_equal(scan("{\"receipt\":[\"a\"]}", 10), "-");
	assert_string_equal(scan("{\"receiptsx\":[\"a\"]}", 10), "-");
	assert_string_equal(scan("{receipts:[\"a\"]}", 10), "-");
	assert_string_equal(scan("{'receipts':['a']}", 10), "-");
	/* A nack's delay: jansson checks it. */
	assert_string_equal(scan("{\"receipts\":[\"a\"],\"delay_ms\":100}", 10), "-");
	/* Strings jansson decodes, or refuses: escapes, control characters, non-ASCII. */
	assert_string_equal(scan("{\"receipts\":[\"a\\u0030\"]}", 10), "-");
	assert_string_equal(scan("{\"receipts\":[\"chatbot\\/s1\"]}", 10), "-");
	assert_string_equal(scan("{\"rec\\u0065ipts\":[\"a\"]}", 10), "-");
	assert_string_equal(scan("{\"receipts\":[\"a\tb\"]}", 10), "-");
	assert_string_equal(scan("{\"receipts\":[\"a\x7f\"]}", 10), "-");
	assert_string_equal(scan("{\"receipts\":[\"\xc3\xa9\"]}", 10), "-");
	assert_string_equal(scan("{\"receipts\":[\"\xff\"]}", 10), "-");
	/* Whitespace JSON does not have: a BOM, a form feed, a vertical tab. */
	assert_string_equal(scan("\xef\xbb\xbf{\"receipts\":[\"a\"]}", 10), "-");
	assert_string_equal(scan("{\"receipts\":[\"a\"]}\f", 10), "-");
	assert_string_equal(scan("{\v\"receipts\":[\"a\"]}", 10), "-");
	/* max 0: nothing fits. */
	assert_string_equal(scan("{\"receipts\":[\"a\"]}", 0), "-");
}

static void
a_body_with_a_nul_byte_is_left_to_jansson(void **state)
{
	static const char body[] = "{\"receipts\":[\"a\0b\"]}";
	static const char after[] = "{\"receipts\":[\"a\"]}\0";
	struct gw_buf out;

	(void)state;
	gw_buf_init(&out, 0);
	assert_int_equal(gw_settle_scan(body, sizeof(body) - 1, 10, &out), 0);
	assert_int_equal(gw_settle_scan(after, sizeof(after) - 1, 10, &out), 0);
	/* The length bounds the scan: the same bytes cut short are declined. */
	assert_int_equal(gw_settle_scan(after, sizeof(after) - 3, 10, &out), 0);
	assert_int_equal(out.len, 0);
	gw_buf_free(&out);
}

static void
many_receipts_append_after_what_is_there(void **state)
{
	struct gw_buf body, out;
	const struct gw_span first = { "prev", 4 };

	(void)state;
	gw_buf_init(&body, 0);
	gw_buf_init(&out, 0);
	gw_buf_puts(&body, "{\"receipts\":[");
	for (int i = 0; i < 10000; i++)
		gw_buf_printf(&body, "%s\"%d.1.%x.0123456789abcdef.chatbot/s%d\"", i ? "," : "", i, i, i);
	gw_buf_puts(&body, "]}");
	gw_buf_append(&out, &first, sizeof(first));
	assert_int_equal(gw_settle_scan((const char *)gw_buf_data(&body), body.len, 10000, &out), 10000);
	assert_int_equal(out.len, 10001 * sizeof(struct gw_span));
	{
		const struct gw_span *s = (const struct gw_span *)gw_buf_data(&out);

		assert_memory_equal(s[0].p, "prev", 4);
		assert_int_equal(s[10000].len, strlen("9999.1.270f.0123456789abcdef.chatbot/s9999"));
		assert_memory_equal(s[10000].p, "9999.1.270f.0123456789abcdef.chatbot/s9999", s[10000].len);
	}
	/* One more than the limit: declined, and what was there before is kept. */
	assert_int_equal(gw_settle_scan((const char *)gw_buf_data(&body), body.len, 9999, &out), 0);
	assert_int_equal(out.len, 10001 * sizeof(struct gw_span));
	gw_buf_free(&body);
	gw_buf_free(&out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(reads_the_shape_workers_send),
		cmocka_unit_test(leaves_everything_else_to_jansson),
		cmocka_unit_test(a_body_with_a_nul_byte_is_left_to_jansson),
		cmocka_unit_test(many_receipts_append_after_what_is_there),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
