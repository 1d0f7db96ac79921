/*
 * fuzz_json.c - libFuzzer target for the strict JSON scanner under publish bodies and WebSocket
 * frames (gateway/json.c): validation, object members as spans, compaction, UTF-8.
 *
 * Input: any bytes, taken as one JSON text. Invariants checked:
 *  - differential against jansson (which reads the config file): a text we accept, jansson accepts
 *    too (except where jansson is deliberately stricter: numbers past int64/double and lone UTF-16
 *    surrogate escapes), and a text jansson accepts, we accept (unless nested deeper than our
 *    GW_JSON_DEPTH_MAX or holding a raw NUL byte, which jansson skips); so no hostile body gets
 *    through a scanner that the rest of the system would choke on, and no valid body is refused;
 *  - compaction equals dropping the whitespace outside strings, is idempotent, and the result is
 *    valid JSON of the same type;
 *  - gw_json_object agrees with gw_json_skip, and each member it reports is a span of the input
 *    holding one complete value of the reported type; a callback's non-zero value is returned;
 *  - gw_utf8_valid equals a reference decoder that checks code points, not byte tables.
 */
#include <string.h>

#include <jansson.h>

#include "buf.h"
#include "fuzz.h"
#include "json.h"

/* Reference compaction of a valid text: drop ' ', \t, \n, \r outside strings. */
static void
strip_ws(const char *p, size_t len, struct gw_buf *out)
{
	int in_str = 0;

	for (size_t i = 0; i < len; i++) {
		char c = p[i];

		if (in_str) {
			gw_buf_putc(out, c);
			if (c == '\\' && i + 1 < len)
				gw_buf_putc(out, p[++i]);
			else if (c == '"')
				in_str = 0;
		} else if (c == '"') {
			in_str = 1;
			gw_buf_putc(out, c);
		} else if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
			gw_buf_putc(out, c);
		}
	}
}

/* Reference UTF-8 validation by decoded value: shortest form, no surrogates, <= U+10FFFF. */
static int
ref_utf8(const unsigned char *p, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned c = p[i], n, cp, min;

		if (c < 0x80) {
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0)
			n = 2, cp = c & 0x1f, min = 0x80;
		else if ((c & 0xf0) == 0xe0)
			n = 3, cp = c & 0x0f, min = 0x800;
		else if ((c & 0xf8) == 0xf0)
			n = 4, cp = c & 0x07, min = 0x10000;
		else
			return 0;
		if (len - i < n)
			return 0;
		for (unsigned k = 1; k < n; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += n;
	}
	return 1;
}

static enum gw_json_type
type_of_first(char c)
{
	switch (c) {
	case '{': return GW_J_OBJECT;
	case '[': return GW_J_ARRAY;
	case '"': return GW_J_STRING;
	case 't': return GW_J_TRUE;
	case 'f': return GW_J_FALSE;
	case 'n': return GW_J_NULL;
	default: return GW_J_NUMBER;
	}
}

/* A complete value of type t occupying exactly p[0..len). */
static int
is_one_value(const char *p, size_t len, enum gw_json_type t)
{
	size_t pos = 0;
	enum gw_json_type got = GW_J_NONE;

	return len && gw_json_skip(p, len, &pos, &got, NULL) == 0 && pos == len && got == t;
}

struct members {
	const char *base;
	size_t len;
	unsigned n, stop_at;
};

static int
on_member(void *ctx, const struct gw_json_field *f)
{
	struct members *m = ctx;

	FUZZ_CHECK(f->key >= m->base + 1 && f->key + f->key_len < m->base + m->len);
	FUZZ_CHECK(f->key[-1] == '"' && f->key[f->key_len] == '"');
	FUZZ_CHECK(f->raw >= m->base && f->raw + f->raw_len <= m->base + m->len);
	FUZZ_CHECK(is_one_value(f->raw, f->raw_len, f->type));
	FUZZ_CHECK(type_of_first(f->raw[0]) == f->type);
	return ++m->n == m->stop_at ? 42 : 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	struct gw_json_err err = { 0, NULL };
	enum gw_json_type type = GW_J_NONE;
	size_t pos = 0, start = 0, end = 0;
	int rc, full;
	json_error_t jerr;
	json_t *j;

	FUZZ_CHECK(gw_utf8_valid(p, size) == ref_utf8(data, size));

	gw_json_ws(p, size, &start);
	rc = gw_json_skip(p, size, &pos, &type, &err);
	FUZZ_CHECK(rc == 0 || rc == -1);
	if (rc) {
		FUZZ_CHECK(err.what != NULL && err.pos <= size);
		full = 0;
	} else {
		FUZZ_CHECK(pos > start && pos <= size);
		FUZZ_CHECK(type == type_of_first(p[start]));
		end = pos;
		gw_json_ws(p, size, &pos);
		full = pos == size;
	}

	/* jansson, both ways. jansson skips a raw NUL byte between tokens ("[1,2\0]" loads), which
	 * JSON does not allow and we refuse, so texts with one are left out of the converse. */
	j = json_loadb(p, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	if (full && !j)
		FUZZ_CHECK(json_error_code(&jerr) == json_error_numeric_overflow ||
			   strstr(jerr.text, "invalid Unicode"));
	if (j && fuzz_json_nesting(p, size) < GW_JSON_DEPTH_MAX && !memchr(p, '\0', size))
		FUZZ_CHECK(full);
	json_decref(j);

	if (full) {
		struct gw_buf c1, c2, ref;

		gw_buf_init(&c1, 0);
		gw_buf_init(&c2, 0);
		gw_buf_init(&ref, 0);
		gw_json_compact(p + start, end - start, &c1);
		strip_ws(p + start, end - start, &ref);
		FUZZ_CHECK(c1.len == ref.len &&
			   fuzz_mem_eq(gw_buf_data(&c1), gw_buf_data(&ref), c1.len));
		FUZZ_CHECK(is_one_value((const char *)gw_buf_data(&c1), c1.len, type));
		gw_json_compact((const char *)gw_buf_data(&c1), c1.len, &c2);
		FUZZ_CHECK(c2.len == c1.len &&
			   fuzz_mem_eq(gw_buf_data(&c1), gw_buf_data(&c2), c1.len));
		gw_buf_free(&c1);
		gw_buf_free(&c2);
		gw_buf_free(&ref);
	}

	/* Members of an object: agree with skip, spans inside the input, values whole. */
	{
		struct members m = { p, size, 0, 0 };
		struct gw_json_err oerr = { 0, NULL };
		size_t opos = 0;
		int orc = gw_json_object(p, size, &opos, on_member, &m, &oerr);

		if (rc == 0 && type == GW_J_OBJECT) {
			FUZZ_CHECK(orc == 0 && opos == end);
		} else {
			FUZZ_CHECK(orc == -1 && oerr.what && oerr.pos <= size);
		}
		if (orc == 0 && m.n) {
			struct members m2 = { p, size, 0, 1 + (unsigned)(size % m.n) };

			opos = 0;
			FUZZ_CHECK(gw_json_object(p, size, &opos, on_member, &m2, NULL) == 42);
			FUZZ_CHECK(m2.n == m2.stop_at);
		}
	}
	return 0;
}
