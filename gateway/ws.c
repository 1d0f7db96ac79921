/*
 * ws.c - GET /v1/ws: the WebSocket transport. One connection carries any number of topic
 * subscriptions, publishes with acks, and pings; see wsproto.h for the client frames.
 *
 * Service thread. As for SSE, delivery is pulled: a ready topic is only marked pending, and each
 * WRITEABLE formats queued replies plus pending topics' messages (round robin, so one busy topic
 * cannot starve the others) up to max_unsent_bytes, then makes one write. The frames are built
 * here, whole, and written raw: lws_write(LWS_WRITE_HTTP) on a ws connection bypasses lws's framer
 * (roles/ws/ops-ws.c "send_raw"), which lets many server messages share one send() without
 * permessage-deflate (not enabled). Partial sends stay whole frames because lws drains its
 * buffered remainder before it writes anything else, its own control frames included.
 *
 * Connection state is a heap object rather than the pss: publish acks complete after the
 * connection may have closed, and they must find a live object (detached, freed by the last ack).
 */
#include "gw.h"

#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "conn.h"
#include "http_int.h"
#include "pubrate.h"
#include "log.h"
#include "progress.h"
#include "wsproto.h"
#include "xalloc.h"

#define WS_READ_MAX 512          /* messages per eng_read */
#define WS_PENDING_ACKS_HIGH 1024 /* publishes in flight before we stop reading the socket */

struct gw_ws_topic {
	char topic[ENG_TOPIC_MAX + 1];
	uint64_t next;       /* next offset to send */
	struct gw_progress *prog; /* "group": the position stored for that group (progress.h), or NULL */
	unsigned pending : 1;/* may have unsent messages */
};

struct gw_ws_conn {
	struct gw_sub sub;          /* registry link; sub.wsi is the connection */
	struct gw *gw;
	struct gw_ws_topic *topics; /* subscriptions, in subscribe order */
	size_t n_topics, cap_topics;
	size_t rr;                  /* round-robin start for the next write */
	struct gw_buf rx;           /* reassembly of a fragmented client message */
	struct gw_buf ctrl;         /* framed replies (subscribed, ack, error, pong) not yet written */
	struct gw_buf pubdata;      /* scratch: compacted data of the publish being parsed */
	unsigned pending_acks;      /* publishes queued on the engine */
	unsigned detached : 1;      /* the connection closed; freed when pending_acks reaches 0 */
	unsigned flow_off : 1;      /* we paused reading the client */
	unsigned close_code;        /* non-zero: close with this code at the next WRITEABLE */
	uint8_t client[16];         /* who per-client publish limits charge (gw_conn_client) */
	struct gw_principal *who;   /* the upgrade's token (auth.c); NULL with auth off */
};

struct gw_ws_pss {
	struct gw_ws_conn *conn;
};

/* One publish waiting for durability. */
struct ws_ack {
	struct gw_ws_conn *conn;
	char topic[ENG_TOPIC_MAX + 1];
	char req[GW_WS_REQ_MAX + 1];
	uint64_t expected;           /* the publish's expected_offset, for a mismatch's message */
};

size_t
gw_ws_pss_size(void)
{
	return sizeof(struct gw_ws_pss);
}

static struct gw_ws_conn *
conn_of(struct gw_sub *sub)
{
	return (struct gw_ws_conn *)((char *)sub - offsetof(struct gw_ws_conn, sub));
}

/* ---- Framing ------------------------------------------------------------------------------------- */

/* Reserve room for a frame header at the end of @p b; returns where the frame starts. */
static size_t
frame_begin(struct gw_buf *b)
{
	size_t at = b->len;

	gw_buf_append(b, "\0\0\0\0\0\0\0\0\0\0", 10);
	return at;
}

