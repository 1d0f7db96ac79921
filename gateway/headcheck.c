/*
 * headcheck.c - the strict request-head check (headcheck.h). Pure code.
 */
#include "headcheck.h"

#include <string.h>

static int
refuse(struct gw_head_verdict *v, unsigned status, const char *code, const char *msg)
{
	v->status = status;
	v->code = code;
	v->message = msg;
	return -1;
}

/* RFC 9110 tchar. */
static int
is_tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int
is_hex(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* The next line of [*p, end): its bytes without the CR LF (or LF), or -1 when no LF is left. */
static int
next_line(const char **p, const char *end, const char **line, size_t *n)
{
	const char *lf = memchr(*p, '\n', (size_t)(end - *p));

	if (!lf)
		return -1;
	*line = *p;
	*n = (size_t)(lf - *p);
	if (*n && (*line)[*n - 1] == '\r')
		(*n)--;
	*p = lf + 1;
	return 0;
}

static int
eq_nocase(const char *a, size_t n, const char *lit)
{
	size_t l = strlen(lit);

	if (n != l)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)a[i];

		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		if (c != (unsigned char)lit[i])
			return 0;
	}
	return 1;
}

static int
check_request_line(const char *l, size_t n, struct gw_head_verdict *v)
{
	static const char *const methods[] = { "GET", "POST", "PUT", "DELETE", "OPTIONS", "HEAD", "PATCH" };
	const char *sp1 = memchr(l, ' ', n), *sp2, *t, *end = l + n;
	size_t ml, tl, params = 1;
	int known = 0;

	if (!sp1 || !(sp2 = memchr(sp1 + 1, ' ', (size_t)(end - sp1 - 1))))
		return refuse(v, 400, "bad_request", "malformed request line: METHOD /path HTTP/1.1 expected");
	ml = (size_t)(sp1 - l);
	if (!ml)
		return refuse(v, 400, "bad_request", "malformed request line: no method");
	for (size_t i = 0; i < ml; i++)
		if (!is_tchar((unsigned char)l[i]))
			return refuse(v, 400, "bad_request", "malformed request line: bad method");
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]) && !known; i++)
		known = strlen(methods[i]) == ml && !memcmp(l, methods[i], ml);
	if (!known)
		return refuse(v, 405, "method_not_allowed", "method not supported");
	t = sp1 + 1;
	tl = (size_t)(sp2 - t);
	if (!tl || t[0] != '/')
		return refuse(v, 400, "bad_request", "the request target must be a path starting with /");
	for (size_t i = 0; i < tl; i++) {
		unsigned char c = (unsigned char)t[i];

		if (c <= 0x20 || c >= 0x7f)
			return refuse(v, 400, "bad_request",
				      "the request target holds a byte that must be percent-encoded");
		if (c == '%') {
			if (i + 2 >= tl || !is_hex((unsigned char)t[i + 1]) || !is_hex((unsigned char)t[i + 2]))
				return refuse(v, 400, "bad_request", "malformed percent-encoding in the request target");
			if (t[i + 1] == '0' && t[i + 2] == '0')
				return refuse(v, 400, "bad_request", "%00 in the request target");
		}
		if (c == '&')
			params++;
	}
	if (memchr(t, '?', tl) && params > GW_HEAD_MAX_PARAMS)
		return refuse(v, 400, "bad_request", "too many query parameters");
	if ((size_t)(end - sp2 - 1) != 8 || memcmp(sp2 + 1, "HTTP/1.", 7) ||
	    (sp2[8] != '0' && sp2[8] != '1'))
		return refuse(v, 400, "bad_request", "HTTP/1.0 or HTTP/1.1 expected");
	return 0;
}

