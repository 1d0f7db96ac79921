/*
 * pull.c - the HTTP face of consumer groups (issue 4), under /v1/groups:
 *
 *   GET                 /v1/groups                          every group
 *   GET, PUT, DELETE    /v1/groups/{group}                  the definition
 *   GET, POST           /v1/groups/{group}/subscriptions    {"add":[...],"remove":[...]}
 *   POST                /v1/groups/{group}/pop              {"max","wait_ms"}  (long poll)
 *   POST                /v1/groups/{group}/ack              {"receipts":[...]}
 *   POST                /v1/groups/{group}/nack             {"receipts":[...],"delay_ms"}
 *   GET, PUT            /v1/groups/{group}/offsets?topic=T  {"offset":N} | {"from":"first"|"tail"}
 *
 * Service thread. Each request reads its (small, Content-Length) body, then answers from
 * WRITEABLE in one write. A pop with nothing ready parks as a waiter of its group until the
 * engine's ready set (gw_engine_notify -> gw_groups_on_ready), an ack, a nack or a visibility
 * timeout gives its group work, or until wait_ms ends. Nothing polls.
 *
 * The request state is a heap object owned by the pss: nothing asynchronous outlives the
 * connection (a parked pop is unparked when its connection closes, and messages it was given but
 * could not write are handed back without counting a delivery).
 */
#include "http_int.h"

#include <jansson.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "groups.h"
#include "log.h"
#include "xalloc.h"

#define PULL_BODY_MAX (4u * 1024u * 1024u) /* ack/nack of 10,000 receipts fits */
#define POP_WAIT_MAX_MS 60000u             /* lws drops a request holding headers ~6 min */
#define POP_MAX_DEFAULT 32

enum pull_op {
	P_NONE = 0,
	P_LIST,    /* /v1/groups */
	P_GROUP,   /* /v1/groups/{g} */
	P_SUBS,    /* .../subscriptions */
	P_POP,
	P_ACK,
	P_NACK,
	P_OFFSETS,
};

struct gw_pull_req {
	struct gw *gw;
	struct lws *wsi;
	enum pull_op op;
	enum gw_method m;
	char group[GW_GROUP_NAME_MAX + 1];
	char topic[ENG_TOPIC_MAX + 1];  /* ?topic= of the offsets route */
	uint64_t content_length;
	struct gw_buf body;
	struct gw_buf reply;            /* the whole response, LWS_PRE in front */
	unsigned flags;                 /* GW_REPLY_CLOSE */
	unsigned body_done : 1;
	unsigned reply_ready : 1;
	unsigned replied : 1;           /* the reply was written (HTTP/1.1) or queued (HTTP/2) */
	unsigned sent : 1;              /* ... and handed to lws whole: a pop's messages are delivered */
	unsigned empty_done : 1;        /* lws's BODY_COMPLETION of an empty body was seen */
	struct gw_waiter w;             /* pop */
	ev_timer wait_w;                /* pop: the end of wait_ms */
	struct gw_commit_wait *commits; /* ack, offsets PUT: the reply waits for these stores */
	struct gw_buf pending;          /* ... and this is the reply's body meanwhile */
	unsigned pending_status;
	uint64_t t0_us;
};

/* ---- Routes ----------------------------------------------------------------------------------------- */

int
gw_pull_match(const char *path, size_t len)
{
	return (len == 10 && !memcmp(path, "/v1/groups", 10)) ||
	       (len > 11 && !memcmp(path, "/v1/groups/", 11));
}

/* @return the op, P_NONE if no such route; *bad when the group name is malformed. */
static enum pull_op
route_parse(const char *path, size_t len, char *group, const char **bad)
{
	static const struct {
		const char *name;
		enum pull_op op;
	} tails[] = { { "subscriptions", P_SUBS }, { "pop", P_POP },     { "ack", P_ACK },
		      { "nack", P_NACK },          { "offsets", P_OFFSETS } };
	const char *g, *slash, *end = path + len;
	size_t glen;

	*bad = NULL;
	if (len == 10)
		return P_LIST;
	g = path + 11;
	slash = memchr(g, '/', (size_t)(end - g));
	glen = (size_t)((slash ? slash : end) - g);
	if (!gw_group_name_ok(g, glen))
		*bad = "malformed group name: [A-Za-z0-9_.:-]{1,64}, not starting with '.'";
	else {
		memcpy(group, g, glen);
		group[glen] = '\0';
	}
	if (!slash)
		return P_GROUP;
	for (size_t i = 0; i < sizeof(tails) / sizeof(tails[0]); i++)
		if ((size_t)(end - slash - 1) == strlen(tails[i].name) &&
		    !memcmp(slash + 1, tails[i].name, strlen(tails[i].name)))
			return tails[i].op;
	return P_NONE;
}

