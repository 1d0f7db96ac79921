/*
 * reply.c - whole HTTP responses in one buffer: status line, headers (lws builds them, adding its
 * security headers when configured), CORS, body. Service thread.
 *
 * One lws_write per response is the single largest win measured for publish latency and
 * throughput (lws-performance.md lesson 3), so nothing here writes headers separately on
 * HTTP/1.1. An HTTP/2 stream needs a HEADERS frame and DATA frames: the same buffer is built (lws
 * encodes the head as HPACK for a stream) and h2.c sends it in frames.
 */
#include "http_int.h"

#include <string.h>

#include "log.h"

int
gw_reply_cors(struct gw *gw, struct lws *wsi, unsigned char **p, unsigned char *end)
{
	const struct gw_config *cfg = gw->cfg;
	char origin[300];
	int n, allowed = gw->cors_any;

	n = lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN);
	if (n <= 0)
		return 0; /* not a cross-origin request (or the header table is gone): nothing to add */
	for (size_t i = 0; !allowed && i < cfg->n_cors_origins; i++)
		allowed = !strcmp(cfg->cors_origins[i], origin);
	if (!allowed)
		return 0;
	if (lws_add_http_header_by_name(wsi, (const unsigned char *)"access-control-allow-origin:",
					(const unsigned char *)origin, n, p, end) ||
	    lws_add_http_header_by_name(wsi, (const unsigned char *)"vary:",
					(const unsigned char *)"origin", 6, p, end) ||
	    lws_add_http_header_by_name(wsi, (const unsigned char *)"access-control-expose-headers:",
					(const unsigned char *)"litegate-gap", 12, p, end))
		return -1;
	return 0;
}

int
gw_reply_build(struct gw *gw, struct lws *wsi, struct gw_buf *out, unsigned status,
	       const char *ctype, const void *body, size_t len, const char *const *extra,
	       unsigned flags)
{
	unsigned char *start, *p, *end;
	size_t room = 2048;

	for (const char *const *e = extra; e && e[0]; e += 2)
		room += strlen(e[0]) + strlen(e[1]) + 4;
	gw_buf_reset(out);
	gw_buf_reserve(out, room + len);
	start = p = gw_buf_data(out);
	end = start + room;
	if (lws_add_http_common_headers(wsi, status, ctype, len, &p, end))
		goto fail;
	for (const char *const *e = extra; e && e[0]; e += 2)
		if (lws_add_http_header_by_name(wsi, (const unsigned char *)e[0],
						(const unsigned char *)e[1], (int)strlen(e[1]), &p, end))
			goto fail;
	if (gw_reply_cors(gw, wsi, &p, end))
		goto fail;
	/* HTTP/2 forbids connection-specific headers (RFC 9113 8.2.2): a stream just ends. */
	if ((flags & GW_REPLY_CLOSE) && !gw_is_h2(wsi) &&
	    lws_add_http_header_by_name(wsi, (const unsigned char *)"connection:",
					(const unsigned char *)"close", 5, &p, end))
		goto fail;
	if (lws_finalize_http_header(wsi, &p, end))
		goto fail;
	if (len)
		memcpy(p, body, len);
	out->mark = (size_t)(p - start);
	out->len = out->mark + len;
	if (status >= 400)
		gw->m.http_errors++;
	if (status == 413)
		gw->m.limit_hits[GW_LIMIT_BODY_BYTES]++;
	return 0;
fail:
	LOG_ERR("could not build the headers of a %u response", status);
	return -1;
}

int
gw_reply_error(struct gw *gw, struct lws *wsi, struct gw_buf *out, const struct gw_error *e,
	       const char *extra_members, const char *const *extra_headers, unsigned flags)
{
	static const char *const retry[] = { "retry-after:", "1", NULL };
	char secs[16];
	const char *const retry_n[] = { "retry-after:", secs, NULL };
	struct gw_buf body;
	int rc;

	gw_buf_init(&body, 0);
	gw_buf_puts(&body, "{\"error\":{\"code\":");
	gw_buf_json_str(&body, e->code, strlen(e->code));
	gw_buf_puts(&body, ",\"message\":");
	gw_buf_json_str(&body, e->message, strlen(e->message));
	gw_buf_putc(&body, '}');
	if (extra_members)
		gw_buf_puts(&body, extra_members);
	gw_buf_puts(&body, "}\n");
	rc = gw_reply_build(gw, wsi, out, e->status, "application/json", gw_buf_data(&body), body.len,
			    extra_headers ? extra_headers
			    : (e->status == 429 || e->status == 503) && e->retry_after_s
				    ? (snprintf(secs, sizeof(secs), "%u", e->retry_after_s), retry_n)
			    : e->status == 429 || e->status == 503 ? retry : NULL,
			    flags);
	gw_buf_free(&body);
	return rc;
}

int
gw_reply_write(struct lws *wsi, struct gw_buf *out)
{
	int n = lws_write(wsi, gw_buf_data(out), out->len, LWS_WRITE_HTTP_FINAL);

	/* A short send is not an error: lws keeps the rest and sends it before anything else. */
	return n < 0 ? -1 : 0;
}

int
gw_reply_send(struct lws *wsi, struct gw_buf *out, unsigned flags)
{
	if (gw_is_h2(wsi))
		return gw_h2_reply(wsi, out);
	if (gw_reply_write(wsi, out) || (flags & GW_REPLY_CLOSE))
		return -1;
	/* May rebind the wsi and free the pss (through DROP_PROTOCOL): touch nothing after it. */
	return lws_http_transaction_completed(wsi) ? -1 : 0;
}
