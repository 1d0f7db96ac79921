/*
 * http.c - the "gw-http" protocol: routes every API request under /v1, /healthz and /metrics,
 * answers the simple ones at once (topic info, history, health, metrics, CORS preflight, errors),
 * runs DELETE on the helper thread (bg.c), and hands publishes to publish.c and event streams to
 * sse.c. Service thread.
 */
#include "http_int.h"

#include <string.h>

#include "auth.h"
#include "bg.h"
#include "conn.h"
#include "h2conn.h"
#include "json.h"
#include "log.h"
#include "xalloc.h"

static struct gw_buf scratch = { NULL, LWS_PRE, 0, 0 };

struct gw_buf *
gw_scratch(void)
{
	gw_buf_reset(&scratch);
	return &scratch;
}

size_t
gw_http_pss_size(void)
{
	return sizeof(struct gw_http_pss);
}

void
gw_put_payload(struct gw_buf *b, const void *data, size_t len)
{
	size_t pos = 0;
	enum gw_json_type t;

	if (len && !gw_json_skip(data, len, &pos, &t, NULL)) {
		gw_json_ws(data, len, &pos);
		if (pos == len) {
			gw_buf_append(b, data, len);
			return;
		}
	}
	if (gw_utf8_valid(data, len))
		gw_buf_json_str(b, data, len);
	else
		gw_buf_puts(b, "null");
}

/* Send @p out, then finish the HTTP transaction (keep-alive) or close (reply.c). */
static int
send_and_finish(struct lws *wsi, struct gw_buf *out, unsigned flags)
{
	return gw_reply_send(wsi, out, flags);
}

int
gw_http_fail(struct gw *gw, struct lws *wsi, const struct gw_error *e, unsigned flags)
{
	struct gw_buf *out = gw_scratch();

	if (gw_reply_error(gw, wsi, out, e, NULL, NULL, flags))
		return -1;
	return send_and_finish(wsi, out, flags);
}

static int
reply_json(struct gw *gw, struct lws *wsi, unsigned status, struct gw_buf *body)
{
	struct gw_buf *out = gw_scratch();

	if (gw_reply_build(gw, wsi, out, status, "application/json", gw_buf_data(body), body->len,
			   NULL, 0))
		return -1;
	return send_and_finish(wsi, out, 0);
}

/* ---- Request line ------------------------------------------------------------------------------ */

static const struct {
	enum lws_token_indexes tok;
	enum gw_method m;
} methods[] = {
	{ WSI_TOKEN_GET_URI, GW_M_GET },        { WSI_TOKEN_POST_URI, GW_M_POST },
	{ WSI_TOKEN_DELETE_URI, GW_M_DELETE },  { WSI_TOKEN_OPTIONS_URI, GW_M_OPTIONS },
	{ WSI_TOKEN_HEAD_URI, GW_M_HEAD },      { WSI_TOKEN_PUT_URI, GW_M_PUT },
	{ WSI_TOKEN_PATCH_URI, GW_M_PATCH },
};

/* The method and the (decoded, query-less) path; 0 when the method is none of ours. */
static enum gw_method
request_line(struct lws *wsi, char *path, int pathsz, int *pathlen)
{
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		if (lws_hdr_total_length(wsi, methods[i].tok) > 0) {
			*pathlen = lws_hdr_copy(wsi, path, pathsz, methods[i].tok);
			return *pathlen > 0 ? methods[i].m : 0;
		}
	}
	return 0;
}

/* lws splits the query at '&' into fragments (already percent-decoded); join them again. */
static int
query_string(struct lws *wsi, char *q, size_t qsz)
{
	size_t len = 0;

	for (int i = 0; i < 32; i++) {
		char frag[256];
		int n = lws_hdr_copy_fragment(wsi, frag, sizeof(frag), WSI_TOKEN_HTTP_URI_ARGS, i);

		if (n < 0 && lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i) > 0)
			continue; /* longer than any parameter we read (an access_token): not ours */
		if (n < 0)
			break;
		if (n >= 13 && !memcmp(frag, "access_token=", 13))
			continue; /* auth.c reads it */
		if (len + (size_t)n + 2 > qsz)
			return -1;
		if (len)
			q[len++] = '&';
		memcpy(q + len, frag, (size_t)n);
		len += (size_t)n;
	}
	q[len] = '\0';
	return (int)len;
}

