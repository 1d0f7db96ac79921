/*
 * chunked.c - strict incremental chunked-body decoder. Pure code (see chunked.h).
 *
 * Grammar (RFC 9112 7.1), with the limits of chunked.h:
 *   chunked-body = *chunk last-chunk trailer-section CRLF
 *   chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *   last-chunk   = 1*("0") [ chunk-ext ] CRLF
 */
#include "chunked.h"

enum {
	ST_SIZE,        /* hex digits of a chunk size */
	ST_EXT,         /* after ';': extension text up to CR */
	ST_SIZE_LF,     /* CR seen after the size line: need LF */
	ST_DATA,        /* chunk data */
	ST_DATA_CR,     /* need CR after chunk data */
	ST_DATA_LF,     /* need LF after chunk data */
	ST_TRAILER,     /* start of a trailer line, or the final CRLF */
	ST_TRAILER_TXT, /* inside a trailer line */
	ST_TRAILER_LF,  /* CR seen after a trailer line: need LF */
	ST_END_LF,      /* CR of the final empty line seen: need LF */
	ST_DONE,
	ST_ERROR,
};

void
gw_chunked_init(struct gw_chunked *c, uint64_t max_chunk)
{
	c->state = ST_SIZE;
	c->size = 0;
	c->digits = 0;
	c->line = 0;
	c->trailers = 0;
	c->max_chunk = max_chunk;
	c->total = 0;
	c->err = NULL;
}

static int
hexval(unsigned char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* Visible characters, space and tab: what a chunk extension or a trailer line may hold. */
static int
is_text(unsigned char ch)
{
	return ch == '\t' || (ch >= 0x20 && ch != 0x7f);
}

static int
fail(struct gw_chunked *c, const char *why)
{
	c->state = ST_ERROR;
	c->err = why;
	return GW_CHUNKED_ERROR;
}

int
gw_chunked_feed(struct gw_chunked *c, const char *in, size_t len, size_t *used,
		gw_chunked_out_fn out, void *ctx)
{
	size_t i = 0;
	int rc = GW_CHUNKED_MORE;

	while (i < len && c->state != ST_DONE && c->state != ST_ERROR) {
		unsigned char ch = (unsigned char)in[i];

		switch (c->state) {
		case ST_SIZE: {
			int v = hexval(ch);

			if (v >= 0) {
				if (++c->digits > 16)
					return *used = i, fail(c, "chunk size has too many digits");
				c->size = (c->size << 4) | (uint64_t)v;
				if (c->size > c->max_chunk)
					return *used = i, fail(c, "chunk larger than the limit");
				c->line++;
				i++;
				break;
			}
			if (!c->digits)
				return *used = i, fail(c, "chunk size expected");
			if (ch == ';') {
				c->state = ST_EXT;
				c->line++;
				i++;
			} else if (ch == '\r') {
				c->state = ST_SIZE_LF;
				i++;
			} else {
				return *used = i, fail(c, "bad character in chunk size");
			}
			break;
		}
		case ST_EXT:
			if (ch == '\r') {
				c->state = ST_SIZE_LF;
			} else if (!is_text(ch)) {
				return *used = i, fail(c, "bad character in chunk extension");
			} else if (++c->line > GW_CHUNKED_LINE_MAX) {
				return *used = i, fail(c, "chunk extension too long");
			}
			i++;
			break;
		case ST_SIZE_LF:
			if (ch != '\n')
				return *used = i, fail(c, "CRLF expected after chunk size");
			i++;
			c->line = 0;
			c->digits = 0;
			c->state = c->size ? ST_DATA : ST_TRAILER;
			break;
		case ST_DATA: {
			size_t n = len - i;

			if ((uint64_t)n > c->size)
				n = (size_t)c->size;
			if (out && out(ctx, in + i, n)) {
				c->size -= n;
				c->total += n;
				*used = i + n;
				return GW_CHUNKED_ABORT;
			}
			c->size -= n;
			c->total += n;
			i += n;
			if (!c->size)
				c->state = ST_DATA_CR;
			break;
		}
		case ST_DATA_CR:
			if (ch != '\r')
				return *used = i, fail(c, "CRLF expected after chunk data");
			c->state = ST_DATA_LF;
			i++;
			break;
		case ST_DATA_LF:
			if (ch != '\n')
				return *used = i, fail(c, "CRLF expected after chunk data");
			c->state = ST_SIZE;
			i++;
			break;
		case ST_TRAILER:
			if (ch == '\r') {
				c->state = ST_END_LF;
				i++;
				break;
			}
			c->line = 0;
			c->state = ST_TRAILER_TXT;
			/* fallthrough */
		case ST_TRAILER_TXT:
			if (ch == '\r') {
				c->state = ST_TRAILER_LF;
			} else if (!is_text(ch)) {
				return *used = i, fail(c, "bad character in trailer");
			} else if (++c->line > GW_CHUNKED_LINE_MAX) {
				return *used = i, fail(c, "trailer line too long");
			} else if (++c->trailers > GW_CHUNKED_TRAILERS_MAX) {
				return *used = i, fail(c, "trailers too long");
			}
			i++;
			break;
		case ST_TRAILER_LF:
			if (ch != '\n')
				return *used = i, fail(c, "CRLF expected after trailer");
			c->state = ST_TRAILER;
			i++;
			break;
		case ST_END_LF:
			if (ch != '\n')
				return *used = i, fail(c, "CRLF expected at end of body");
			c->state = ST_DONE;
			i++;
			break;
		}
	}
	*used = i;
	if (c->state == ST_DONE)
		rc = GW_CHUNKED_DONE;
	else if (c->state == ST_ERROR)
		rc = GW_CHUNKED_ERROR;
	return rc;
}
