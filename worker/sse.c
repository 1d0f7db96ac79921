/*
 * sse.c - event-stream parsing (see sse.h). Lines end in CRLF, LF or CR; a line "field: value"
 * (one space after the colon dropped); ':' lines are comments; an empty line dispatches.
 */
#include "sse.h"

#include <string.h>

void
wk_sse_init(struct wk_sse *s, size_t max_line)
{
	memset(s, 0, sizeof(*s));
	s->max_line = max_line;
}

void
wk_sse_free(struct wk_sse *s)
{
	wk_buf_free(&s->line);
	wk_buf_free(&s->data);
	wk_buf_free(&s->event);
	wk_buf_free(&s->id);
}

/* One complete line (without its terminator). */
static int
take_line(struct wk_sse *s, const char *p, size_t n, wk_sse_fn fn, void *ctx)
{
	const char *colon, *v;
	size_t flen, vlen;

	if (n == 0) {
		struct wk_sse_event ev;
		int rc;

		if (!s->has_data) {
			wk_buf_reset(&s->event);
			return 0;
		}
		ev.event = s->event.len ? s->event.p : "message";
		ev.data = s->data.p ? s->data.p : "";
		ev.data_len = s->data.len;
		ev.id = s->id.p ? s->id.p : "";
		rc = fn(ctx, &ev);
		wk_buf_reset(&s->data);
		wk_buf_reset(&s->event);
		s->has_data = 0;
		return rc;
	}
	if (p[0] == ':')
		return 0;
	colon = memchr(p, ':', n);
	flen = colon ? (size_t)(colon - p) : n;
	v = colon ? colon + 1 : p + n;
	vlen = (size_t)(p + n - v);
	if (vlen && v[0] == ' ') {
		v++;
		vlen--;
	}
	if (flen == 4 && !memcmp(p, "data", 4)) {
		if (s->data.len + vlen + 1 > s->max_line)
			return -1;
		if (s->has_data)
			wk_buf_append(&s->data, "\n", 1);
		wk_buf_append(&s->data, v, vlen);
		s->has_data = 1;
	} else if (flen == 5 && !memcmp(p, "event", 5)) {
		wk_buf_reset(&s->event);
		wk_buf_append(&s->event, v, vlen);
	} else if (flen == 2 && !memcmp(p, "id", 2)) {
		if (!memchr(v, '\0', vlen)) {
			wk_buf_reset(&s->id);
			wk_buf_append(&s->id, v, vlen);
		}
	}
	/* retry: and unknown fields are ignored, as the standard says. */
	return 0;
}

int
wk_sse_feed(struct wk_sse *s, const char *p, size_t n, wk_sse_fn fn, void *ctx)
{
	const char *end = p + n;

	while (p < end) {
		const char *q = p;
		int rc;

		if (s->after_cr) {
			s->after_cr = 0;
			if (*p == '\n') {
				p++;
				continue;
			}
		}
		while (q < end && *q != '\n' && *q != '\r')
			q++;
		if (q == end) {
			if (s->line.len + (size_t)(q - p) > s->max_line)
				return -1;
			wk_buf_append(&s->line, p, (size_t)(q - p));
			return 0;
		}
		if (s->line.len) {
			if (s->line.len + (size_t)(q - p) > s->max_line)
				return -1;
			wk_buf_append(&s->line, p, (size_t)(q - p));
			rc = take_line(s, s->line.p, s->line.len, fn, ctx);
			wk_buf_reset(&s->line);
		} else {
			if ((size_t)(q - p) > s->max_line)
				return -1;
			rc = take_line(s, p, (size_t)(q - p), fn, ctx);
		}
		s->after_cr = *q == '\r';
		p = q + 1;
		if (rc)
			return rc;
	}
	return 0;
}