int
gw_head_check(const char *buf, size_t len, size_t *head_len, struct gw_head_verdict *v)
{
	const char *p = buf, *end = buf + len, *l;
	size_t n, fields = 0;
	int hosts = 0, lengths = 0, encodings = 0;

	if (next_line(&p, end, &l, &n))
		return 1;
	/* RFC 9112 2.2 lets a server ignore empty lines before the request line; lws 4.1.6 chokes on
	 * them (it closes), so they are refused with a reply instead. */
	if (!n)
		return refuse(v, 400, "bad_request", "an empty line before the request line");
	if (memchr(l, '\r', n))
		return refuse(v, 400, "bad_request", "a bare CR in the request line");
	if (check_request_line(l, n, v))
		return -1;
	for (;;) {
		const char *colon;

		if (next_line(&p, end, &l, &n))
			return 1;
		if (!n) {
			*head_len = (size_t)(p - buf);
			return 0; /* the blank line: the head is complete and acceptable */
		}
		if (++fields > GW_HEAD_MAX_FIELDS)
			return refuse(v, 431, "headers_too_large", "too many header fields");
		if (l[0] == ' ' || l[0] == '\t')
			return refuse(v, 400, "bad_request", "folded header lines are not accepted");
		if (!(colon = memchr(l, ':', n)) || colon == l)
			return refuse(v, 400, "bad_request", "a header line without a name and a colon");
		for (const char *c = l; c < colon; c++)
			if (!is_tchar((unsigned char)*c))
				return refuse(v, 400, "bad_request",
					      "a header name with a space or another byte not allowed in a token");
		for (const char *c = colon + 1; c < l + n; c++) {
			unsigned char b = (unsigned char)*c;

			if (b == '\t')
				continue;
			if (b < 0x20 || b == 0x7f)
				return refuse(v, 400, "bad_request", "a control byte in a header value");
			if (b >= 0x80)
				return refuse(v, 400, "bad_request", "header values must be ASCII");
		}
		n = (size_t)(colon - l);
		hosts += eq_nocase(l, n, "host");
		lengths += eq_nocase(l, n, "content-length");
		encodings += eq_nocase(l, n, "transfer-encoding");
		if (hosts > 1 || lengths > 1 || encodings > 1)
			return refuse(v, 400, "bad_request",
				      "Host, Content-Length and Transfer-Encoding may each appear once");
	}
}

int
gw_head_is_event_stream(const char *buf, size_t len)
{
	const char *sp, *end = buf + len, *t, *q;
	size_t tl;

	if (len < 5 || memcmp(buf, "GET /", 5))
		return 0;
	t = buf + 4;
	if (!(sp = memchr(t, ' ', (size_t)(end - t))))
		return 0;
	q = memchr(t, '?', (size_t)(sp - t));
	tl = (size_t)((q ? q : sp) - t);
	return tl >= 7 && !memcmp(t + tl - 7, "/events", 7);
}

/* The value of the field line [l, l+n) whose name is @p name, trimmed; NULL when the name differs. */
static const char *
field_value(const char *l, size_t n, const char *name, size_t *vlen)
{
	const char *colon = memchr(l, ':', n), *v, *e = l + n;

	if (!colon || !eq_nocase(l, (size_t)(colon - l), name))
		return NULL;
	for (v = colon + 1; v < e && (*v == ' ' || *v == '\t'); v++)
		;
	while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	*vlen = (size_t)(e - v);
	return v;
}

void
gw_head_body(const char *buf, size_t head_len, struct gw_head_body *b)
{
	const char *p = buf, *end = buf + head_len, *l, *v;
	size_t n, vl;
	int has_length = 0, length_ok = 1;
	unsigned long long length = 0;

	memset(b, 0, sizeof(*b));
	if (next_line(&p, end, &l, &n))
		return; /* not an accepted head */
	while (!next_line(&p, end, &l, &n) && n) {
		if ((v = field_value(l, n, "transfer-encoding", &vl))) {
			b->kind = GW_BODY_UNBOUNDED;
			return;
		}
		if ((v = field_value(l, n, "upgrade", &vl))) {
			if (!eq_nocase(v, vl, "websocket")) {
				b->kind = GW_BODY_UNBOUNDED; /* h2c, or anything lws may switch to */
				return;
			}
			b->kind = GW_BODY_UPGRADE;
		}
		if ((v = field_value(l, n, "content-length", &vl))) {
			has_length = 1;
			length_ok = vl > 0 && vl <= 18;
			for (size_t i = 0; i < vl && length_ok; i++) {
				if (v[i] < '0' || v[i] > '9')
					length_ok = 0;
				else
					length = length * 10 + (unsigned long long)(v[i] - '0');
			}
		}
	}
	if (b->kind == GW_BODY_UPGRADE)
		return; /* lws upgrades without reading a body */
	if (has_length && !length_ok) {
		b->kind = GW_BODY_UNBOUNDED;
	} else if (has_length && length) {
		b->kind = GW_BODY_LENGTH;
		b->length = length;
	}
}
