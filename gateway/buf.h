/*
 * buf.h - a growable byte buffer with reserved headroom in front (for LWS_PRE).
 *
 * Service thread (and the pure parsers, which any fuzz target may call). Every lws_write needs
 * LWS_PRE writable bytes before its payload; a gw_buf created with that headroom lets a reply or a
 * batch of events be formatted in place and written with one call, without a copy.
 */
#ifndef GW_BUF_H
#define GW_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

struct gw_buf {
	unsigned char *mem; /* allocation: pre bytes of headroom, then cap bytes of payload; NULL when empty */
	size_t pre;         /* headroom kept in front of the payload */
	size_t len;         /* payload bytes in use */
	size_t cap;         /* payload bytes allocated */
	size_t mark;        /* a payload position its owner remembers (reply.c: where a built
			     * response's head ends and its body begins); 0 after a reset */
};

/** @brief An empty buffer that will keep @p pre bytes of headroom. Allocates nothing. */
void gw_buf_init(struct gw_buf *b, size_t pre);
/** @brief Release the memory; the buffer is empty and reusable afterwards. Accepts a zeroed struct. */
void gw_buf_free(struct gw_buf *b);
/** @brief Make room for @p n more payload bytes. Aborts on OOM (xalloc.h). */
void gw_buf_reserve(struct gw_buf *b, size_t n);
void gw_buf_append(struct gw_buf *b, const void *p, size_t n);
void gw_buf_puts(struct gw_buf *b, const char *s);
void gw_buf_putc(struct gw_buf *b, char c);
void gw_buf_u64(struct gw_buf *b, uint64_t v);
/** @brief Append @p v in lowercase hex, zero-padded to at least @p min_digits (1..16). */
void gw_buf_x64(struct gw_buf *b, uint64_t v, unsigned min_digits);
void gw_buf_printf(struct gw_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** @brief Append @p s as a JSON string literal (quotes included), escaping as RFC 8259 requires.
 *  Bytes >= 0x80 are copied as they are: callers pass valid UTF-8. */
void gw_buf_json_str(struct gw_buf *b, const char *s, size_t n);

/* The payload and its end; the headroom is gw_buf_data(b) - b->pre .. gw_buf_data(b). */
static inline unsigned char *
gw_buf_data(const struct gw_buf *b)
{
	return b->mem ? b->mem + b->pre : NULL;
}

static inline void
gw_buf_reset(struct gw_buf *b)
{
	b->len = 0;
	b->mark = 0;
}

#endif /* GW_BUF_H */