/* Write the text-frame header for everything after @p at, closing up the unused header bytes. */
static void
frame_end(struct gw_buf *b, size_t at)
{
	unsigned char *base = gw_buf_data(b) + at, hdr[10];
	uint64_t len = b->len - at - 10;
	size_t hs;

	hdr[0] = 0x81; /* FIN + text */
	if (len < 126) {
		hdr[1] = (unsigned char)len;
		hs = 2;
	} else if (len < 65536) {
		hdr[1] = 126;
		hdr[2] = (unsigned char)(len >> 8);
		hdr[3] = (unsigned char)len;
		hs = 4;
	} else {
		hdr[1] = 127;
		for (int i = 0; i < 8; i++)
			hdr[2 + i] = (unsigned char)(len >> (56 - 8 * i));
		hs = 10;
	}
	memmove(base + hs, base + 10, (size_t)len);
	memcpy(base, hdr, hs);
	b->len -= 10 - hs;
}

static void
put_req(struct gw_buf *b, const char *req)
{
	if (req && req[0]) {
		gw_buf_puts(b, ",\"req\":");
		gw_buf_puts(b, req);
	}
}

static void
want_write(struct gw_ws_conn *c)
{
	if (!c->detached)
		gw_sub_want_write(c->gw, &c->sub);
}

/* An error frame; @p extra: more members (",\"next_offset\":7") or NULL. */
static void
queue_error_ex(struct gw_ws_conn *c, const char *code, const char *msg, const char *extra,
	       const char *req)
{
	size_t at = frame_begin(&c->ctrl);

	gw_buf_puts(&c->ctrl, "{\"type\":\"error\",\"code\":");
	gw_buf_json_str(&c->ctrl, code, strlen(code));
	gw_buf_puts(&c->ctrl, ",\"message\":");
	gw_buf_json_str(&c->ctrl, msg, strlen(msg));
	if (extra)
		gw_buf_puts(&c->ctrl, extra);
	put_req(&c->ctrl, req);
	gw_buf_putc(&c->ctrl, '}');
	frame_end(&c->ctrl, at);
	want_write(c);
}

static void
queue_error(struct gw_ws_conn *c, const char *code, const char *msg, const char *req)
{
	queue_error_ex(c, code, msg, NULL, req);
}

/* Pause reading the client while its replies or publishes pile up; resume once they drain. */
static void
check_flow(struct gw_ws_conn *c)
{
	int over = c->ctrl.len > c->gw->cfg->max_unsent_bytes || c->pending_acks > WS_PENDING_ACKS_HIGH;

	if (c->detached)
		return;
	if (over && !c->flow_off) {
		c->flow_off = 1;
		lws_rx_flow_control(c->sub.wsi, 0);
	} else if (!over && c->flow_off) {
		c->flow_off = 0;
		lws_rx_flow_control(c->sub.wsi, 1);
	}
}

/* ---- Operations ---------------------------------------------------------------------------------- */

static struct gw_ws_topic *
find_topic(struct gw_ws_conn *c, const char *topic)
{
	for (size_t i = 0; i < c->n_topics; i++)
		if (!strcmp(c->topics[i].topic, topic))
			return &c->topics[i];
	return NULL;
}

static int
parent_declared(struct gw *gw, const char *topic)
{
	const char *slash = strchr(topic, '/');

	return slash && gw_config_parent(gw->cfg, topic, (size_t)(slash - topic)) != NULL;
}