static unsigned
op_methods(enum pull_op op)
{
	switch (op) {
	case P_LIST:
		return GW_M_GET | GW_M_OPTIONS;
	case P_GROUP:
		return GW_M_GET | GW_M_PUT | GW_M_DELETE | GW_M_OPTIONS;
	case P_SUBS:
		return GW_M_GET | GW_M_POST | GW_M_OPTIONS;
	case P_OFFSETS:
		return GW_M_GET | GW_M_PUT | GW_M_OPTIONS;
	case P_POP:
	case P_ACK:
	case P_NACK:
		return GW_M_POST | GW_M_OPTIONS;
	default:
		return 0;
	}
}

static const char *
op_allow(enum pull_op op)
{
	switch (op) {
	case P_LIST:
		return "GET, OPTIONS";
	case P_GROUP:
		return "GET, PUT, DELETE, OPTIONS";
	case P_SUBS:
		return "GET, POST, OPTIONS";
	case P_OFFSETS:
		return "GET, PUT, OPTIONS";
	default:
		return "POST, OPTIONS";
	}
}

/* ?topic=<parent>/<id> (lws has split and percent-decoded the query into fragments). */
static int
query_topic(struct lws *wsi, char *topic)
{
	for (int i = 0; i < 32; i++) {
		char frag[256];
		int n = lws_hdr_copy_fragment(wsi, frag, sizeof(frag), WSI_TOKEN_HTTP_URI_ARGS, i);

		if (n < 0 && lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i) > 0)
			continue; /* longer than a topic parameter (an access_token): not ours */
		if (n < 0)
			break;
		if (n > 6 && !memcmp(frag, "topic=", 6)) {
			if ((size_t)n - 6 > ENG_TOPIC_MAX || !gw_name_topic_ok(frag + 6, (size_t)n - 6))
				return -1;
			memcpy(topic, frag + 6, (size_t)n - 6);
			topic[n - 6] = '\0';
			return 0;
		}
	}
	return -1;
}

/* ---- Replies ---------------------------------------------------------------------------------------- */

/* Queue the whole response; it leaves at the next WRITEABLE. */
static void
reply_ready(struct gw_pull_req *req)
{
	req->reply_ready = 1;
	lws_callback_on_writable(req->wsi);
}

static void
reply_body(struct gw_pull_req *req, unsigned status, struct gw_buf *body)
{
	if (gw_reply_build(req->gw, req->wsi, &req->reply, status, "application/json",
			   gw_buf_data(body), body->len, NULL, req->flags)) {
		lws_set_timeout(req->wsi, PENDING_TIMEOUT_KILLED_BY_PARENT, LWS_TO_KILL_ASYNC);
		return;
	}
	reply_ready(req);
}

static void
reply_error(struct gw_pull_req *req, const struct gw_error *e, const char *members)
{
	if (gw_reply_error(req->gw, req->wsi, &req->reply, e, members, NULL, req->flags)) {
		lws_set_timeout(req->wsi, PENDING_TIMEOUT_KILLED_BY_PARENT, LWS_TO_KILL_ASYNC);
		return;
	}
	reply_ready(req);
}

static int
send_now(struct lws *wsi, struct gw_buf *out, unsigned flags)
{
	return gw_reply_send(wsi, out, flags);
}

static int
preflight(struct gw *gw, struct lws *wsi, enum pull_op op)
{
	const char *const hdrs[] = {
		"access-control-allow-methods:", op_allow(op),
		"access-control-allow-headers:", "content-type, authorization",
		"access-control-max-age:", "600",
		NULL,
	};
	struct gw_buf *out = gw_scratch();

	if (gw_reply_build(gw, wsi, out, 204, NULL, NULL, 0, hdrs, 0))
		return -1;
	return send_now(wsi, out, 0);
}

/* ---- Pop ---------------------------------------------------------------------------------------------- */

