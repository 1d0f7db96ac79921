/*
 * fuzz_headcheck.c - libFuzzer target for the first-request head check (gateway/headcheck.c): the
 * bytes a client sends before libwebsockets parses anything.
 *
 * Input: the bytes from the start of a connection. Invariants checked:
 *  - the result is 0 (accepted), -1 (refused: 400, 405 or 431 with a code and a message without
 *    quotes, backslashes or control bytes) or 1 (no complete head yet);
 *  - an accepted head ends at a line feed inside the input, starts with a supported method and a
 *    space and "/", and holds no byte lws chokes on: no NUL or other control byte but CR, LF and
 *    HTAB, nothing at or above 0x80;
 *  - the verdict depends on the head alone: the accepted head by itself, or with any bytes after it,
 *    gets the same verdict and length; a refusal stays a refusal when more bytes follow;
 *  - any prefix shorter than an accepted head is "not complete yet" or a refusal, never accepted;
 *  - gw_head_is_event_stream() only says yes for a GET;
 *  - gw_head_body() on an accepted head gives a known kind, a non-zero length only with
 *    GW_BODY_LENGTH, and that length is a decimal number written in the head.
 */
#include <string.h>

#include "fuzz.h"
#include "headcheck.h"

static void
check_verdict(int rc, const struct gw_head_verdict *v)
{
	FUZZ_CHECK(rc == 0 || rc == -1 || rc == 1);
	if (rc != -1)
		return;
	FUZZ_CHECK(v->status == 400 || v->status == 405 || v->status == 431);
	FUZZ_CHECK(v->code && v->code[0] && v->message && v->message[0]);
	for (const char *m = v->message; *m; m++)
		FUZZ_CHECK(*m != '"' && *m != '\\' && (unsigned char)*m >= 0x20);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const methods[] = { "GET ", "POST ", "PUT ", "DELETE ", "OPTIONS ", "HEAD ",
					       "PATCH " };
	const char *buf = (const char *)data;
	struct gw_head_verdict v, v2;
	size_t hl = 0, hl2 = 0;
	int rc, rc2, known = 0;

	rc = gw_head_check(buf, size, &hl, &v);
	check_verdict(rc, &v);
	if (gw_head_is_event_stream(buf, size))
		FUZZ_CHECK(size >= 4 && !memcmp(buf, "GET ", 4));
	if (rc == 0) {
		FUZZ_CHECK(hl >= 1 && hl <= size && buf[hl - 1] == '\n');
		for (size_t i = 0; i < hl; i++) {
			unsigned char c = (unsigned char)buf[i];

			FUZZ_CHECK(c < 0x80 && (c >= 0x20 || c == '\r' || c == '\n' || c == '\t') && c != 0x7f);
		}
		for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]) && !known; i++) {
			size_t ml = strlen(methods[i]);

			known = hl > ml && !memcmp(buf, methods[i], ml) && buf[ml] == '/';
		}
		FUZZ_CHECK(known);
		{
			struct gw_head_body b;
			char *copy = malloc(hl + 1), digits[24];

			FUZZ_CHECK(copy);
			memcpy(copy, buf, hl);
			copy[hl] = '\0';
			gw_head_body(buf, hl, &b);
			FUZZ_CHECK(b.kind >= GW_BODY_NONE && b.kind <= GW_BODY_UNBOUNDED);
			FUZZ_CHECK((b.kind == GW_BODY_LENGTH) == (b.length != 0));
			/* A length is the decimal number the head carries. */
			snprintf(digits, sizeof(digits), "%llu", b.length);
			FUZZ_CHECK(b.kind != GW_BODY_LENGTH || strstr(copy, digits));
			free(copy);
		}
		/* The head alone, and with other bytes after it: same verdict, same length. */
		rc2 = gw_head_check(buf, hl, &hl2, &v2);
		FUZZ_CHECK(rc2 == 0 && hl2 == hl);
		/* A shorter prefix is never accepted. */
		{
			size_t cut = (size_t)(fuzz_hash(data, size) % hl);

			rc2 = gw_head_check(buf, cut, &hl2, &v2);
			check_verdict(rc2, &v2);
			FUZZ_CHECK(rc2 != 0);
		}
	} else if (rc == -1) {
		/* More bytes after a refused head do not rescue it. */
		char *more = malloc(size + 3);

		FUZZ_CHECK(more);
		if (size)
			memcpy(more, buf, size);
		memcpy(more + size, "\n\n\n", 3);
		rc2 = gw_head_check(more, size + 3, &hl2, &v2);
		FUZZ_CHECK(rc2 == -1);
		free(more);
	}
	return 0;
}