static void
op_subscribe(struct gw_ws_conn *c, const struct gw_ws_op *op)
{
	struct gw *gw = c->gw;
	struct gw_ws_topic *t = find_topic(c, op->topic);
	struct gw_error e;
	eng_topic_info info;
	struct gw_progress *prog = NULL;
	uint64_t from, stored = 0;
	size_t at;
	int rc, has_stored = 0;

	if (gw_auth_allow(gw, c->who, GW_AUTH_SUBSCRIBE, op->topic, &e)) {
		queue_error(c, e.code, e.message, op->req);
		return;
	}
	if (!parent_declared(gw, op->topic)) {
		queue_error(c, "unknown_parent", "the topic's parent is not declared", op->req);
		return;
	}
	if (!t && c->n_topics >= gw->cfg->max_ws_topics) {
		gw->m.limit_hits[GW_LIMIT_WS_TOPICS]++;
		queue_error(c, "too_many_topics", "limits.max_ws_topics reached on this connection", op->req);
		return;
	}
	/* "group": with no "from" resume where that group's last stream stopped; store progress. */
	if (op->group[0] &&
	    gw_progress_begin(gw, op->group, op->topic, &prog, &stored, &has_stored, &e)) {
		queue_error(c, e.code, e.message, op->req);
		return;
	}
	if (!t && (rc = eng_sub_topic(gw->db, c->sub.id, op->topic)) != 0) {
		gw_progress_end(prog);
		gw_error_from_eng(rc, &e);
		queue_error(c, e.code, e.message, op->req);
		return;
	}
	rc = eng_topic_info_get(gw->db, op->topic, &info);
	if (rc)
		memset(&info, 0, sizeof(info));
	if (!op->has_from && has_stored)
		from = stored;
	else if (!op->has_from)
		from = info.first_offset;
	else if (op->from_tail)
		from = info.next_offset;
	else
		from = op->from;
	if (!t) {
		if (c->n_topics == c->cap_topics) {
			c->cap_topics = c->cap_topics ? c->cap_topics * 2 : 4;
			c->topics = xrealloc(c->topics, c->cap_topics * sizeof(*c->topics));
		}
		t = &c->topics[c->n_topics++];
		memcpy(t->topic, op->topic, sizeof(t->topic));
		t->prog = NULL;
	}
	gw_progress_end(t->prog); /* a re-subscribe replaces it */
	t->prog = prog;
	/* Subscribing again to a topic moves its position. */
	t->next = from;
	t->pending = 1;
	at = frame_begin(&c->ctrl);
	gw_buf_printf(&c->ctrl, "{\"type\":\"subscribed\",\"topic\":\"%s\",\"from\":%llu", op->topic,
		      (unsigned long long)from);
	put_req(&c->ctrl, op->req);
	gw_buf_putc(&c->ctrl, '}');
	frame_end(&c->ctrl, at);
	want_write(c);
}

static void
op_unsubscribe(struct gw_ws_conn *c, const struct gw_ws_op *op)
{
	struct gw_ws_topic *t = find_topic(c, op->topic);
	size_t at, i;

	if (!t) {
		queue_error(c, "not_subscribed", "not subscribed to this topic", op->req);
		return;
	}
	eng_unsub(c->gw->db, c->sub.id, op->topic);
	gw_progress_end(t->prog);
	i = (size_t)(t - c->topics);
	memmove(t, t + 1, (c->n_topics - i - 1) * sizeof(*t));
	c->n_topics--;
	if (c->rr >= c->n_topics)
		c->rr = 0;
	at = frame_begin(&c->ctrl);
	gw_buf_printf(&c->ctrl, "{\"type\":\"unsubscribed\",\"topic\":\"%s\"", op->topic);
	put_req(&c->ctrl, op->req);
	gw_buf_putc(&c->ctrl, '}');
	frame_end(&c->ctrl, at);
	want_write(c);
}

static void
conn_free(struct gw_ws_conn *c)
{
	gw_buf_free(&c->rx);
	gw_buf_free(&c->ctrl);
	gw_buf_free(&c->pubdata);
	gw_principal_free(c->who);
	free(c->topics);
	free(c);
}

