/*
 * json.c - strict JSON scanning and compaction. Pure code (see json.h).
 */
#include "json.h"

#include <string.h>

static int
is_ws(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

void
gw_json_ws(const char *p, size_t len, size_t *pos)
{
	while (*pos < len && is_ws((unsigned char)p[*pos]))
		(*pos)++;
}

static int
fail(struct gw_json_err *err, size_t pos, const char *what)
{
	if (err) {
		err->pos = pos;
		err->what = what;
	}
	return -1;
}

/* Length of the UTF-8 sequence at p (1..4), or 0 if it is not valid. */
static size_t
utf8_seq(const unsigned char *p, size_t avail)
{
	unsigned char c = p[0];
	size_t n;
	unsigned lo = 0x80, hi = 0xbf;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4;
	else
		return 0;
	if (avail < n)
		return 0;
	/* The second byte's range rules out overlongs, surrogates and code points past U+10FFFF. */
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return n;
}

int
gw_utf8_valid(const char *p, size_t len)
{
	size_t i = 0;

	while (i < len) {
		size_t n = utf8_seq((const unsigned char *)p + i, len - i);

		if (!n)
			return 0;
		i += n;
	}
	return 1;
}

static int
hex4(const char *p, size_t len, size_t at)
{
	if (at + 4 > len)
		return -1;
	for (size_t i = 0; i < 4; i++) {
		char c = p[at + i];

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
			return -1;
	}
	return 0;
}

static int
scan_string(const char *p, size_t len, size_t *pos, struct gw_json_err *err)
{
	size_t i = *pos + 1; /* past the opening quote */

	while (i < len) {
		unsigned char c = (unsigned char)p[i];

		if (c == '"') {
			*pos = i + 1;
			return 0;
		}
		if (c < 0x20)
			return fail(err, i, "control character in string");
		if (c == '\\') {
			if (i + 1 >= len)
				break;
			switch (p[i + 1]) {
			case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
				i += 2;
				continue;
			case 'u':
				if (hex4(p, len, i + 2))
					return fail(err, i, "bad \\u escape");
				i += 6;
				continue;
			default:
				return fail(err, i, "bad escape");
			}
		}
		if (c < 0x80) {
			i++;
			continue;
		}
		{
			size_t n = utf8_seq((const unsigned char *)p + i, len - i);

			if (!n)
				return fail(err, i, "invalid UTF-8 in string");
			i += n;
		}
	}
	return fail(err, len, "unterminated string");
}

static int
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int
scan_number(const char *p, size_t len, size_t *pos, struct gw_json_err *err)
{
	size_t i = *pos;

	if (i < len && p[i] == '-')
		i++;
	if (i >= len || !is_digit(p[i]))
		return fail(err, i, "bad number");
	if (p[i] == '0')
		i++;
	else
		while (i < len && is_digit(p[i]))
			i++;
	if (i < len && p[i] == '.') {
		i++;
		if (i >= len || !is_digit(p[i]))
			return fail(err, i, "bad number fraction");
		while (i < len && is_digit(p[i]))
			i++;
	}
	if (i < len && (p[i] == 'e' || p[i] == 'E')) {
		i++;
		if (i < len && (p[i] == '+' || p[i] == '-'))
			i++;
		if (i >= len || !is_digit(p[i]))
			return fail(err, i, "bad number exponent");
		while (i < len && is_digit(p[i]))
			i++;
	}
	*pos = i;
	return 0;
}

static int
scan_lit(const char *p, size_t len, size_t *pos, const char *lit, struct gw_json_err *err)
{
	size_t n = strlen(lit);

	if (len - *pos < n || memcmp(p + *pos, lit, n))
		return fail(err, *pos, "unexpected token");
	*pos += n;
	return 0;
}

static int skip_value(const char *p, size_t len, size_t *pos, enum gw_json_type *type, int depth,
		      struct gw_json_err *err);

/* Containers are walked iteratively per level and recursively per nesting, bounded by depth. */
static int
skip_container(const char *p, size_t len, size_t *pos, int is_obj, int depth,
	       struct gw_json_err *err)
{
	char close = is_obj ? '}' : ']';
	size_t i = *pos + 1;
	enum gw_json_type t;

	if (depth >= GW_JSON_DEPTH_MAX)
		return fail(err, *pos, "nested too deeply");
	gw_json_ws(p, len, &i);
	if (i < len && p[i] == close) {
		*pos = i + 1;
		return 0;
	}
	for (;;) {
		if (is_obj) {
			gw_json_ws(p, len, &i);
			if (i >= len || p[i] != '"')
				return fail(err, i, "object key expected");
			if (scan_string(p, len, &i, err))
				return -1;
			gw_json_ws(p, len, &i);
			if (i >= len || p[i] != ':')
				return fail(err, i, "':' expected");
			i++;
		}
		if (skip_value(p, len, &i, &t, depth + 1, err))
			return -1;
		gw_json_ws(p, len, &i);
		if (i >= len)
			return fail(err, i, "unterminated container");
		if (p[i] == ',') {
			i++;
			continue;
		}
		if (p[i] == close) {
			*pos = i + 1;
			return 0;
		}
		return fail(err, i, is_obj ? "',' or '}' expected" : "',' or ']' expected");
	}
}

static int
skip_value(const char *p, size_t len, size_t *pos, enum gw_json_type *type, int depth,
	   struct gw_json_err *err)
{
	gw_json_ws(p, len, pos);
	if (*pos >= len)
		return fail(err, *pos, "value expected");
	switch (p[*pos]) {
	case '{':
		*type = GW_J_OBJECT;
		return skip_container(p, len, pos, 1, depth, err);
	case '[':
		*type = GW_J_ARRAY;
		return skip_container(p, len, pos, 0, depth, err);
	case '"':
		*type = GW_J_STRING;
		return scan_string(p, len, pos, err);
	case 't':
		*type = GW_J_TRUE;
		return scan_lit(p, len, pos, "true", err);
	case 'f':
		*type = GW_J_FALSE;
		return scan_lit(p, len, pos, "false", err);
	case 'n':
		*type = GW_J_NULL;
		return scan_lit(p, len, pos, "null", err);
	default:
		*type = GW_J_NUMBER;
		return scan_number(p, len, pos, err);
	}
}

int
gw_json_skip(const char *p, size_t len, size_t *pos, enum gw_json_type *type,
	     struct gw_json_err *err)
{
	return skip_value(p, len, pos, type, 0, err);
}

int
gw_json_object(const char *p, size_t len, size_t *pos, gw_json_field_fn fn, void *ctx,
	       struct gw_json_err *err)
{
	size_t i = *pos;
	struct gw_json_field f;
	int rc;

	gw_json_ws(p, len, &i);
	if (i >= len || p[i] != '{')
		return fail(err, i, "object expected");
	i++;
	gw_json_ws(p, len, &i);
	if (i < len && p[i] == '}') {
		*pos = i + 1;
		return 0;
	}
	for (;;) {
		size_t k;

		gw_json_ws(p, len, &i);
		if (i >= len || p[i] != '"')
			return fail(err, i, "object key expected");
		k = i;
		if (scan_string(p, len, &i, err))
			return -1;
		f.key = p + k + 1;
		f.key_len = i - k - 2;
		gw_json_ws(p, len, &i);
		if (i >= len || p[i] != ':')
			return fail(err, i, "':' expected");
		i++;
		gw_json_ws(p, len, &i);
		k = i;
		if (skip_value(p, len, &i, &f.type, 1, err))
			return -1;
		f.raw = p + k;
		f.raw_len = i - k;
		if (fn && (rc = fn(ctx, &f)) != 0)
			return rc;
		gw_json_ws(p, len, &i);
		if (i >= len)
			return fail(err, i, "unterminated object");
		if (p[i] == ',') {
			i++;
			continue;
		}
		if (p[i] == '}') {
			*pos = i + 1;
			return 0;
		}
		return fail(err, i, "',' or '}' expected");
	}
}

void
gw_json_compact(const char *raw, size_t len, struct gw_buf *out)
{
	size_t i = 0, run = 0;

	gw_buf_reserve(out, len);
	while (i < len) {
		unsigned char c = (unsigned char)raw[i];

		if (c == '"') {
			/* Copy the whole string verbatim: whitespace inside it is significant. */
			size_t j = i + 1;

			while (j < len && raw[j] != '"')
				j += raw[j] == '\\' ? 2 : 1;
			j = j < len ? j + 1 : len;
			run += j - i;
			i = j;
			continue;
		}
		if (is_ws(c)) {
			gw_buf_append(out, raw + i - run, run);
			run = 0;
			i++;
			continue;
		}
		run++;
		i++;
	}
	gw_buf_append(out, raw + i - run, run);
}
