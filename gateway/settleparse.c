/*
 * settleparse.c - the fast path for ack and nack bodies. Pure code (see settleparse.h).
 */
#include "settleparse.h"

#include <string.h>

#include "json.h"

/* Past the string whose opening quote is at p[*pos], if it is a plain one; else -1. */
static int
plain_string(const char *p, size_t len, size_t *pos)
{
	size_t i = *pos + 1;

	for (; i < len; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '"') {
			*pos = i + 1;
			return 0;
		}
		if (c < 0x20 || c > 0x7e || c == '\\')
			return -1; /* control, non-ASCII or an escape: jansson decides */
	}
	return -1;
}

/* Expect @p c at the next token; move past it. */
static int
expect(const char *p, size_t len, size_t *pos, char c)
{
	gw_json_ws(p, len, pos);
	if (*pos >= len || p[*pos] != c)
		return -1;
	(*pos)++;
	return 0;
}

size_t
gw_settle_scan(const char *p, size_t len, size_t max, struct gw_buf *out)
{
	static const char key[] = "\"receipts\"";
	size_t pos = 0, n = 0, start = out->len;

	if (expect(p, len, &pos, '{'))
		return 0;
	gw_json_ws(p, len, &pos);
	if (len - pos < sizeof(key) - 1 || memcmp(p + pos, key, sizeof(key) - 1))
		return 0;
	pos += sizeof(key) - 1;
	if (expect(p, len, &pos, ':') || expect(p, len, &pos, '['))
		goto other;
	for (;;) {
		struct gw_span s;

		gw_json_ws(p, len, &pos);
		if (pos >= len || p[pos] != '"' || n == max)
			goto other;
		s.p = p + pos + 1;
		if (plain_string(p, len, &pos))
			goto other;
		s.len = (size_t)(p + pos - 1 - s.p);
		gw_buf_append(out, &s, sizeof(s));
		n++;
		gw_json_ws(p, len, &pos);
		if (pos < len && p[pos] == ',') {
			pos++;
			continue;
		}
		break;
	}
	if (expect(p, len, &pos, ']') || expect(p, len, &pos, '}'))
		goto other;
	gw_json_ws(p, len, &pos);
	if (pos != len)
		goto other;
	return n;
other:
	out->len = start;
	return 0;
}