static void
on_acked(void *ctx, const eng_append_result *res)
{
	struct ws_ack *ack = ctx;
	struct gw_ws_conn *c = ack->conn;
	struct gw *gw = c->gw;

	c->pending_acks--;
	gw->inflight--;
	if (res->rc == 0 && !res->duplicate && !res->n_dups)
		gw->m.published_msgs += res->count;
	if (c->detached) {
		if (!c->pending_acks)
			conn_free(c);
	} else if (res->rc == 0) {
		size_t at = frame_begin(&c->ctrl);

		gw_buf_printf(&c->ctrl, "{\"type\":\"ack\",\"topic\":\"%s\",\"offset\":%llu%s", ack->topic,
			      (unsigned long long)(res->offsets ? res->offsets[0] : res->first_offset),
			      res->duplicate || res->n_dups ? ",\"duplicate\":true" : "");
		put_req(&c->ctrl, ack->req);
		gw_buf_putc(&c->ctrl, '}');
		frame_end(&c->ctrl, at);
		want_write(c);
		check_flow(c);
	} else if (res->rc == ENG_EMISMATCH) {
		char msg[160], extra[48];

		snprintf(msg, sizeof(msg),
			 "expected offset %llu, but the topic's next offset is %llu: nothing appended",
			 (unsigned long long)ack->expected, (unsigned long long)res->next_offset);
		snprintf(extra, sizeof(extra), ",\"next_offset\":%llu",
			 (unsigned long long)res->next_offset);
		queue_error_ex(c, "offset_mismatch", msg, extra, ack->req);
		check_flow(c);
	} else {
		struct gw_error e;

		gw_error_from_eng(res->rc, &e);
		queue_error(c, e.code, e.message, ack->req);
		check_flow(c);
	}
	free(ack);
}

static void
op_publish(struct gw_ws_conn *c, const struct gw_ws_op *op)
{
	struct gw *gw = c->gw;
	struct ws_ack *ack;
	struct gw_error e;
	eng_append_opts opts;
	eng_msg_in m;
	int rc;

	if (gw->state != GW_RUNNING) {
		queue_error(c, "shutting_down", "the gateway is shutting down", op->req);
		return;
	}
	if (gw_auth_allow(gw, c->who, GW_AUTH_PUBLISH, op->topic, &e)) {
		queue_error(c, e.code, e.message, op->req);
		return;
	}
	if (!parent_declared(gw, op->topic)) {
		queue_error(c, "unknown_parent", "the topic's parent is not declared", op->req);
		return;
	}
	if (gw_limits_publish(gw, c->client, op->topic, 1, op->msg.len, &e)) { /* pubrate.h */
		queue_error(c, e.code, e.message, op->req);
		return;
	}
	ack = xmalloc(sizeof(*ack));
	ack->conn = c;
	memcpy(ack->topic, op->topic, sizeof(ack->topic));
	memcpy(ack->req, op->req, sizeof(ack->req));
	ack->expected = op->msg.expected;
	memset(&opts, 0, sizeof(opts));
	opts.has_expected = op->msg.has_expected;
	opts.expected_offset = op->msg.expected;
	m.event = op->msg.event;
	m.key = op->msg.key[0] ? op->msg.key : NULL;
	m.data = gw_buf_data(&c->pubdata) + op->msg.off;
	m.len = op->msg.len;
	m.has_priority = op->msg.has_priority;
	m.priority = op->msg.priority;
	if ((rc = eng_append_ex(gw->db, op->topic, &m, 1, &opts, on_acked, ack)) != 0) {
		free(ack);
		gw_error_from_eng(rc, &e);
		queue_error(c, e.code, e.message, op->req);
		return;
	}
	gw->m.published_bytes += m.len;
	c->pending_acks++;
	gw->inflight++;
}