static void
pop_reply(struct gw_pull_req *req)
{
	struct gw_buf body;

	gw_buf_init(&body, 0);
	gw_buf_reserve(&body, req->w.out.len + 32);
	gw_buf_puts(&body, "{\"messages\":[");
	gw_buf_append(&body, gw_buf_data(&req->w.out), req->w.out.len);
	gw_buf_puts(&body, "]}\n");
	reply_body(req, 200, &body);
	gw_buf_free(&body);
	req->gw->m.pops++;
}

/* The group woke this parked pop (messages, drain), or the group was deleted (w->g NULL). */
static void
on_filled(struct gw_waiter *w)
{
	struct gw_pull_req *req = (struct gw_pull_req *)((char *)w - offsetof(struct gw_pull_req, w));
	struct gw_error e;

	if (ev_is_active(&req->wait_w))
		ev_timer_stop(req->gw->loop, &req->wait_w);
	if (!w->g && !w->n_out) {
		gw_error_set(&e, 404, "not_found", "group %s was deleted", req->group);
		reply_error(req, &e, NULL);
		return;
	}
	pop_reply(req);
}

static void
on_wait_end(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct gw_pull_req *req = t->data;

	(void)loop;
	(void)revents;
	gw_group_unpark(&req->w);
	pop_reply(req);
}

static void
do_pop(struct gw_pull_req *req, struct gw_group *g)
{
	const struct gw_config *cfg = req->gw->cfg;
	json_error_t jerr;
	json_t *root = NULL, *v;
	struct gw_error e;
	uint64_t max = POP_MAX_DEFAULT, wait = 0;
	const char *key;

	if (req->body.len) {
		root = json_loadb((const char *)gw_buf_data(&req->body), req->body.len,
				  JSON_REJECT_DUPLICATES, &jerr);
		if (!root || !json_is_object(root)) {
			gw_error_set(&e, 400, "bad_json", "%s", root ? "the body must be a JSON object"
								     : jerr.text);
			goto fail;
		}
		json_object_foreach(root, key, v) {
			uint64_t lim = !strcmp(key, "max") ? cfg->history_max
				       : !strcmp(key, "wait_ms") ? POP_WAIT_MAX_MS : 0;

			if (!lim) {
				gw_error_set(&e, 400, "bad_request", "unknown member \"%s\"", key);
				goto fail;
			}
			if (!json_is_integer(v) || json_integer_value(v) < !strcmp(key, "max") ||
			    (uint64_t)json_integer_value(v) > lim) {
				gw_error_set(&e, 400, "bad_request", "\"%s\" must be an integer from %d to %llu",
					     key, !strcmp(key, "max"), (unsigned long long)lim);
				goto fail;
			}
			if (!strcmp(key, "max"))
				max = (uint64_t)json_integer_value(v);
			else
				wait = (uint64_t)json_integer_value(v);
		}
		json_decref(root);
	}
	req->w.max = (uint32_t)max;
	req->w.max_bytes = cfg->history_max_bytes;
	req->w.filled = on_filled;
	gw_buf_init(&req->w.out, 0);
	if (gw_group_fill(g, &req->w) || !wait) {
		pop_reply(req);
		return;
	}
	gw_group_park(g, &req->w);
	ev_timer_init(&req->wait_w, on_wait_end, (double)wait / 1e3, 0);
	req->wait_w.data = req;
	ev_timer_start(req->gw->loop, &req->wait_w);
	/* lws's own clock must not end the request before we do. */
	lws_set_timeout(req->wsi, PENDING_TIMEOUT_HTTP_CONTENT, (int)(wait / 1000) + 30);
	return;
fail:
	json_decref(root);
	reply_error(req, &e, NULL);
}

/* ---- Replies that wait for stored offsets -------------------------------------------------------------- */

/* The commits an ack (or an offsets PUT) moved are durable, or one failed: answer now. */
static void
on_commits(struct gw_commit_wait *w)
{
	struct gw_pull_req *req = w->ctx;
	struct gw_error e;

	req->commits = NULL;
	if (w->rc) {
		gw_error_from_eng(w->rc, &e);
		snprintf(e.message, sizeof(e.message),
			 "acknowledged in memory, but the group's offset could not be stored: %s",
			 eng_strerror(w->rc));
		reply_error(req, &e, NULL);
	} else {
		reply_body(req, req->pending_status, &req->pending);
	}
	gw_buf_free(&req->pending);
	gw_commit_wait_free(w);
}