/* ---- Simple endpoints --------------------------------------------------------------------------- */

static int
topic_get(struct gw *gw, struct lws *wsi, const struct gw_route *r)
{
	struct gw_buf body;
	struct gw_error e;
	eng_topic_info info;
	int rc;

	if ((rc = eng_topic_info_get(gw->db, r->topic, &info)) != 0) {
		gw_error_from_eng(rc, &e);
		if (rc == ENG_ENOTFOUND)
			gw_error_set(&e, 404, "not_found", "no lite topic %s", r->topic);
		return gw_http_fail(gw, wsi, &e, 0);
	}
	gw_buf_init(&body, 0);
	gw_buf_printf(&body,
		      "{\"topic\":\"%s\",\"first_offset\":%llu,\"next_offset\":%llu,"
		      "\"created\":%llu,\"last_write\":%llu}\n",
		      r->topic, (unsigned long long)info.first_offset,
		      (unsigned long long)info.next_offset, (unsigned long long)info.created_ms,
		      (unsigned long long)info.last_write_ms);
	rc = reply_json(gw, wsi, 200, &body);
	gw_buf_free(&body);
	return rc;
}

/* A DELETE in flight. Heap, not pss: the connection may close before the helper thread is done. */
struct gw_del {
	struct gw_job job;
	struct gw *gw;
	struct lws *wsi;               /* NULL once the request went away */
	char topic[ENG_TOPIC_MAX + 1];
	int rc;                        /* eng_topic_delete's result */
	int finished;                  /* del_done ran (with the request still there) */
	int ready;                     /* reply built, waiting for WRITEABLE */
	struct gw_buf reply;
};

static void
del_work(struct gw_job *job)
{
	struct gw_del *d = (struct gw_del *)job;

	d->rc = eng_topic_delete(d->gw->db, d->topic);
}

static void
del_free(struct gw_del *d)
{
	gw_buf_free(&d->reply);
	free(d);
}

static void
del_done(struct gw_job *job)
{
	struct gw_del *d = (struct gw_del *)job;
	struct gw *gw = d->gw;
	struct gw_error e;
	char body[256];
	int n, rc;

	if (!d->wsi) {
		del_free(d);
		return;
	}
	d->finished = 1;
	if (d->rc) {
		gw_error_from_eng(d->rc, &e);
		if (d->rc == ENG_ENOTFOUND)
			gw_error_set(&e, 404, "not_found", "no lite topic %s", d->topic);
		rc = gw_reply_error(gw, d->wsi, &d->reply, &e, NULL, NULL, 0);
	} else {
		n = snprintf(body, sizeof(body), "{\"topic\":\"%s\",\"deleted\":true}\n", d->topic);
		rc = gw_reply_build(gw, d->wsi, &d->reply, 200, "application/json", body, (size_t)n, NULL, 0);
	}
	if (rc) {
		lws_set_timeout(d->wsi, PENDING_TIMEOUT_KILLED_BY_PARENT, LWS_TO_KILL_ASYNC);
		return;
	}
	d->ready = 1;
	lws_callback_on_writable(d->wsi);
}

/*
 * eng_topic_delete() waits for the writer thread (a tombstone is logged and synced), so it runs on
 * the helper thread (bg.c) and the reply is written when it is done: the service thread never
 * waits on disk.
 */
static int
topic_delete(struct gw *gw, struct lws *wsi, struct gw_http_pss *pss, const struct gw_route *r)
{
	struct gw_del *d = xcalloc(1, sizeof(*d));

	d->job.work = del_work;
	d->job.done = del_done;
	d->gw = gw;
	d->wsi = wsi;
	memcpy(d->topic, r->topic, sizeof(d->topic));
	gw_buf_init(&d->reply, LWS_PRE);
	pss->kind = GW_HK_DEL;
	pss->del = d;
	gw->inflight++;
	gw_bg_submit(&d->job);
	return 0;
}

static int
del_writeable(struct gw *gw, struct lws *wsi, struct gw_http_pss *pss)
{
	struct gw_del *d = pss->del;
	int rc;

	if (!d->ready)
		return 0;
	pss->del = NULL;
	pss->kind = GW_HK_NONE;
	gw->inflight--;
	rc = gw_reply_send(wsi, &d->reply, 0);
	del_free(d);
	return rc;
}