static void
handle_message(struct gw_ws_conn *c, const char *p, size_t len)
{
	struct gw_ws_op op;
	struct gw_perr pe;
	size_t at;

	gw_buf_reset(&c->pubdata);
	if (gw_ws_parse(p, len, &op, &c->pubdata, &pe)) {
		queue_error(c, pe.code, pe.message, op.req);
		return;
	}
	switch (op.op) {
	case GW_WS_OP_SUBSCRIBE:
		op_subscribe(c, &op);
		break;
	case GW_WS_OP_UNSUBSCRIBE:
		op_unsubscribe(c, &op);
		break;
	case GW_WS_OP_PUBLISH:
		op_publish(c, &op);
		break;
	case GW_WS_OP_PING:
		at = frame_begin(&c->ctrl);
		gw_buf_puts(&c->ctrl, "{\"type\":\"pong\"");
		put_req(&c->ctrl, op.req);
		gw_buf_putc(&c->ctrl, '}');
		frame_end(&c->ctrl, at);
		want_write(c);
		break;
	default:
		break;
	}
	check_flow(c);
}

/* ---- Delivery ------------------------------------------------------------------------------------ */

static void
put_reset(struct gw_ws_conn *c, struct gw_buf *b, const char *topic, uint64_t from, uint64_t first,
	  uint64_t next)
{
	size_t at = frame_begin(b);

	gw_buf_printf(b,
		      "{\"type\":\"reset\",\"topic\":\"%s\",\"from\":%llu,\"first_offset\":%llu,"
		      "\"next_offset\":%llu}",
		      topic, (unsigned long long)from, (unsigned long long)first,
		      (unsigned long long)next);
	frame_end(b, at);
	c->gw->m.resets++;
}

/* Format @p t's unsent messages into @p b within @p budget. @return 1 more, 0 caught up, -1 error. */
static int
fill_topic(struct gw_ws_conn *c, struct gw_ws_topic *t, struct gw_buf *b, size_t budget)
{
	struct gw *gw = c->gw;
	uint64_t now = gw_now_ms();
	eng_read_result res;

	for (int round = 0; round < 2; round++) {
		int rc;

		memset(&res, 0, sizeof(res));
		rc = eng_read(gw->db, t->topic, t->next, WS_READ_MAX, budget > b->len ? budget - b->len : 1,
			      &res);
		if (rc == ENG_ENOTFOUND) {
			if (t->next > 0) {
				put_reset(c, b, t->topic, t->next, 0, 0);
				t->next = 0;
			}
			return 0;
		}
		if (rc) {
			LOG_WARN("read %s at %llu: %s", t->topic, (unsigned long long)t->next,
				 eng_strerror(rc));
			return -1;
		}
		if (t->next > res.next_offset) {
			put_reset(c, b, t->topic, t->next, res.first_offset, res.next_offset);
			t->next = res.first_offset;
			eng_read_free(&res);
			continue;
		}
		if (res.below_retained && res.first_offset > t->next) {
			size_t at = frame_begin(b);

			gw_buf_printf(b, "{\"type\":\"gap\",\"topic\":\"%s\",\"from\":%llu,\"to\":%llu}",
				      t->topic, (unsigned long long)t->next,
				      (unsigned long long)res.first_offset);
			frame_end(b, at);
			gw->m.gaps++;
		}
		for (size_t i = 0; i < res.n; i++) {
			const eng_msg_view *m = &res.msgs[i];
			size_t at = frame_begin(b);

			gw_buf_puts(b, "{\"type\":\"message\",\"topic\":\"");
			gw_buf_puts(b, t->topic);
			gw_buf_puts(b, "\",\"offset\":");
			gw_buf_u64(b, m->offset);
			gw_buf_puts(b, ",\"event\":\"");
			gw_buf_puts(b, m->event); /* event names need no escaping */
			gw_buf_puts(b, "\",\"data\":");
			gw_put_payload(b, m->data, m->len);
			if (m->priority != ENG_PRIORITY_NONE)
				gw_buf_printf(b, ",\"priority\":%d", m->priority);
			gw_buf_putc(b, '}');
			frame_end(b, at);
			gw_hist_observe(&gw->m.delivery_latency,
					now > m->time_ms ? (double)(now - m->time_ms) / 1e3 : 0);
		}
		gw->m.delivered_msgs += res.n;
		if (res.n)
			t->next = res.next;
		else if (res.below_retained)
			t->next = res.first_offset;
		rc = t->next < res.next_offset;
		eng_read_free(&res);
		return rc;
	}
	return 0;
}