/* Answer @p out once @p w is over (or now, when there is nothing to wait for). */
static void
reply_after(struct gw_pull_req *req, struct gw_commit_wait *w, unsigned status, struct gw_buf *out)
{
	if (!w) {
		reply_body(req, status, out);
		return;
	}
	req->commits = w;
	w->ctx = req;
	w->done = on_commits;
	req->pending_status = status;
	gw_buf_init(&req->pending, 0);
	gw_buf_append(&req->pending, gw_buf_data(out), out->len);
}

/* ---- Dispatch ------------------------------------------------------------------------------------------ */

static void
dispatch(struct gw_pull_req *req)
{
	struct gw *gw = req->gw;
	struct gw_group *g = req->op == P_LIST ? NULL : gw_group_find(gw, req->group);
	const char *body = req->body.len ? (const char *)gw_buf_data(&req->body) : "";
	struct gw_buf out;
	struct gw_error e;
	struct gw_commit_wait *wait = NULL;
	unsigned status = 200;
	int rc = 0;

	if (gw->state != GW_RUNNING) {
		gw_error_set(&e, 503, "shutting_down", "the gateway is shutting down");
		req->flags |= GW_REPLY_CLOSE;
		reply_error(req, &e, NULL);
		return;
	}
	/* Offsets need no pull group: streams store positions under any group name (progress.h). */
	if (req->op != P_LIST && !g && !(req->op == P_GROUP && req->m == GW_M_PUT) &&
	    req->op != P_OFFSETS) {
		gw_error_set(&e, 404, "not_found", "no group %s", req->group);
		reply_error(req, &e, NULL);
		return;
	}
	gw_buf_init(&out, 0);
	switch (req->op) {
	case P_LIST:
		gw_groups_list(gw, &out);
		break;
	case P_GROUP:
		if (req->m == GW_M_PUT) {
			rc = gw_group_put(gw, req->group, body, req->body.len, &out, &status, &e);
		} else if (req->m == GW_M_DELETE) {
			if (!(rc = gw_group_delete(gw, g, &e))) {
				gw_buf_puts(&out, "{\"group\":");
				gw_buf_json_str(&out, req->group, strlen(req->group));
				gw_buf_puts(&out, ",\"deleted\":true}");
			}
		} else {
			gw_group_describe(g, &out);
		}
		gw_buf_putc(&out, '\n');
		break;
	case P_SUBS:
		if (req->m == GW_M_POST) {
			rc = gw_group_subscriptions(gw, g, body, req->body.len, &out, &e);
		} else {
			gw_group_describe(g, &out);
			gw_buf_putc(&out, '\n');
		}
		break;
	case P_POP:
		gw_buf_free(&out);
		do_pop(req, g);
		return;
	case P_ACK:
	case P_NACK: {
		struct gw_buf members;

		gw_buf_init(&members, 0);
		rc = req->op == P_ACK ? gw_group_ack(g, body, req->body.len, &members, &status, &e, &wait)
				      : gw_group_nack(g, body, req->body.len, &members, &status, &e);
		if (rc) {
			gw_buf_free(&members);
			break;
		}
		if (status != 200) {
			/* Every receipt was refused: the first refusal is the error, the list says all. */
			gw_buf_putc(&out, ',');
			gw_buf_append(&out, gw_buf_data(&members), members.len);
			gw_buf_putc(&out, '\0');
			reply_error(req, &e, (const char *)gw_buf_data(&out));
			gw_buf_free(&members);
			gw_buf_free(&out);
			return;
		}
		gw_buf_putc(&out, '{');
		gw_buf_append(&out, gw_buf_data(&members), members.len);
		gw_buf_puts(&out, "}\n");
		gw_buf_free(&members);
		reply_after(req, wait, status, &out);
		gw_buf_free(&out);
		return;
	}
	case P_OFFSETS:
		if (req->m == GW_M_PUT) {
			rc = gw_group_offset_put(gw, req->group, g, req->topic, body, req->body.len, &out,
						 &e, &wait);
			if (!rc) {
				reply_after(req, wait, 200, &out);
				gw_buf_free(&out);
				return;
			}
		} else
			rc = gw_group_offset_get(gw, req->group, g, req->topic, &out, &e);
		break;
	default:
		gw_error_set(&e, 404, "not_found", "no such route");
		rc = -1;
		break;
	}
	if (rc)
		reply_error(req, &e, NULL);
	else
		reply_body(req, status, &out);
	gw_buf_free(&out);
}