static void
del_detach(struct gw *gw, struct gw_http_pss *pss)
{
	struct gw_del *d = pss->del;

	pss->del = NULL;
	if (!d)
		return;
	gw->inflight--;
	if (d->finished)
		del_free(d); /* del_done already ran */
	else
		d->wsi = NULL; /* del_done will free it */
}

static int
history(struct gw *gw, struct lws *wsi, const struct gw_route *r, const struct gw_query *q)
{
	const struct gw_config *cfg = gw->cfg;
	eng_read_result res;
	struct gw_buf body;
	struct gw_error e;
	uint64_t from = 0, limit = 100, next;
	int rc;

	if (q->has_limit) {
		if (q->limit < 1 || q->limit > cfg->history_max) {
			gw_error_set(&e, 400, "bad_request", "limit must be between 1 and %zu",
				     cfg->history_max);
			return gw_http_fail(gw, wsi, &e, 0);
		}
		limit = q->limit;
	}
	if (q->has_from && !q->from_tail)
		from = q->from;
	if (q->from_tail) {
		eng_topic_info info;

		if ((rc = eng_topic_info_get(gw->db, r->topic, &info)) == 0)
			from = info.next_offset;
	}
	memset(&res, 0, sizeof(res));
	if ((rc = eng_read(gw->db, r->topic, from, (size_t)limit, cfg->history_max_bytes, &res)) != 0) {
		gw_error_from_eng(rc, &e);
		if (rc == ENG_ENOTFOUND)
			gw_error_set(&e, 404, "not_found", "no lite topic %s", r->topic);
		return gw_http_fail(gw, wsi, &e, 0);
	}
	if (res.n && res.n < limit && res.next < res.next_offset)
		gw->m.limit_hits[GW_LIMIT_HISTORY]++; /* the page stopped at history_max_bytes */
	gw_buf_init(&body, 0);
	gw_buf_printf(&body, "{\"topic\":\"%s\",\"first_offset\":%llu,\"next_offset\":%llu,\"messages\":[",
		      r->topic, (unsigned long long)res.first_offset,
		      (unsigned long long)res.next_offset);
	for (size_t i = 0; i < res.n; i++) {
		const eng_msg_view *m = &res.msgs[i];

		gw_buf_puts(&body, i ? ",{\"offset\":" : "{\"offset\":");
		gw_buf_u64(&body, m->offset);
		gw_buf_puts(&body, ",\"event\":");
		gw_buf_json_str(&body, m->event, strlen(m->event));
		gw_buf_puts(&body, ",\"data\":");
		gw_put_payload(&body, m->data, m->len);
		gw_buf_puts(&body, ",\"time\":");
		gw_buf_u64(&body, m->time_ms);
		if (m->priority != ENG_PRIORITY_NONE)
			gw_buf_printf(&body, ",\"priority\":%d", m->priority);
		gw_buf_putc(&body, '}');
	}
	/* Where to continue: after the last message, or the clamped start when nothing came back. */
	if (res.n)
		next = res.next;
	else if (from > res.next_offset)
		next = res.next_offset;
	else
		next = from < res.first_offset ? res.first_offset : from;
	gw_buf_puts(&body, "],\"next\":");
	gw_buf_u64(&body, next);
	gw_buf_puts(&body, "}\n");
	eng_read_free(&res);
	rc = reply_json(gw, wsi, 200, &body);
	gw_buf_free(&body);
	return rc;
}

static int
healthz(struct gw *gw, struct lws *wsi)
{
	struct gw_buf body;
	eng_stats st;
	unsigned status = 200;
	int rc;

	gw_buf_init(&body, 0);
	memset(&st, 0, sizeof(st));
	if (gw->db)
		eng_stats_get(gw->db, &st);
	if (gw->state != GW_RUNNING) {
		status = 503;
		gw_buf_puts(&body, "{\"status\":\"shutting_down\"}\n");
	} else if (st.failed) {
		status = 503;
		gw_buf_puts(&body, "{\"status\":\"degraded\",\"storage\":");
		gw_buf_json_str(&body, eng_strerror(st.failed), strlen(eng_strerror(st.failed)));
		gw_buf_puts(&body, "}\n");
	} else {
		gw_buf_puts(&body, "{\"status\":\"ok\"}\n");
	}
	rc = reply_json(gw, wsi, status, &body);
	gw_buf_free(&body);
	return rc;
}