static int
writeable(struct gw_ws_conn *c, struct lws *wsi)
{
	struct gw *gw = c->gw;
	size_t budget = gw->cfg->max_unsent_bytes;
	struct gw_buf *b;
	int more = 0;

	gw_sub_wrote(gw, &c->sub);
	if (c->close_code) {
		lws_close_reason(wsi, (enum lws_close_status)c->close_code, NULL, 0);
		return -1;
	}
	if (c->sub.closing || !gw->db) {
		static const char why[] = "shutting down";

		lws_close_reason(wsi, LWS_CLOSE_STATUS_GOINGAWAY, (unsigned char *)why, sizeof(why) - 1);
		return -1;
	}
	if (c->sub.expired) {
		/* The token expired (auth.c): an error frame, then close 1008 at the next WRITEABLE. */
		queue_error(c, "token_expired", "the token expired; reconnect with a new one", NULL);
		c->close_code = LWS_CLOSE_STATUS_POLICY_VIOLATION;
		b = gw_scratch();
		gw_buf_append(b, gw_buf_data(&c->ctrl), c->ctrl.len);
		gw_buf_reset(&c->ctrl);
		return lws_write(wsi, gw_buf_data(b), b->len, LWS_WRITE_HTTP) < 0 ? -1 : 0;
	}
	b = gw_scratch();
	gw_buf_append(b, gw_buf_data(&c->ctrl), c->ctrl.len);
	gw_buf_reset(&c->ctrl);
	/* Round robin over pending topics, starting after the one that went first last time. */
	for (size_t k = 0; k < c->n_topics && b->len < budget; k++) {
		size_t i = (c->rr + k) % c->n_topics;
		struct gw_ws_topic *t = &c->topics[i];
		int rc;

		if (!t->pending)
			continue;
		rc = fill_topic(c, t, b, budget);
		if (rc < 0)
			return -1;
		t->pending = rc > 0;
	}
	if (c->n_topics)
		c->rr = (c->rr + 1) % c->n_topics;
	for (size_t i = 0; i < c->n_topics && !more; i++)
		more = c->topics[i].pending;
	if (!b->len && c->sub.hb_due)
		gw_buf_append(b, "\x89\x00", 2); /* a ping frame: finds peers that vanished */
	c->sub.hb_due = 0;
	if (b->len) {
		if (lws_write(wsi, gw_buf_data(b), b->len, LWS_WRITE_HTTP) < 0)
			return -1;
		gw->m.delivered_bytes += b->len;
	}
	for (size_t i = 0; i < c->n_topics; i++) /* written: positions to store for groups */
		gw_progress_note(c->topics[i].prog, c->topics[i].next);
	/* Do not keep a large reply buffer on an idle connection. */
	if (c->ctrl.cap > 65536)
		gw_buf_free(&c->ctrl);
	if (more)
		gw_sub_want_write(gw, &c->sub);
	check_flow(c);
	return 0;
}

void
gw_ws_on_ready(struct gw *gw, struct gw_sub *sub, const eng_ready *r)
{
	struct gw_ws_conn *c = conn_of(sub);
	struct gw_ws_topic *t;

	if (r->flags & ENG_READY_OVERFLOW) {
		for (size_t i = 0; i < c->n_topics; i++)
			c->topics[i].pending = 1;
		gw_sub_want_write(gw, sub);
		return;
	}
	t = find_topic(c, r->topic);
	if (t && r->next_offset != t->next) {
		t->pending = 1;
		gw_sub_want_write(gw, sub);
	}
}

