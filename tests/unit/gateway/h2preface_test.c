/*
 * h2preface_test.c - unit tests of gateway/h2preface.c: the server's first SETTINGS frame loses
 * its offer of extended CONNECT (SETTINGS_ENABLE_CONNECT_PROTOCOL = 0) and nothing else changes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "h2preface.h"

/* The preface lws 4.1.6 writes with the gateway's settings (tls.c), as read off the wire: header
 * table 65536, push 0, 128 streams, initial window 0, max header list 4096, connect protocol 1. */
static const uint8_t lws_preface[] = {
	0x00, 0x00, 0x24, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x01, 0x00, 0x01, 0x00, 0x00,
	0x00, 0x02, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x03, 0x00, 0x00, 0x00, 0x80,
	0x00, 0x04, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x06, 0x00, 0x00, 0x10, 0x00,
	0x00, 0x08, 0x00, 0x00, 0x00, 0x01,
};
#define CONNECT_VALUE_AT (9 + 5 * 6 + 2) /* the value of the sixth parameter */

/* Patch a copy of @p in; the result, and the copy in @p out. */
static int
patched(const uint8_t *in, size_t len, uint8_t *out)
{
	int scan = gw_h2_preface_scan(in, len), r;

	memcpy(out, in, len);
	r = gw_h2_preface_no_connect(out, len);
	assert_int_equal(r, scan);
	return r;
}

static void
lws_preface_gets_connect_protocol_0(void **state)
{
	uint8_t out[sizeof(lws_preface)], want[sizeof(lws_preface)];

	(void)state;
	assert_int_equal(patched(lws_preface, sizeof(lws_preface), out), 1);
	memcpy(want, lws_preface, sizeof(want));
	want[CONNECT_VALUE_AT + 3] = 0;
	assert_memory_equal(out, want, sizeof(want));
	/* Once is enough: patched again, nothing changes. */
	assert_int_equal(gw_h2_preface_no_connect(out, sizeof(out)), 0);
	assert_memory_equal(out, want, sizeof(want));
}

static void
frames_after_it_are_left_alone(void **state)
{
	/* The preface, then a SETTINGS ACK and a second SETTINGS that names 0x8 again. */
	uint8_t in[sizeof(lws_preface) + 9 + 15], out[sizeof(in)];
	static const uint8_t more[] = {
		0x00, 0x00, 0x00, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x06, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x08, 0x00, 0x00, 0x00, 0x01,
	};

	(void)state;
	memcpy(in, lws_preface, sizeof(lws_preface));
	memcpy(in + sizeof(lws_preface), more, sizeof(more));
	assert_int_equal(patched(in, sizeof(in), out), 1);
	assert_int_equal(out[CONNECT_VALUE_AT + 3], 0);
	assert_memory_equal(out + sizeof(lws_preface), more, sizeof(more));
}

static void
every_nonzero_connect_value_is_cleared(void **state)
{
	static const uint8_t in[] = {
		0x00, 0x00, 0x12, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x08, 0x80, 0x00, 0x00, 0x00, /* any value but 0 offers it */
		0x00, 0x08, 0x00, 0x00, 0x00, 0x00, /* 0 already: not counted */
		0x00, 0x08, 0x00, 0x01, 0x00, 0x00,
	};
	uint8_t out[sizeof(in)];

	(void)state;
	assert_int_equal(patched(in, sizeof(in), out), 2);
	for (size_t i = 9; i < sizeof(in); i += 6) {
		assert_int_equal(out[i + 1], 0x08);
		assert_int_equal(out[i + 2] | out[i + 3] | out[i + 4] | out[i + 5], 0);
	}
}

static void
an_empty_settings_frame_offers_nothing(void **state)
{
	static const uint8_t in[] = { 0, 0, 0, 0x04, 0, 0, 0, 0, 0 };

	(void)state;
	assert_int_equal(gw_h2_preface_scan(in, sizeof(in)), 0);
}

/* Anything that is not a whole server SETTINGS frame at the start: -1, and no byte changed. */
static void
untouched(const uint8_t *in, size_t len)
{
	uint8_t out[64];

	assert_true(len <= sizeof(out));
	assert_int_equal(patched(in, len, out), -1);
	assert_memory_equal(out, in, len);
}

static void
other_bytes_are_not_touched(void **state)
{
	uint8_t b[sizeof(lws_preface)];

	(void)state;
	untouched(lws_preface, 0);
	untouched(lws_preface, 8);                        /* no whole frame header */
	untouched(lws_preface, sizeof(lws_preface) - 1);  /* the payload cut short */
	memcpy(b, lws_preface, sizeof(b));
	b[3] = 0x08;                                      /* WINDOW_UPDATE */
	untouched(b, sizeof(b));
	memcpy(b, lws_preface, sizeof(b));
	b[4] = 0x01;                                      /* a SETTINGS ACK */
	untouched(b, sizeof(b));
	memcpy(b, lws_preface, sizeof(b));
	b[8] = 0x01;                                      /* not on stream 0 */
	untouched(b, sizeof(b));
	memcpy(b, lws_preface, sizeof(b));
	b[2] = 0x23;                                      /* not whole parameters */
	untouched(b, sizeof(b));
	memcpy(b, lws_preface, sizeof(b));
	b[0] = 0x01;                                      /* longer than the buffer */
	untouched(b, sizeof(b));
	untouched((const uint8_t *)"HTTP/1.1 200 OK\r\n", 17);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(lws_preface_gets_connect_protocol_0),
		cmocka_unit_test(frames_after_it_are_left_alone),
		cmocka_unit_test(every_nonzero_connect_value_is_cleared),
		cmocka_unit_test(an_empty_settings_frame_offers_nothing),
		cmocka_unit_test(other_bytes_are_not_touched),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