static int
metrics(struct gw *gw, struct lws *wsi)
{
	struct gw_buf body, *out = gw_scratch();
	eng_stats st;
	int rc = -1;

	memset(&st, 0, sizeof(st));
	if (gw->db)
		eng_stats_get(gw->db, &st);
	gw_buf_init(&body, 0);
	gw_metrics_render(&gw->m, &st, &body);
	if (!gw_reply_build(gw, wsi, out, 200, "text/plain; version=0.0.4; charset=utf-8",
			    gw_buf_data(&body), body.len, NULL, 0))
		rc = send_and_finish(wsi, out, 0);
	gw_buf_free(&body);
	return rc;
}

static int
preflight(struct gw *gw, struct lws *wsi, enum gw_route_kind kind)
{
	const char *const hdrs[] = {
		"access-control-allow-methods:", gw_route_allow(kind),
		"access-control-allow-headers:", "content-type, last-event-id, authorization, idempotency-key, "
						 "litegate-expected-offset",
		"access-control-max-age:", "600",
		NULL,
	};
	struct gw_buf *out = gw_scratch();

	if (gw_reply_build(gw, wsi, out, 204, NULL, NULL, 0, hdrs, 0))
		return -1;
	return send_and_finish(wsi, out, 0);
}

/* ---- Routing ------------------------------------------------------------------------------------ */

static int
route_request(struct gw *gw, struct lws *wsi, struct gw_http_pss *pss)
{
	char path[512], query[1024];
	struct gw_route r;
	struct gw_query q;
	struct gw_error e;
	enum gw_method m;
	int pathlen = 0, qlen, rc;
	unsigned close = 0;

	gw->m.http_requests++;
	/* timeouts.request_s: a Content-Length body that trickles in is cut off (see body_late()). */
	pss->body_deadline_us = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0
		? gw_mono_us() + (uint64_t)gw->cfg->request_timeout_s * 1000000u : 0;
	m = request_line(wsi, path, sizeof(path), &pathlen);
	/* A request that may carry a body we will not read cannot keep its connection. */
	if (m == GW_M_POST || m == GW_M_PUT || m == GW_M_PATCH)
		close = GW_REPLY_CLOSE;
	if (!m) {
		gw_error_set(&e, 405, "method_not_allowed", "method not supported");
		return gw_http_fail(gw, wsi, &e, GW_REPLY_CLOSE);
	}
	if (gw_pull_match(path, (size_t)pathlen)) /* /v1/groups: consumer groups (pull.c) */
		return gw_pull_start(gw, wsi, pss, m, path, (size_t)pathlen);
	if (gw_route_parse(path, (size_t)pathlen, &r) == GW_R_NOTFOUND) {
		gw_error_set(&e, 404, "not_found", "no such route");
		return gw_http_fail(gw, wsi, &e, close);
	}
	if (!(gw_route_methods(r.kind) & m)) {
		const char *const allow[] = { "allow:", gw_route_allow(r.kind), NULL };
		struct gw_buf *out = gw_scratch();

		gw_error_set(&e, 405, "method_not_allowed", "allowed: %s", gw_route_allow(r.kind));
		if (gw_reply_error(gw, wsi, out, &e, NULL, allow, close))
			return -1;
		return send_and_finish(wsi, out, close);
	}
	if (m == GW_M_OPTIONS)
		return preflight(gw, wsi, r.kind);
	if (r.bad) {
		gw_error_set(&e, 400, "bad_name", "%s", r.bad);
		return gw_http_fail(gw, wsi, &e, close);
	}
	if ((qlen = query_string(wsi, query, sizeof(query))) < 0) {
		gw_error_set(&e, 400, "bad_request", "query string too long");
		return gw_http_fail(gw, wsi, &e, close);
	}
	if (gw_query_parse(query, (size_t)qlen, &q)) {
		if (!strcmp(q.bad, "priority"))
			gw_error_set(&e, 400, "bad_request",
				     "query parameter priority must be an integer from 0 to 9");
		else
			gw_error_set(&e, 400, "bad_request",
				     "query parameter %s must be a non-negative integer%s", q.bad,
				     !strcmp(q.bad, "from") ? " or \"tail\"" : "");
		return gw_http_fail(gw, wsi, &e, close);
	}
	if (gw_auth_route(gw, wsi, pss, r.kind, m, r.topic, close, &rc)) /* 401/403 (auth.c) */
		return rc;
	switch (r.kind) {
	case GW_R_HEALTHZ:
		return healthz(gw, wsi);
	case GW_R_METRICS:
		return metrics(gw, wsi);
	case GW_R_WS:
		gw_error_set(&e, 400, "bad_request", "GET /v1/ws needs a WebSocket upgrade");
		return gw_http_fail(gw, wsi, &e, 0);
	default:
		break;
	}
	if (gw->state != GW_RUNNING) {
		gw_error_set(&e, 503, "shutting_down", "the gateway is shutting down");
		return gw_http_fail(gw, wsi, &e, GW_REPLY_CLOSE);
	}
	if (!gw_config_parent(gw->cfg, r.topic, r.parent_len)) {
		gw_error_set(&e, 404, "unknown_parent", "parent \"%.*s\" is not declared",
			     (int)r.parent_len, r.topic);
		return gw_http_fail(gw, wsi, &e, close);
	}
	switch (r.kind) {
	case GW_R_TOPIC:
		return m == GW_M_GET ? topic_get(gw, wsi, &r) : topic_delete(gw, wsi, pss, &r);
	case GW_R_MESSAGES:
		if (m == GW_M_POST)
			return gw_pub_start(gw, wsi, pss, &r, &q);
		return history(gw, wsi, &r, &q);
	case GW_R_EVENTS:
		return gw_sse_start(gw, wsi, pss, &r, &q);
	default:
		gw_error_set(&e, 404, "not_found", "no such route");
		return gw_http_fail(gw, wsi, &e, close);
	}
}