void
gw_ws_unmasked(struct lws *wsi)
{
	struct gw_ws_pss *pss = lws_wsi_user(wsi);
	struct gw_ws_conn *c = pss ? pss->conn : NULL;

	/* RFC 6455 5.1: the server MUST close the connection on an unmasked client frame. conn.c
	 * gave lws only the bytes before that frame and reads no more; WRITEABLE closes with 1002. */
	if (!c || c->close_code)
		return;
	c->close_code = LWS_CLOSE_STATUS_PROTOCOL_ERR;
	want_write(c);
}

/* ---- Handshake ------------------------------------------------------------------------------------ */

/* Browsers send Origin on every WebSocket: allow the configured origins and the same origin, so a
 * page elsewhere cannot ride a user's browser into the gateway (cross-site WebSocket hijacking). */
static int
origin_ok(struct gw *gw, struct lws *wsi)
{
	char origin[300], host[256];
	const char *o;
	int n = lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN);

	if (n <= 0 || gw->cors_any)
		return 1; /* not a browser */
	for (size_t i = 0; i < gw->cfg->n_cors_origins; i++)
		if (!strcmp(gw->cfg->cors_origins[i], origin))
			return 1;
	o = strstr(origin, "://");
	return o && lws_hdr_copy(wsi, host, sizeof(host), WSI_TOKEN_HOST) > 0 && !strcmp(o + 3, host);
}

