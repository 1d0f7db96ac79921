/*
 * buf.c - growable byte buffer with headroom. Service thread / pure code (see buf.h).
 */
#include "buf.h"

#include <stdio.h>
#include <string.h>

#include "xalloc.h"

void
gw_buf_init(struct gw_buf *b, size_t pre)
{
	b->mem = NULL;
	b->pre = pre;
	b->len = 0;
	b->cap = 0;
}

void
gw_buf_free(struct gw_buf *b)
{
	free(b->mem);
	b->mem = NULL;
	b->len = 0;
	b->cap = 0;
}

void
gw_buf_reserve(struct gw_buf *b, size_t n)
{
	size_t want = b->len + n, cap = b->cap ? b->cap : 256;

	if (b->mem && want <= b->cap)
		return;
	while (cap < want)
		cap *= 2;
	b->mem = xrealloc(b->mem, b->pre + cap);
	b->cap = cap;
}

void
gw_buf_append(struct gw_buf *b, const void *p, size_t n)
{
	if (!n)
		return;
	gw_buf_reserve(b, n);
	memcpy(b->mem + b->pre + b->len, p, n);
	b->len += n;
}

void
gw_buf_puts(struct gw_buf *b, const char *s)
{
	gw_buf_append(b, s, strlen(s));
}

void
gw_buf_putc(struct gw_buf *b, char c)
{
	gw_buf_reserve(b, 1);
	b->mem[b->pre + b->len++] = (unsigned char)c;
}

void
gw_buf_u64(struct gw_buf *b, uint64_t v)
{
	char tmp[24];
	size_t i = sizeof(tmp);

	/* Hot path (every SSE id:, every offset): no printf. */
	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	gw_buf_append(b, tmp + i, sizeof(tmp) - i);
}

void
gw_buf_x64(struct gw_buf *b, uint64_t v, unsigned min_digits)
{
	static const char digits[] = "0123456789abcdef";
	char tmp[16];
	size_t i = sizeof(tmp);

	/* Every receipt has two (consume.c): no printf. */
	do {
		tmp[--i] = digits[v & 15];
		v >>= 4;
	} while (v);
	while (i > 0 && sizeof(tmp) - i < min_digits)
		tmp[--i] = '0';
	gw_buf_append(b, tmp + i, sizeof(tmp) - i);
}

void
gw_buf_printf(struct gw_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n <= 0)
		return;
	gw_buf_reserve(b, (size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf((char *)b->mem + b->pre + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void
gw_buf_json_str(struct gw_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t run = 0;

	gw_buf_reserve(b, n + 2);
	gw_buf_putc(b, '"');
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		const char *esc = NULL;
		char u[6];

		if (c >= 0x20 && c != '"' && c != '\\') {
			run++;
			continue;
		}
		gw_buf_append(b, s + i - run, run);
		run = 0;
		switch (c) {
		case '"': esc = "\\\""; break;
		case '\\': esc = "\\\\"; break;
		case '\n': esc = "\\n"; break;
		case '\r': esc = "\\r"; break;
		case '\t': esc = "\\t"; break;
		case '\b': esc = "\\b"; break;
		case '\f': esc = "\\f"; break;
		default:
			u[0] = '\\';
			u[1] = 'u';
			u[2] = '0';
			u[3] = '0';
			u[4] = hex[c >> 4];
			u[5] = hex[c & 15];
			gw_buf_append(b, u, 6);
			continue;
		}
		gw_buf_puts(b, esc);
	}
	gw_buf_append(b, s + n - run, run);
	gw_buf_putc(b, '"');
}