/* ---- The lws side -------------------------------------------------------------------------------------- */

int
gw_pull_start(struct gw *gw, struct lws *wsi, struct gw_http_pss *pss, enum gw_method m,
	      const char *path, size_t pathlen)
{
	char group[GW_GROUP_NAME_MAX + 1] = "", topic[ENG_TOPIC_MAX + 1] = "", cl[32], v[128];
	unsigned close = (m == GW_M_POST || m == GW_M_PUT || m == GW_M_PATCH) ? GW_REPLY_CLOSE : 0;
	enum pull_op op;
	struct gw_pull_req *req;
	const char *bad;
	struct gw_error e;
	uint64_t len = 0;
	int has_cl;

	op = route_parse(path, pathlen, group, &bad);
	if (op == P_NONE) {
		gw_error_set(&e, 404, "not_found", "no such route");
		return gw_http_fail(gw, wsi, &e, close);
	}
	if (!(op_methods(op) & m)) {
		const char *const allow[] = { "allow:", op_allow(op), NULL };
		struct gw_buf *out = gw_scratch();

		gw_error_set(&e, 405, "method_not_allowed", "allowed: %s", op_allow(op));
		if (gw_reply_error(gw, wsi, out, &e, NULL, allow, close))
			return -1;
		return send_now(wsi, out, close);
	}
	if (m == GW_M_OPTIONS)
		return preflight(gw, wsi, op);
	if (bad) {
		gw_error_set(&e, 400, "bad_name", "%s", bad);
		return gw_http_fail(gw, wsi, &e, close);
	}
	{
		/* Consuming (pop, ack, nack, reading the group) needs litegate.consume on the group;
		 * changing a group, or listing them all, needs litegate.admin (auth.h). */
		int writes = m == GW_M_PUT || m == GW_M_DELETE || (op == P_SUBS && m == GW_M_POST);
		enum gw_auth_action a = op == P_LIST || writes ? GW_AUTH_ADMIN : GW_AUTH_CONSUME;
		int64_t exp;
		int ret;

		if (gw_auth_http(gw, wsi, a, group, close, &exp, &ret))
			return ret;
	}
	if (gw->state != GW_RUNNING || !gw->groups) {
		gw_error_set(&e, 503, "shutting_down", "the gateway is shutting down");
		return gw_http_fail(gw, wsi, &e, GW_REPLY_CLOSE);
	}
	if (op == P_OFFSETS) {
		const char *slash;

		if (query_topic(wsi, topic)) {
			gw_error_set(&e, 400, "bad_request",
				     "?topic=<parent>/<id> is required and must name a lite topic");
			return gw_http_fail(gw, wsi, &e, close);
		}
		slash = strchr(topic, '/');
		if (!gw_config_parent(gw->cfg, topic, (size_t)(slash - topic))) {
			gw_error_set(&e, 404, "unknown_parent", "parent \"%.*s\" is not declared",
				     (int)(slash - topic), topic);
			return gw_http_fail(gw, wsi, &e, close);
		}
	}
	if (close) {
		/* A body: JSON, with a Content-Length (no chunked uploads here). */
		if (lws_hdr_copy(wsi, v, sizeof(v), WSI_TOKEN_HTTP_CONTENT_TYPE) > 0 &&
		    strncasecmp(v, "application/json", 16)) {
			gw_error_set(&e, 415, "unsupported_media_type", "Content-Type must be application/json");
			return gw_http_fail(gw, wsi, &e, GW_REPLY_CLOSE);
		}
		if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0) {
			gw_error_set(&e, 411, "length_required", "send the body with a Content-Length");
			return gw_http_fail(gw, wsi, &e, GW_REPLY_CLOSE);
		}
		has_cl = lws_hdr_copy(wsi, cl, sizeof(cl), WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0;
		if (!has_cl && gw_is_h2(wsi)) {
			/* An h2 body ends with its stream's END_STREAM, which lws 4.1.6 does not report
			 * without a Content-Length (publish.c): the request would run on no body. */
			gw_error_set(&e, 411, "length_required",
				     "over HTTP/2 a request body needs a Content-Length (0 for none)");
			return gw_http_fail(gw, wsi, &e, GW_REPLY_CLOSE);
		}
		if (has_cl && gw_parse_u64(cl, strlen(cl), &len)) {
			gw_error_set(&e, 400, "bad_request", "malformed Content-Length");
			return gw_http_fail(gw, wsi, &e, GW_REPLY_CLOSE);
		}
		if (len > PULL_BODY_MAX) {
			gw_error_set(&e, 413, "too_large", "body larger than %u bytes", PULL_BODY_MAX);
			return gw_http_fail(gw, wsi, &e, GW_REPLY_CLOSE);
		}
	}
	req = xcalloc(1, sizeof(*req));
	req->gw = gw;
	req->wsi = wsi;
	req->op = op;
	req->m = m;
	req->t0_us = gw_mono_us();
	req->content_length = len;
	strcpy(req->group, group);
	strcpy(req->topic, topic);
	gw_buf_init(&req->body, 0);
	gw_buf_init(&req->reply, LWS_PRE);
	gw_buf_init(&req->w.out, 0);
	pss->kind = GW_HK_PULL;
	pss->pull = req;
	if (!len) {
		/* No body to wait for (GET, DELETE, or an empty POST): lws sends no BODY callbacks. */
		req->body_done = 1;
		dispatch(req);
	}
	return 0;
}