int
gw_ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	struct gw_ws_pss *pss = user;
	/* Some callbacks come on a fake wsi without a protocol (OPENSSL_LOAD_EXTRA_SERVER_VERIFY_CERTS
	 * while the TLS vhost is created): no gateway for those. */
	const struct lws_protocols *pr = lws_get_protocol(wsi);
	struct gw *gw = pr ? (struct gw *)pr->user : NULL;
	struct gw_ws_conn *c = pss ? pss->conn : NULL;
	char path[64];

	switch (reason) {
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		/* lws 4.1.6 always advertises RFC 8441 (SETTINGS_ENABLE_CONNECT_PROTOCOL, with no way
		 * to turn it off), but our frames are written raw (see the top of this file), which an
		 * h2 stream cannot carry: WebSocket is HTTP/1.1 only (docs/security.md). */
		if (gw_is_h2(wsi))
			return 1;
		if (lws_hdr_copy(wsi, path, sizeof(path), WSI_TOKEN_GET_URI) <= 0 || strcmp(path, "/v1/ws"))
			return 1;
		if (gw->state != GW_RUNNING || !origin_ok(gw, wsi))
			return 1;
		return 0;
	case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: {
		/* The token is checked here, where a refusal can still be an HTTP 401 (auth.c); lws
		 * hangs up after it (-1), as the connection has not been read past the headers. */
		int ret;

		if (in && !strcasecmp((const char *)in, "websocket") &&
		    gw_auth_http(gw, wsi, GW_AUTH_CONNECT, NULL, GW_REPLY_CLOSE | GW_AUTH_UPGRADE, NULL,
				 &ret))
			return -1;
		return 0;
	}
	case LWS_CALLBACK_ESTABLISHED: {
		struct gw_principal *who = NULL;
		struct gw_error e;

		/* Headers are still attached: keep the token's scope for the connection's life. */
		if (gw_auth_authenticate(gw, wsi, &who, &e))
			return -1;
		c = xcalloc(1, sizeof(*c));
		c->gw = gw;
		c->who = who;
		gw_conn_client(gw, wsi, c->client);
		gw_buf_init(&c->rx, 0);
		gw_buf_init(&c->ctrl, 0);
		gw_buf_init(&c->pubdata, 0);
		gw_sub_register(gw, &c->sub, GW_SUB_WS, wsi);
		gw_sub_expire_at(gw, &c->sub, who ? who->exp : 0);
		pss->conn = c;
		gw_conn_ws_established(wsi); /* conn.c: its frames are followed for unmasked ones */
		gw->m.ws_open++;
		gw->m.ws_total++;
		return 0;
	}
	case LWS_CALLBACK_RECEIVE: {
		int last;

		if (!c)
			return -1;
		if (lws_frame_is_binary(wsi)) {
			static const char why[] = "text frames only";

			lws_close_reason(wsi, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE, (unsigned char *)why,
					 sizeof(why) - 1);
			return -1;
		}
		/* The frame's declared length counts too: a client announcing a frame of 2^62 bytes is
		 * told at its first bytes, not after we have buffered the limit. */
		if (c->rx.len + len + lws_remaining_packet_payload(wsi) > gw->cfg->max_ws_message_bytes) {
			static const char why[] = "message too big";

			gw->m.limit_hits[GW_LIMIT_WS_MESSAGE]++;
			lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, (unsigned char *)why,
					 sizeof(why) - 1);
			return -1;
		}
		last = lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi);
		if (last && !c->rx.len) {
			handle_message(c, in, len); /* the common case: a whole message in one read */
			return 0;
		}
		gw_buf_append(&c->rx, in, len);
		if (!last)
			return 0;
		handle_message(c, (const char *)gw_buf_data(&c->rx), c->rx.len);
		gw_buf_reset(&c->rx);
		if (c->rx.cap > 65536)
			gw_buf_free(&c->rx);
		return 0;
	}
	case LWS_CALLBACK_SERVER_WRITEABLE:
		return c ? writeable(c, wsi) : 0;
	case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
		/* A static file or a 404 of ours finished: conn.c reads the next request's head. */
		gw_conn_http_dropped(wsi, in);
		break;
	case LWS_CALLBACK_WSI_CREATE:
		/* Every new wsi, HTTP/2 streams included: conn.c matches streams with its frame tap. */
		gw_conn_wsi_created(wsi);
		return 0;
	case LWS_CALLBACK_WSI_DESTROY:
		/* Every wsi's last callback, whatever its protocol: conn.c releases its counts. */
		gw_conn_destroyed(wsi);
		return 0;
	case LWS_CALLBACK_CLOSED:
		if (!c)
			return 0;
		pss->conn = NULL;
		for (size_t i = 0; i < c->n_topics; i++) { /* now: the helper thread stops after CLOSED */
			gw_progress_end(c->topics[i].prog);
			c->topics[i].prog = NULL;
		}
		if (c->sub.stall_armed)
			gw->m.stalled_dropped++;
		gw_sub_unregister(gw, &c->sub);
		gw->m.ws_open--;
		c->detached = 1;
		if (!c->pending_acks)
			conn_free(c);
		return 0;
	case LWS_CALLBACK_HTTP: {
		/* No mount took this request (no static root): answer like the API does. */
		static const char body[] = "{\"error\":{\"code\":\"not_found\",\"message\":\"no such route\"}}\n";
		unsigned char buf[LWS_PRE + 1024], *start = buf + LWS_PRE, *p = start,
						    *end = buf + sizeof(buf) - sizeof(body);

		if (lws_add_http_common_headers(wsi, 404, "application/json", sizeof(body) - 1, &p, end) ||
		    lws_finalize_http_header(wsi, &p, end))
			return -1;
		if (gw_is_h2(wsi)) {
			/* HEADERS, then the body as one DATA frame ending the stream: far below the
			 * frame size and any peer's first window. */
			if (lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_HEADERS) < 0)
				return -1;
			memcpy(buf + LWS_PRE, body, sizeof(body) - 1);
			lws_write(wsi, buf + LWS_PRE, sizeof(body) - 1, LWS_WRITE_HTTP_FINAL);
			return -1;
		}
		memcpy(p, body, sizeof(body) - 1);
		p += sizeof(body) - 1;
		if (lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_FINAL) < 0)
			return -1;
		return lws_http_transaction_completed(wsi) ? -1 : 0;
	}
	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}