/*
 * A Content-Length body still arriving after timeouts.request_s: a slowloris client sending a byte
 * just before each body_s idle timeout would otherwise hold the connection for as long as it likes.
 * lws only knows the idle timeout (reset on every read), so the deadline is checked on each read.
 */
static int
body_late(struct gw *gw, struct lws *wsi, struct gw_http_pss *pss)
{
	struct gw_error e;

	gw->m.limit_hits[GW_LIMIT_REQUEST_TIMEOUT]++;
	pss->body_deadline_us = 0;
	gw_error_set(&e, 408, "request_timeout", "the body did not arrive within timeouts.request_s (%u s)",
		     gw->cfg->request_timeout_s);
	gw_http_fail(gw, wsi, &e, GW_REPLY_CLOSE);
	return -1;
}

/*
 * An h2 publish without Content-Length (h2_open_body): its body ended once the frame tap saw the
 * client's END_STREAM and lws delivered every byte before it. lws 4.1.6 never says so itself.
 */
static int
h2_body_end(struct gw *gw, struct lws *wsi, struct gw_http_pss *pss)
{
	if (!pss->h2_open_body || pss->h2_body_ended || !gw_h2_body_ended(wsi, pss->h2_body_in))
		return 0;
	pss->h2_body_ended = 1;
	return pss->kind == GW_HK_PUB ? gw_pub_body_done(gw, wsi, pss) : 0;
}

void
gw_http_h2_body_end(struct gw *gw, struct lws *wsi)
{
	/* Before LWS_CALLBACK_HTTP a stream may still be bound to another protocol. */
	struct gw_http_pss *pss = lws_get_protocol(wsi) && lws_get_protocol(wsi)->callback == gw_http_callback
					  ? lws_wsi_user(wsi) : NULL;

	if (pss && h2_body_end(gw, wsi, pss))
		lws_set_timeout(wsi, PENDING_TIMEOUT_KILLED_BY_PARENT, LWS_TO_KILL_ASYNC);
}

/* Per-request state ends with the transaction (keep-alive rebinds the wsi) or with the connection. */
static void
pss_end(struct gw *gw, struct gw_http_pss *pss)
{
	if (!pss)
		return;
	if (pss->kind == GW_HK_PUB)
		gw_pub_detach(gw, pss);
	else if (pss->kind == GW_HK_SSE)
		gw_sse_close(gw, pss);
	else if (pss->kind == GW_HK_DEL)
		del_detach(gw, pss);
	else if (pss->kind == GW_HK_PULL)
		gw_pull_detach(gw, pss);
	pss->kind = GW_HK_NONE;
}