int
gw_pull_body(struct gw *gw, struct lws *wsi, struct gw_http_pss *pss, const char *in, size_t len)
{
	struct gw_pull_req *req = pss->pull;

	(void)gw;
	(void)wsi;
	if (req->body_done)
		return 0;
	if (req->body.len + len > req->content_length)
		len = (size_t)(req->content_length - req->body.len);
	gw_buf_append(&req->body, in, len);
	return 0;
}

int
gw_pull_body_done(struct gw *gw, struct lws *wsi, struct gw_http_pss *pss)
{
	struct gw_pull_req *req = pss->pull;

	(void)gw;
	(void)wsi;
	if (req->body_done) {
		/* lws reports the end of an empty body too (we already answered from the headers);
		 * any other repeat is a request pipelined behind this one: see gw_pub_body_done(). */
		if (!req->content_length && !req->empty_done) {
			req->empty_done = 1;
			return 0;
		}
		return -1;
	}
	req->body_done = 1;
	dispatch(req);
	return 0;
}

/* The whole reply is with lws: a pop's hand-outs are final (delivered), and it is timed. */
static void
reply_sent(struct gw *gw, struct gw_pull_req *req)
{
	req->sent = 1;
	gw_waiter_done(&req->w);
	if (req->op == P_POP)
		gw_hist_observe(&gw->m.pop_latency, (double)(gw_mono_us() - req->t0_us) / 1e6);
}

int
gw_pull_writeable(struct gw *gw, struct lws *wsi, struct gw_http_pss *pss)
{
	struct gw_pull_req *req = pss->pull;
	unsigned flags = req->flags;

	if (!req->reply_ready || req->replied)
		return 0;
	req->replied = 1;
	if (gw_is_h2(wsi)) {
		/* It leaves from the next WRITEABLEs, within the peer's window (h2.c), and counts as
		 * sent once its last DATA frame is handed to lws (gw_pull_sent()): a stream that ends
		 * before (a reset, a client that never opens its window) hands its messages back. */
		gw_h2_reply(wsi, &req->reply);
		return 0;
	}
	if (gw_reply_write(wsi, &req->reply))
		return -1; /* the detach hands a pop's messages back */
	reply_sent(gw, req);
	if (flags & GW_REPLY_CLOSE)
		return -1;
	/* May rebind the wsi and free the pss (through DROP_PROTOCOL): touch nothing after it. */
	return lws_http_transaction_completed(wsi) ? -1 : 0;
}

void
gw_pull_sent(struct gw *gw, struct gw_http_pss *pss)
{
	if (pss->pull && pss->pull->replied && !pss->pull->sent)
		reply_sent(gw, pss->pull);
}

void
gw_pull_detach(struct gw *gw, struct gw_http_pss *pss)
{
	struct gw_pull_req *req = pss->pull;

	pss->pull = NULL;
	if (!req)
		return;
	if (ev_is_active(&req->wait_w))
		ev_timer_stop(gw->loop, &req->wait_w);
	if (req->w.parked)
		gw_group_unpark(&req->w);
	if (req->commits)
		req->commits->ctx = NULL; /* the last commit frees it */
	gw_buf_free(&req->pending);
	if (req->sent)
		gw_waiter_done(&req->w);
	else
		gw_waiter_release(&req->w);
	gw_buf_free(&req->body);
	gw_buf_free(&req->reply);
	free(req);
}