int
gw_http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
		 size_t len)
{
	struct gw_http_pss *pss = user;
	struct gw *gw;

	switch (reason) {
	case LWS_CALLBACK_HTTP: {
		int rc;

		gw = gw_from_wsi(wsi);
		pss_end(gw, pss);
		if (gw_is_h2(wsi) && gw_h2_request_followed(wsi) < 0) {
			struct gw_error e;

			gw_error_set(&e, 500, "internal_error", "this HTTP/2 stream cannot be served");
			return gw_http_fail(gw, wsi, &e, 0);
		}
		rc = route_request(gw, wsi, pss);
		/* (On HTTP/1.1 a reply written at once may have ended the transaction and freed @p pss:
		 * only h2 streams, whose replies are queued, are looked at again.) */
		if (!rc && gw_is_h2(wsi) && pss && pss->kind == GW_HK_PUB &&
		    lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) <= 0) {
			pss->h2_open_body = 1;
			rc = h2_body_end(gw, wsi, pss); /* it may have ended with its HEADERS */
		}
		return rc;
	}
	case LWS_CALLBACK_HTTP_BODY:
		if (pss && pss->body_deadline_us && gw_mono_us() > pss->body_deadline_us)
			return body_late(gw_from_wsi(wsi), wsi, pss);
		if (pss && pss->kind == GW_HK_PUB && pss->h2_open_body) {
			int rc = gw_pub_body(gw_from_wsi(wsi), wsi, pss, in, len);

			pss->h2_body_in += len;
			return rc ? rc : h2_body_end(gw_from_wsi(wsi), wsi, pss);
		}
		if (pss && pss->kind == GW_HK_PUB)
			return gw_pub_body(gw_from_wsi(wsi), wsi, pss, in, len);
		if (pss && pss->kind == GW_HK_PULL)
			return gw_pull_body(gw_from_wsi(wsi), wsi, pss, in, len);
		return 0;
	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		if (pss && pss->h2_open_body && !pss->h2_body_ended) {
			/* lws 4.1.6 takes a length-less h2 body for 100 MB long and ends it there: what
			 * came is appended (NDJSON lines), the stream is reset. */
			LOG_WARN("h2: a publish without Content-Length reached lws's 100 MB body limit");
			return -1;
		}
		if (pss && pss->h2_open_body)
			return 0;
		if (pss && pss->kind == GW_HK_PUB)
			return gw_pub_body_done(gw_from_wsi(wsi), wsi, pss);
		if (pss && pss->kind == GW_HK_PULL)
			return gw_pull_body_done(gw_from_wsi(wsi), wsi, pss);
		return 0;
	case LWS_CALLBACK_HTTP_WRITEABLE: {
		int rc;

		if (!pss)
			return 0;
		/* An HTTP/2 stream first sends what waits (h2.c): a queued response, or stream data. */
		if (gw_is_h2(wsi) && (rc = gw_h2_writeable(wsi, pss)) != 1)
			return rc;
		if (pss->kind == GW_HK_PUB)
			return gw_pub_writeable(gw_from_wsi(wsi), wsi, pss);
		if (pss->kind == GW_HK_SSE)
			return gw_sse_writeable(gw_from_wsi(wsi), wsi, pss);
		if (pss->kind == GW_HK_DEL)
			return del_writeable(gw_from_wsi(wsi), wsi, pss);
		if (pss->kind == GW_HK_PULL)
			return gw_pull_writeable(gw_from_wsi(wsi), wsi, pss);
		return 0; /* lws may call WRITEABLE unasked: nothing to send is fine */
	}
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		/* Only when the engine has no notify fd (main.c); arrives without a wsi's user data. */
		gw = gw_from_wsi(wsi);
		if (gw && gw->notify_via_cancel)
			gw_engine_notify(gw);
		return 0;
	case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
		if (pss) {
			pss_end(gw_from_wsi(wsi), pss);
			gw_h2out_free(&pss->h2);
		}
		gw_conn_http_dropped(wsi, in); /* conn.c: a kept-alive connection's next head */
		return 0;
	case LWS_CALLBACK_CLOSED_HTTP:
		if (pss) {
			pss_end(gw_from_wsi(wsi), pss);
			gw_h2out_free(&pss->h2);
		}
		return 0;
	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}
