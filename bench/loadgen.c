/*
 * loadgen.c - a load tool for publish/subscribe servers over HTTP/1.1, on one epoll loop: keep-alive
 * POST publishers (or one streamed chunked NDJSON POST per session) and Server-Sent Events
 * subscribers, driven by URL templates, so the same workload runs against litegate and against
 * nginx + nchan (bench/gateway_vs_nchan.sh runs both side by side).
 *
 *   loadgen --pub-url URL --sub-url URL [--sessions N] [--rate R] [--duration S] [--publishers P]
 *           [--idle-subs N] [--resume] [--ramp] [--ndjson] [--server-pid PID] ...   (--help)
 *   loadgen --self-test
 *
 * URL templates: "{n}" becomes the session number, "{r}" a tag unique to the run (and to each ramp
 * step), so runs against one server never read each other's topics. Loopback addresses only.
 *
 * Every message's data carries "r=<tag> s=<session> q=<sequence> t=<scheduled send time, us>".
 * Loss, duplicates and reordering are found per session from q (two bitmaps: acknowledged by the
 * publisher, seen by the subscriber), never from the server's event ids, which differ between
 * servers. Latency runs from the *scheduled* send time of a paced schedule (message i of the run is
 * due at start + i/R, round robin over the sessions), so a server that stalls the publishers is
 * charged for the wait (no coordinated omission). Each session's messages go through one publisher
 * connection, one request at a time, so their order on the wire is their sequence order.
 *
 * A message counts as lost when the publisher got a 2xx for it and its subscriber had not seen it
 * when the run drained (all replies in and every acknowledged message seen, or --drain-s passed).
 * --resume makes every subscriber close once, mid-run and possibly mid-event, stay away about
 * --resume-gap-ms and come back with Last-Event-ID set to the id of the last complete event, as
 * EventSource does. --fault lose|dup|swap mis-publishes one message of session 0 on purpose, to show
 * end to end, against a real server, that the accounting catches it; --self-test checks the HTTP,
 * chunked, SSE and accounting code against fake streams with known faults.
 *
 * Single-threaded by design: on a 2-core machine the server under test keeps the other core.
 * Every loop is bounded in count or time; the whole run has a hard time limit (SIGALRM).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "benchlib.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

/* ---- URL templates ---- */

static size_t expand(const char *tmpl, uint64_t n, uint32_t tag, char *out, size_t cap)
{
	size_t o = 0;
	const char *p = tmpl;
	while (*p && o + 24 < cap) {
		if (!strncmp(p, "{n}", 3)) {
			o += (size_t)snprintf(out + o, cap - o, "%" PRIu64, n);
			p += 3;
		} else if (!strncmp(p, "{r}", 3)) {
			o += (size_t)snprintf(out + o, cap - o, "%08x", tag);
			p += 3;
		} else {
			out[o++] = *p++;
		}
	}
	out[o] = 0;
	return o;
}

/* ---- Connections ---- */

enum kind { K_PUB = 1, K_SUB, K_IDLE, K_NDJ };
/* NONE: closed; WAIT: queued to connect; READY: a publisher with no request out;
 * HEAD: awaiting/reading response headers; BODY: reading the response body. */
enum cstate { CS_NONE, CS_WAIT, CS_CONNECTING, CS_READY, CS_HEAD, CS_BODY };

typedef struct conn {
	int fd;
	uint8_t kind, state;
	uint8_t epout, queued, attempts;
	hresp hr;        /* the response being read (status, body mode, connection: close) */
	uint32_t id;     /* session (SUB, NDJ), publisher (PUB), idle index (IDLE) */
	void *owner;     /* sess or pub */
	char *out;
	size_t out_len, out_off, out_cap;
	char *in;        /* a partial SSE line or a reply body */
	size_t in_len, in_cap;
} conn;

typedef struct msg {
	uint32_t s, q, ph, pad;
	uint64_t t; /* scheduled send time, ns (monotonic) */
} msg;

typedef struct pub {
	conn c;
	msg *q;
	size_t qh, qn, qcap;
	msg cur;
	int busy;
	uint32_t rr; /* closed loop: next of its own sessions */
} pub;

typedef struct sess {
	conn sub, ndj;
	uint64_t *acked, *seen; /* bitmaps by sequence number */
	uint32_t cap;           /* bits */
	uint32_t next_seq, max_seen1, lines, got; /* got: distinct messages seen */
	int held;               /* --fault swap: seq 3 held back */
	uint64_t held_t;
	char last_id[64], id_buf[64]; /* EventSource's last event ID string and buffer */
	uint8_t has_msg, bad, skip, up_once, ndj_done;
	uint32_t m_r, m_s, m_q;
	uint64_t m_t;
	uint64_t drop_at, ndj_count;
	uint32_t reconnects, sub_fails;
} sess;

typedef struct stats {
	uint64_t gen, lines, sent, replies, acked, pub_err, pub_unknown, faults;
	uint64_t uniq, dup, reord, misrouted, foreign, bad, control, lost, unacked_seen, matched;
	uint64_t sub_up, sub_fail, sub_drops, resumes, long_lines, proto_err, ndj_err, ndj_mismatch;
	uint64_t warm;          /* warm-up messages among the replies (or NDJSON counts) */
	double warm_ms, warm_p50, warm_p99;
	int last_err_status;
	char last_err[160];
	hist lat, ack;
	uint64_t t_start, t_sched_end, t_last_ack, t_end;
} stats;

typedef struct deferred {
	conn *c;
	uint64_t at;
} deferred;

static struct opts {
	const char *pub_url, *sub_url, *fault, *label;
	uint32_t sessions, publishers, idle, max_connecting;
	double rate, duration, drain_s, resume_gap_ms, ramp_max, ramp_factor, ramp_p99_ms;
	int resume, ramp, ndjson, no_subs, no_warmup, server_pid, msg_size, fault_kind, self_test;
} o = {
	.sessions = 1000, .publishers = 64, .max_connecting = 256, .rate = 20000, .duration = 10,
	.drain_s = 5, .resume_gap_ms = 1000, .ramp_max = 200000, .ramp_factor = 1.25,
	.ramp_p99_ms = 50, .msg_size = 32, .label = "run",
};

enum { F_NONE, F_LOSE, F_DUP, F_SWAP };

static struct glob {
	int ep;
	url pu, su;
	uint64_t t0;
	uint32_t base_tag, tag, phase;
	sess *sess;
	uint32_t nsess;
	pub *pubs;
	conn *idle;
	uint64_t idle_ok, idle_fail, idle_lost;
	conn **cq;
	size_t cq_head, cq_len, cq_cap;
	uint32_t connecting;
	deferred *dl;
	size_t dl_len, dl_cap;
	uint32_t spread;
	uint64_t conn_seq;
	stats st;
	char **pub_path, **sub_path;
	double rate;
	uint64_t t_start, sched_end, gen_i, next_drop_scan;
	int sched_on, running;
	uint32_t *dirty;
	size_t ndirty;
	volatile sig_atomic_t stop;
} g;

static char g_buf[256 * 1024];

#define MAX_LINE 65536

/* Complaints about single connections: the first few, then a count (a dead server would make
 * thousands). */
static unsigned g_complaints;

static int complain(void)
{
	if (++g_complaints <= 10)
		return 1;
	if (g_complaints == 11)
		fprintf(stderr, "loadgen: (further connection errors are counted, not shown)\n");
	return 0;
}

static const char *kind_name(int k)
{
	return k == K_PUB ? "publisher" : k == K_SUB ? "subscriber" : k == K_IDLE ? "idle" : "ndjson";
}

/* ---- Connect queue (bounded connects in flight) and deferred reconnects ---- */

static void cq_push(conn *c)
{
	if (c->queued)
		return;
	if (g.cq_len == g.cq_cap) {
		size_t nc = g.cq_cap ? g.cq_cap * 2 : 1024;
		conn **n = xcalloc(nc, sizeof *n);
		for (size_t i = 0; i < g.cq_len; i++)
			n[i] = g.cq[(g.cq_head + i) % g.cq_cap];
		free(g.cq);
		g.cq = n;
		g.cq_cap = nc;
		g.cq_head = 0;
	}
	g.cq[(g.cq_head + g.cq_len) % g.cq_cap] = c;
	g.cq_len++;
	c->queued = 1;
	c->state = CS_WAIT;
}

static void defer_connect(conn *c, uint64_t at)
{
	if (g.dl_len == g.dl_cap) {
		g.dl_cap = g.dl_cap ? g.dl_cap * 2 : 256;
		g.dl = xrealloc(g.dl, g.dl_cap * sizeof *g.dl);
	}
	g.dl[g.dl_len++] = (deferred){c, at};
	c->state = CS_WAIT;
}

/* Forget queued and deferred connects of sessions' connections (before their array is freed). */
static void purge_session_conns(void)
{
	size_t n = 0;
	for (size_t i = 0; i < g.cq_len; i++) {
		conn *c = g.cq[(g.cq_head + i) % g.cq_cap];
		if (c->kind == K_SUB || c->kind == K_NDJ)
			continue;
		g.cq[(g.cq_head + n) % g.cq_cap] = c;
		n++;
	}
	g.cq_len = n;
	n = 0;
	for (size_t i = 0; i < g.dl_len; i++)
		if (g.dl[i].c->kind != K_SUB && g.dl[i].c->kind != K_NDJ)
			g.dl[n++] = g.dl[i];
	g.dl_len = n;
}

static void set_epout(conn *c, int on)
{
	struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
	if (c->fd >= 0 && epoll_ctl(g.ep, EPOLL_CTL_MOD, c->fd, &ev) == 0)
		c->epout = (uint8_t)on;
}

static void conn_close(conn *c)
{
	if (c->fd >= 0) {
		close(c->fd);
		if (c->state == CS_CONNECTING)
			g.connecting--;
	}
	c->fd = -1;
	c->state = CS_NONE;
	c->in_len = 0;
	c->out_len = c->out_off = 0;
	c->epout = 0;
	hr_reset(&c->hr);
}

/* A request is out (or about to be): read a new response. */
static void expect_reply(conn *c)
{
	c->state = CS_HEAD;
	hr_reset(&c->hr);
}

/* 0: all sent or the rest waits for EPOLLOUT; -1: the connection broke. */
static int conn_flush(conn *c)
{
	for (int guard = 0; c->out_off < c->out_len && guard < 64; guard++) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			c->out_off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (!c->epout)
				set_epout(c, 1);
			return 0;
		}
		return -1;
	}
	if (c->out_off < c->out_len)
		return 0;
	c->out_len = c->out_off = 0;
	if (c->epout)
		set_epout(c, 0);
	if (c->kind == K_IDLE) { /* 50,000 of them: keep nothing we no longer need */
		free(c->out);
		c->out = NULL;
		c->out_cap = 0;
	}
	return 0;
}

static void conn_lost(conn *c, uint64_t now);
static void on_connected(conn *c, uint64_t now);

static void conn_failed(conn *c, int err, uint64_t now)
{
	conn_close(c);
	c->attempts++;
	if (c->kind == K_SUB && g.running) {
		sess *s = c->owner;
		if (++s->sub_fails < 10) {
			defer_connect(c, now + 200 * MS);
			return;
		}
		g.st.sub_fail++;
	} else if (c->kind == K_IDLE) {
		if (c->attempts < 3) {
			defer_connect(c, now + 200 * MS);
			return;
		}
		g.idle_fail++;
	} else if (c->kind == K_PUB) {
		if (c->attempts < 100) {
			defer_connect(c, now + 100 * MS);
			return;
		}
	} else if (c->kind == K_NDJ) {
		sess *s = c->owner;
		s->ndj_done = 1;
		g.st.ndj_err++;
	}
	if (complain())
		fprintf(stderr, "loadgen: %s %u: connect: %s\n", kind_name(c->kind), c->id, strerror(err));
}

static void start_connect(conn *c, uint64_t now)
{
	const url *u = (c->kind == K_PUB || c->kind == K_NDJ) ? &g.pu : &g.su;
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		conn_failed(c, errno, now);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (g.spread > 1) { /* past ~28k connections one source address runs out of ports */
		struct sockaddr_in src = {.sin_family = AF_INET};
		src.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(g.conn_seq++ % g.spread));
		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
		if (bind(fd, (struct sockaddr *)&src, sizeof src))
			fprintf(stderr, "loadgen: bind source: %s\n", strerror(errno));
	}
	if (connect(fd, (const struct sockaddr *)&u->addr, sizeof u->addr) && errno != EINPROGRESS) {
		int e = errno;
		close(fd);
		conn_failed(c, e, now);
		return;
	}
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
	if (epoll_ctl(g.ep, EPOLL_CTL_ADD, fd, &ev)) {
		int e = errno;
		close(fd);
		conn_failed(c, e, now);
		return;
	}
	c->fd = fd;
	c->state = CS_CONNECTING;
	c->epout = 1;
	g.connecting++;
}

static void pump_connects(uint64_t now)
{
	size_t n = 0;
	for (size_t i = 0; i < g.dl_len; i++) {
		if (g.dl[i].at <= now)
			cq_push(g.dl[i].c);
		else
			g.dl[n++] = g.dl[i];
	}
	g.dl_len = n;
	for (int guard = 0; g.cq_len && g.connecting < o.max_connecting && guard < 4096; guard++) {
		conn *c = g.cq[g.cq_head];
		g.cq_head = (g.cq_head + 1) % g.cq_cap;
		g.cq_len--;
		c->queued = 0;
		if (c->state == CS_WAIT)
			start_connect(c, now);
	}
}

/* ---- Sessions: the publisher side of the accounting ---- */

static void sess_grow(sess *s, uint32_t q)
{
	if (q < s->cap)
		return;
	uint32_t nc = s->cap ? s->cap : 64;
	while (nc <= q)
		nc *= 2;
	size_t ow = s->cap / 64, nw = nc / 64;
	s->acked = xrealloc(s->acked, nw * 8);
	s->seen = xrealloc(s->seen, nw * 8);
	memset(s->acked + ow, 0, (nw - ow) * 8);
	memset(s->seen + ow, 0, (nw - ow) * 8);
	s->cap = nc;
}

#define BIT(m, q) (((m)[(q) / 64] >> ((q) % 64)) & 1u)
#define SETBIT(m, q) ((m)[(q) / 64] |= 1ull << ((q) % 64))

static void mark_acked(sess *s, uint32_t q)
{
	sess_grow(s, q);
	if (BIT(s->acked, q))
		return;
	SETBIT(s->acked, q);
	g.st.acked++;
	if (BIT(s->seen, q))
		g.st.matched++;
}

static uint32_t sess_index(const sess *s)
{
	return (uint32_t)(s - g.sess);
}

/* The message's data: "r=<tag> s=<session> q=<seq> t=<scheduled us>" padded to --msg-size. */
static int fmt_payload(char *out, size_t cap, uint32_t s, uint32_t q, uint64_t t)
{
	int n = snprintf(out, cap, "r=%08x s=%u q=%u t=%" PRIu64, g.tag, s, q, (t - g.t0) / 1000);
	if (n < 0 || (size_t)n >= cap)
		return 0;
	if (n < o.msg_size && (size_t)o.msg_size < cap) {
		out[n++] = ' ';
		while (n < o.msg_size)
			out[n++] = 'x';
		out[n] = 0;
	}
	return n;
}

static void pub_push(pub *p, msg m)
{
	if (p->qn == p->qcap) {
		size_t nc = p->qcap ? p->qcap * 2 : 64;
		msg *n = xcalloc(nc, sizeof *n);
		for (size_t i = 0; i < p->qn; i++)
			n[i] = p->q[(p->qh + i) % p->qcap];
		free(p->q);
		p->q = n;
		p->qcap = nc;
		p->qh = 0;
	}
	p->q[(p->qh + p->qn) % p->qcap] = m;
	p->qn++;
}

static void emit(sess *s, uint32_t q, uint64_t t)
{
	uint32_t si = sess_index(s);
	if (o.ndjson) {
		char data[512], line[640], head[16];
		int dn = fmt_payload(data, sizeof data, si, q, t);
		int ln = snprintf(line, sizeof line, "{\"event\":\"token\",\"data\":\"%.*s\"}\n", dn, data);
		int hn = snprintf(head, sizeof head, "%x\r\n", ln);
		conn *c = &s->ndj;
		int was_empty = c->out_len == c->out_off;
		buf_put(&c->out, &c->out_len, &c->out_cap, head, (size_t)hn);
		buf_put(&c->out, &c->out_len, &c->out_cap, line, (size_t)ln);
		buf_put(&c->out, &c->out_len, &c->out_cap, "\r\n", 2);
		s->lines++;
		g.st.lines++;
		if (was_empty)
			g.dirty[g.ndirty++] = si;
	} else {
		pub_push(&g.pubs[si % o.publishers], (msg){.s = si, .q = q, .ph = g.phase, .t = t});
	}
}

/* Next message of session s, scheduled at t; --fault mis-publishes session 0's fourth message. */
static void gen_msg(sess *s, uint64_t t)
{
	uint32_t q = s->next_seq++;
	g.st.gen++;
	if (o.fault_kind && sess_index(s) == 0 && (q == 3 || q == 4)) {
		if (o.fault_kind == F_LOSE && q == 3) { /* counted as published, never sent */
			mark_acked(s, q);
			g.st.faults++;
			return;
		}
		if (o.fault_kind == F_DUP && q == 3) {
			emit(s, q, t);
			emit(s, q, t);
			g.st.faults++;
			return;
		}
		if (o.fault_kind == F_SWAP && q == 3) {
			s->held = 1;
			s->held_t = t;
			return;
		}
		if (o.fault_kind == F_SWAP && q == 4 && s->held) {
			emit(s, 4, t);
			emit(s, 3, s->held_t);
			s->held = 0;
			g.st.faults++;
			return;
		}
	}
	emit(s, q, t);
}

static void pub_try_send(pub *p, uint64_t now)
{
	conn *c = &p->c;
	if (p->busy || c->state != CS_READY)
		return;
	if (!p->qn && g.rate <= 0 && g.sched_on && now < g.sched_end && g.nsess > p->c.id) {
		/* closed loop: make this publisher's next message now */
		uint32_t own = (g.nsess - p->c.id + o.publishers - 1) / o.publishers;
		for (int guard = 0; !p->qn && guard < 4; guard++) {
			uint32_t si = p->c.id + (p->rr % own) * o.publishers;
			p->rr++;
			gen_msg(&g.sess[si], now);
		}
	}
	if (!p->qn)
		return;
	msg m = p->q[p->qh];
	p->qh = (p->qh + 1) % p->qcap;
	p->qn--;
	if (m.ph != g.phase)
		return;
	char data[512], body[640], head[768];
	int dn = fmt_payload(data, sizeof data, m.s, m.q, m.t);
	int bn = snprintf(body, sizeof body, "{\"event\":\"token\",\"data\":\"%.*s\"}", dn, data);
	int hn = snprintf(head, sizeof head,
			  "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
			  "Content-Length: %d\r\n\r\n",
			  g.pub_path[m.s], g.pu.hostport, bn);
	c->out_len = c->out_off = 0;
	buf_put(&c->out, &c->out_len, &c->out_cap, head, (size_t)hn);
	buf_put(&c->out, &c->out_len, &c->out_cap, body, (size_t)bn);
	p->cur = m;
	p->busy = 1;
	g.st.sent++;
	expect_reply(c);
	c->in_len = 0;
	if (conn_flush(c))
		conn_lost(c, now);
}

/* ---- Subscribers: SSE parsing and the receiving side of the accounting ---- */

static const char *parse_u64(const char *p, const char *end, uint64_t *v, int base)
{
	uint64_t x = 0;
	const char *s = p;
	while (p < end && p - s < 20) {
		int d;
		if (*p >= '0' && *p <= '9')
			d = *p - '0';
		else if (base == 16 && *p >= 'a' && *p <= 'f')
			d = *p - 'a' + 10;
		else
			break;
		x = x * (uint64_t)base + (uint64_t)d;
		p++;
	}
	if (p == s)
		return NULL;
	*v = x;
	return p;
}

/* Finds "r=<hex> s=<n> q=<n> t=<n>" anywhere in a data line (litegate sends the data string,
 * nchan the whole posted body). 0 on success. */
static int parse_payload(const char *p, size_t n, uint32_t *r, uint32_t *s, uint32_t *q, uint64_t *t)
{
	const char *end = p + n;
	const char *a = memmem(p, n, "r=", 2);
	uint64_t v[4];
	static const char *const keys[] = {" s=", " q=", " t="};
	if (!a || !(a = parse_u64(a + 2, end, &v[0], 16)))
		return -1;
	for (int i = 0; i < 3; i++) {
		if (end - a < 3 || memcmp(a, keys[i], 3) || !(a = parse_u64(a + 3, end, &v[i + 1], 10)))
			return -1;
	}
	if (v[0] > UINT32_MAX || v[1] > UINT32_MAX || v[2] >= (1u << 28))
		return -1;
	*r = (uint32_t)v[0];
	*s = (uint32_t)v[1];
	*q = (uint32_t)v[2];
	*t = v[3];
	return 0;
}

static void account(sess *s, uint64_t now)
{
	stats *st = &g.st;
	if (s->m_r != g.tag) {
		st->foreign++;
		return;
	}
	if (s->m_s != sess_index(s)) {
		st->misrouted++;
		return;
	}
	uint32_t q = s->m_q;
	sess_grow(s, q);
	if (BIT(s->seen, q)) {
		st->dup++;
		return;
	}
	SETBIT(s->seen, q);
	st->uniq++;
	s->got++;
	if (q + 1 < s->max_seen1)
		st->reord++;
	else
		s->max_seen1 = q + 1;
	if (BIT(s->acked, q))
		st->matched++;
	uint64_t sched = g.t0 + s->m_t * 1000;
	h_add(&st->lat, now > sched ? now - sched : 0);
}

static void sse_line(sess *s, const char *p, size_t n, uint64_t now)
{
	if (n && p[n - 1] == '\r')
		n--;
	if (!n) { /* dispatch */
		memcpy(s->last_id, s->id_buf, sizeof s->last_id);
		if (s->skip)
			g.st.control++;
		else if (s->has_msg)
			account(s, now);
		else if (s->bad)
			g.st.bad++;
		s->has_msg = s->bad = s->skip = 0;
		return;
	}
	if (p[0] == ':')
		return;
	const char *colon = memchr(p, ':', n);
	size_t fl = colon ? (size_t)(colon - p) : n;
	const char *v = colon ? colon + 1 : p + n;
	size_t vl = (size_t)(p + n - v);
	if (vl && *v == ' ') {
		v++;
		vl--;
	}
	if (fl == 4 && !memcmp(p, "data", 4)) {
		if (!s->has_msg && !parse_payload(v, vl, &s->m_r, &s->m_s, &s->m_q, &s->m_t))
			s->has_msg = 1;
		else if (!s->has_msg)
			s->bad = 1;
	} else if (fl == 2 && !memcmp(p, "id", 2)) {
		if (!memchr(v, 0, vl)) {
			size_t k = vl < sizeof s->id_buf - 1 ? vl : sizeof s->id_buf - 1;
			memcpy(s->id_buf, v, k);
			s->id_buf[k] = 0;
		}
	} else if (fl == 5 && !memcmp(p, "event", 5)) {
		if (!((vl == 5 && !memcmp(v, "token", 5)) || (vl == 7 && !memcmp(v, "message", 7))))
			s->skip = 1; /* litegate's gap / reset, or anything that is not a token */
	}
}

static void sse_feed(sess *s, const char *p, size_t n, uint64_t now)
{
	conn *c = &s->sub;
	const char *end = p + n;
	if (c->in_len) {
		const char *nl = memchr(p, '\n', n);
		size_t k = nl ? (size_t)(nl - p) : n;
		if (c->in_len + k > MAX_LINE) {
			g.st.long_lines++;
			c->in_len = 0;
		} else {
			buf_put(&c->in, &c->in_len, &c->in_cap, p, k);
		}
		if (!nl)
			return;
		sse_line(s, c->in, c->in_len, now);
		c->in_len = 0;
		p = nl + 1;
	}
	for (size_t guard = 0; p < end && guard <= n; guard++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl) {
			buf_put(&c->in, &c->in_len, &c->in_cap, p, (size_t)(end - p));
			break;
		}
		sse_line(s, p, (size_t)(nl - p), now);
		p = nl + 1;
	}
}

/* The subscriber closes (resume test): a partial event is discarded and the id buffer goes back to
 * the last dispatched id, as EventSource does on reconnect. */
static void sub_reset_parse(sess *s)
{
	s->sub.in_len = 0;
	s->has_msg = s->bad = s->skip = 0;
	memcpy(s->id_buf, s->last_id, sizeof s->id_buf);
}

static size_t sub_request(sess *s, char *out, size_t cap)
{
	char lei[96] = "";
	if (s->last_id[0])
		snprintf(lei, sizeof lei, "Last-Event-ID: %s\r\n", s->last_id);
	int n = snprintf(out, cap,
			 "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n"
			 "Cache-Control: no-cache\r\n%s\r\n",
			 g.sub_path[sess_index(s)], g.su.hostport, lei);
	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* ---- HTTP responses ---- */

static void resp_done(conn *c, uint64_t now);

static void proto_error(conn *c, uint64_t now, const char *what)
{
	g.st.proto_err++;
	if (complain())
		fprintf(stderr, "loadgen: %s %u: protocol error: %s\n", kind_name(c->kind), c->id, what);
	conn_lost(c, now);
}

static void body_sink(conn *c, const char *p, size_t n, uint64_t now)
{
	if (c->kind == K_SUB) {
		sse_feed(c->owner, p, n, now);
	} else if (c->kind == K_PUB || c->kind == K_NDJ) {
		size_t k = c->in_len + n > 2048 ? (c->in_len < 2048 ? 2048 - c->in_len : 0) : n;
		if (k)
			buf_put(&c->in, &c->in_len, &c->in_cap, p, k);
	}
	/* K_IDLE: heartbeats and the like are read and dropped */
}

static void on_headers(conn *c, uint64_t now);

/* The response parser's events, to the connection's reactions (which may close it). */
static void http_feed(conn *c, const char *p, size_t n, uint64_t now)
{
	if (c->state != CS_HEAD && c->state != CS_BODY) {
		proto_error(c, now, "bytes nobody asked for");
		return;
	}
	for (size_t guard = 0; guard <= 2 * n + 4; guard++) {
		const char *d;
		size_t used, dl;
		int ev = hr_step(&c->hr, p, n, &used, &d, &dl);
		p += used;
		n -= used;
		switch (ev) {
		case HR_MORE:
			return;
		case HR_ERROR:
			proto_error(c, now, c->hr.err);
			return;
		case HR_HEADERS:
			c->state = CS_BODY;
			if (c->kind == K_IDLE) /* 50,000 of them: keep nothing we no longer need */
				hr_release(&c->hr);
			on_headers(c, now);
			if (c->state != CS_BODY)
				return;
			break;
		case HR_DATA:
			body_sink(c, d, dl, now);
			if (c->state != CS_BODY)
				return;
			break;
		case HR_DONE:
			resp_done(c, now);
			if (n && c->state != CS_NONE)
				proto_error(c, now, "bytes after the response");
			return;
		}
	}
}

/* ---- Reactions ---- */

static void on_pub_reply(pub *p, uint64_t now)
{
	conn *c = &p->c;
	int ok = c->hr.status >= 200 && c->hr.status < 300;
	if (p->busy) {
		p->busy = 0;
		if (p->cur.ph == g.phase && g.sess) {
			g.st.replies++;
			if (ok) {
				mark_acked(&g.sess[p->cur.s], p->cur.q);
				h_add(&g.st.ack, now > p->cur.t ? now - p->cur.t : 0);
				g.st.t_last_ack = now;
			} else {
				g.st.pub_err++;
				g.st.last_err_status = c->hr.status;
				snprintf(g.st.last_err, sizeof g.st.last_err, "%.*s", (int)(c->in_len < 120 ? c->in_len : 120),
					 c->in ? c->in : "");
			}
		}
	}
	c->in_len = 0;
	if (c->hr.conn_close) {
		conn_close(c);
		c->attempts = 0;
		cq_push(c);
		return;
	}
	c->state = CS_READY;
	pub_try_send(p, now);
}

static void on_ndj_reply(sess *s, uint64_t now)
{
	conn *c = &s->ndj;
	uint64_t count = 0;
	const char *k = c->in ? memmem(c->in, c->in_len, "\"count\":", 8) : NULL;
	if (k)
		parse_u64(k + 8, c->in + c->in_len, &count, 10);
	s->ndj_done = 1;
	s->ndj_count = count;
	if (c->hr.status == 200) {
		for (uint32_t q = 0; q < s->next_seq; q++)
			mark_acked(s, q);
		if (count != s->lines)
			g.st.ndj_mismatch++;
		g.st.replies += count;
		g.st.t_last_ack = now;
	} else {
		g.st.ndj_err++;
		g.st.last_err_status = c->hr.status;
		snprintf(g.st.last_err, sizeof g.st.last_err, "%.*s", (int)(c->in_len < 120 ? c->in_len : 120),
			 c->in ? c->in : "");
	}
	conn_close(c);
}

static void resp_done(conn *c, uint64_t now)
{
	if (c->kind == K_PUB)
		on_pub_reply(c->owner, now);
	else if (c->kind == K_NDJ)
		on_ndj_reply(c->owner, now);
	else
		conn_lost(c, now); /* a stream the server ended */
}

static void on_headers(conn *c, uint64_t now)
{
	if (c->kind == K_SUB) {
		sess *s = c->owner;
		if (c->hr.status != 200) {
			if (complain())
				fprintf(stderr, "loadgen: subscriber %u: HTTP %d\n", c->id, c->hr.status);
			conn_close(c);
			if (++s->sub_fails < 5 && g.running)
				defer_connect(c, now + 500 * MS);
			else
				g.st.sub_fail++;
			return;
		}
		if (!s->up_once)
			g.st.sub_up++;
		s->up_once = 1;
	} else if (c->kind == K_IDLE) {
		if (c->hr.status != 200) {
			g.idle_fail++;
			conn_close(c);
			return;
		}
		g.idle_ok++;
	} else if (c->kind == K_NDJ && c->hr.status != 200) {
		/* an early answer to a stream we are still sending is a refusal: read its body */
	}
}

static void conn_lost(conn *c, uint64_t now)
{
	uint8_t state = c->state, bmode = c->hr.bmode;
	if (c->kind == K_PUB) {
		pub *p = c->owner;
		if ((state == CS_BODY && bmode == HR_BM_EOF) && p->busy) { /* reply delimited by close */
			c->hr.conn_close = 1;
			on_pub_reply(p, now);
			return;
		}
		if (p->busy) {
			p->busy = 0;
			if (p->cur.ph == g.phase)
				g.st.pub_unknown++;
		}
		conn_close(c);
		c->attempts = 0;
		cq_push(c);
	} else if (c->kind == K_SUB) {
		sess *s = c->owner;
		conn_close(c);
		sub_reset_parse(s);
		if (g.running && state == CS_BODY) {
			g.st.sub_drops++;
			if (++s->reconnects < 50)
				defer_connect(c, now + 100 * MS);
		} else if (g.running && ++s->sub_fails < 10) {
			defer_connect(c, now + 200 * MS);
		}
	} else if (c->kind == K_IDLE) {
		conn_close(c);
		g.idle_lost++;
	} else {
		sess *s = c->owner;
		if (state == CS_BODY && bmode == HR_BM_EOF) {
			on_ndj_reply(s, now);
			return;
		}
		conn_close(c);
		if (!s->ndj_done) {
			s->ndj_done = 1;
			g.st.ndj_err++;
		}
	}
}

static void on_connected(conn *c, uint64_t now)
{
	char req[1024];
	set_epout(c, 0);
	c->attempts = 0;
	c->in_len = 0;
	switch (c->kind) {
	case K_PUB:
		c->state = CS_READY;
		pub_try_send(c->owner, now);
		return;
	case K_SUB: {
		size_t n = sub_request(c->owner, req, sizeof req);
		c->out_len = c->out_off = 0;
		buf_put(&c->out, &c->out_len, &c->out_cap, req, n);
		break;
	}
	case K_IDLE: {
		char path[600];
		expand(g.su.path, 1000000u + c->id, g.base_tag, path, sizeof path);
		int n = snprintf(req, sizeof req,
				 "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n", path,
				 g.su.hostport);
		c->out_len = c->out_off = 0;
		buf_put(&c->out, &c->out_len, &c->out_cap, req, (size_t)n);
		break;
	}
	case K_NDJ: /* the request head and any lines made meanwhile are already in out */
		break;
	}
	expect_reply(c);
	if (conn_flush(c))
		conn_lost(c, now);
}

static void conn_read(conn *c)
{
	for (int i = 0; i < 16 && c->fd >= 0; i++) {
		ssize_t n = recv(c->fd, g_buf, sizeof g_buf, MSG_DONTWAIT);
		uint64_t now = now_ns();
		if (n > 0) {
			http_feed(c, g_buf, (size_t)n, now);
			if ((size_t)n < sizeof g_buf)
				return;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		conn_lost(c, now);
		return;
	}
}

static void on_event(conn *c, uint32_t ev)
{
	uint64_t now = now_ns();
	if (c->fd < 0)
		return;
	if (c->state == CS_CONNECTING) {
		if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		int err = 0;
		socklen_t l = sizeof err;
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l))
			err = errno;
		if (!err && !(ev & EPOLLOUT))
			err = ECONNRESET;
		g.connecting--;
		c->state = CS_NONE;
		if (err) {
			close(c->fd);
			c->fd = -1;
			conn_failed(c, err, now);
			return;
		}
		on_connected(c, now);
		return;
	}
	if ((ev & EPOLLOUT) && c->out_off < c->out_len && conn_flush(c)) {
		conn_lost(c, now);
		return;
	}
	if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR))
		conn_read(c);
}

/* One turn: wait for events until `until` (absolute ns) at most, handle them, start connects. */
static void loop_once(uint64_t until)
{
	struct epoll_event evs[1024];
	uint64_t now = now_ns();
	uint64_t d = until > now ? until - now : 0;
	if (g.cq_len && g.connecting < o.max_connecting)
		d = 0;
	if (d > 50 * MS)
		d = 50 * MS;
	struct timespec ts = {.tv_sec = (time_t)(d / NS), .tv_nsec = (long)(d % NS)};
	int n = epoll_pwait2(g.ep, evs, 1024, &ts, NULL);
	for (int i = 0; i < n; i++)
		on_event(evs[i].data.ptr, evs[i].events);
	pump_connects(now_ns());
}

static void take_sample_server(sample *sm)
{
	take_sample(sm, o.server_pid);
}

/* ---- Phases ---- */

typedef struct result {
	double rate, achieved, p50, p99, p999, max, ack_p50, ack_p99, cpu, self_cpu;
	long rss0, rss1;
	uint64_t lost, dup, reord, err;
	int held;
} result;

static void sessions_setup(uint32_t n, double rate, double duration)
{
	char path[600];
	g.nsess = n;
	g.sess = xcalloc(n, sizeof *g.sess);
	g.pub_path = xcalloc(n, sizeof *g.pub_path);
	g.sub_path = xcalloc(n, sizeof *g.sub_path);
	g.dirty = xcalloc(n + 1, sizeof *g.dirty);
	g.ndirty = 0;
	uint32_t est = (uint32_t)(rate > 0 ? rate * duration / n * 1.2 : 256) + 64;
	for (uint32_t i = 0; i < n; i++) {
		sess *s = &g.sess[i];
		s->sub = (conn){.fd = -1, .kind = K_SUB, .id = i, .owner = s};
		s->ndj = (conn){.fd = -1, .kind = K_NDJ, .id = i, .owner = s};
		sess_grow(s, est);
		expand(g.pu.path, i, g.tag, path, sizeof path);
		g.pub_path[i] = strdup(path);
		expand(g.su.path, i, g.tag, path, sizeof path);
		g.sub_path[i] = strdup(path);
		if (!g.pub_path[i] || !g.sub_path[i])
			die("out of memory");
	}
}

static void sessions_teardown(void)
{
	for (uint32_t i = 0; i < g.nsess; i++) {
		sess *s = &g.sess[i];
		conn_close(&s->sub);
		conn_close(&s->ndj);
		free(s->sub.in);
		free(s->sub.out);
		hr_release(&s->sub.hr);
		hr_release(&s->ndj.hr);
		free(s->ndj.in);
		free(s->ndj.out);
		free(s->acked);
		free(s->seen);
		free(g.pub_path[i]);
		free(g.sub_path[i]);
	}
	purge_session_conns();
	for (uint32_t i = 0; i < o.publishers; i++)
		g.pubs[i].qn = 0;
	free(g.sess);
	free(g.pub_path);
	free(g.sub_path);
	free(g.dirty);
	g.sess = NULL;
	g.pub_path = g.sub_path = NULL;
	g.dirty = NULL;
	g.nsess = 0;
}

static void count_loss(void)
{
	stats *st = &g.st;
	for (uint32_t i = 0; i < g.nsess; i++) {
		sess *s = &g.sess[i];
		for (uint32_t w = 0; w < s->cap / 64; w++) {
			st->lost += (uint64_t)__builtin_popcountll(s->acked[w] & ~s->seen[w]);
			st->unacked_seen += (uint64_t)__builtin_popcountll(s->seen[w] & ~s->acked[w]);
		}
	}
}

static int drained(void)
{
	if (!o.ndjson)
		for (uint32_t i = 0; i < o.publishers; i++)
			if (g.pubs[i].busy || g.pubs[i].qn)
				return 0;
	if (o.ndjson)
		for (uint32_t i = 0; i < g.nsess; i++)
			if (!g.sess[i].ndj_done)
				return 0;
	return o.no_subs || g.st.matched >= g.st.acked;
}

static void flush_dirty(uint64_t now)
{
	for (size_t i = 0; i < g.ndirty; i++) {
		conn *c = &g.sess[g.dirty[i]].ndj;
		if (c->fd >= 0 && c->state != CS_CONNECTING && c->state != CS_WAIT && conn_flush(c))
			conn_lost(c, now);
	}
	g.ndirty = 0;
}

/* Paced schedule: message i is due at t_start + i / rate, for session i mod N. */
static void gen_due(uint64_t now)
{
	for (int guard = 0; guard < 200000; guard++) {
		uint64_t due = g.t_start + (uint64_t)((double)g.gen_i * 1e9 / g.rate);
		if (due > now || due >= g.sched_end)
			break;
		uint32_t si = (uint32_t)(g.gen_i % g.nsess);
		g.gen_i++;
		gen_msg(&g.sess[si], due);
		if (!o.ndjson)
			pub_try_send(&g.pubs[si % o.publishers], now);
	}
	flush_dirty(now);
}

static uint64_t next_due(void)
{
	return g.t_start + (uint64_t)((double)g.gen_i * 1e9 / g.rate);
}

/* Closed loop NDJSON: at most NDJ_WINDOW lines of a stream not yet seen by its subscriber (the
 * stream's "acknowledgement", as the reply only comes at the end), and a few KB queued. Without the
 * window the kernel's socket buffers would take seconds of backlog. */
#define NDJ_WINDOW 64

static void ndj_fill(uint64_t now)
{
	for (uint32_t i = 0; i < g.nsess; i++) {
		sess *s = &g.sess[i];
		conn *c = &s->ndj;
		if (c->fd < 0 || c->state == CS_CONNECTING || c->out_len - c->out_off > 4096)
			continue;
		if (!o.no_subs && s->lines - s->got >= NDJ_WINDOW - 16)
			continue;
		for (int k = 0; k < 16; k++)
			gen_msg(s, now);
	}
	flush_dirty(now);
}

static void resume_tick(uint64_t now)
{
	if (now < g.next_drop_scan)
		return;
	g.next_drop_scan = now + 2 * MS;
	for (uint32_t i = 0; i < g.nsess; i++) {
		sess *s = &g.sess[i];
		if (!s->drop_at || now < s->drop_at)
			continue;
		if (s->sub.state != CS_BODY)
			continue; /* not up right now; try again later */
		s->drop_at = 0;
		/* process what the kernel already holds? no: a browser that drops loses it too */
		conn_close(&s->sub);
		sub_reset_parse(s);
		g.st.resumes++;
		defer_connect(&s->sub, now + (uint64_t)(o.resume_gap_ms * 1e6));
	}
}

static void print_result_line(const char *kind, double rate, const result *r)
{
	const stats *st = &g.st;
	printf("RESULT label=%s kind=%s mode=%s rate=%.0f achieved=%.0f p50_us=%.0f p99_us=%.0f "
	       "p999_us=%.0f max_us=%.0f ack_p50_us=%.0f ack_p99_us=%.0f lost=%" PRIu64 " dup=%" PRIu64
	       " reord=%" PRIu64 " misrouted=%" PRIu64 " err=%" PRIu64 " unknown=%" PRIu64 " sent=%" PRIu64
	       " acked=%" PRIu64 " delivered=%" PRIu64 " resumes=%" PRIu64 " sub_drops=%" PRIu64
	       " cpu=%.1f rss_kb=%ld tool_cpu=%.1f held=%d warm_ms=%.0f warm_p99_us=%.0f\n",
	       o.label, kind, o.ndjson ? "ndjson" : "post", rate, r->achieved, r->p50, r->p99, r->p999,
	       r->max, r->ack_p50, r->ack_p99, st->lost, st->dup, st->reord, st->misrouted, r->err,
	       st->pub_unknown, st->sent + st->lines, st->acked, st->uniq, st->resumes,
	       st->sub_drops, r->cpu, r->rss1, r->self_cpu, r->held, st->warm_ms, st->warm_p99);
}

/* Before the clock: one message per session, which creates its topic, until all are delivered
 * (or acknowledged, with --no-subs). A server's cost for a new topic is real, but it is paid once
 * per session: timed here on its own instead of inflating the first second of the paced run. */
static void warm_up(void)
{
	stats *st = &g.st;
	uint64_t t0 = now_ns(), end = t0 + 10 * NS + (uint64_t)g.nsess * 5 * MS, now = t0;
	for (uint32_t i = 0; i < g.nsess; i++) {
		gen_msg(&g.sess[i], t0);
		if (!o.ndjson)
			pub_try_send(&g.pubs[i % o.publishers], t0);
	}
	flush_dirty(t0);
	for (uint64_t guard = 0; guard < 10000000 && !g.stop; guard++) {
		now = now_ns();
		int done = 1;
		if (o.ndjson && !o.no_subs) {
			for (uint32_t i = 0; i < g.nsess && done; i++)
				done = g.sess[i].got > 0 || g.sess[i].ndj_done;
		} else if (o.ndjson) {
			done = now - t0 > 500 * MS;
		} else {
			done = drained();
		}
		if (done || now > end)
			break;
		loop_once(now + 5 * MS);
	}
	st->warm_ms = (double)(now - t0) / 1e6;
	st->warm_p50 = (double)h_q(&st->lat, 0.50) / 1e3;
	st->warm_p99 = (double)h_q(&st->lat, 0.99) / 1e3;
	st->warm = o.ndjson ? g.nsess : st->replies - st->pub_err;
	memset(&st->lat, 0, sizeof st->lat);
	memset(&st->ack, 0, sizeof st->ack);
}

static result run_phase(double rate, double duration, uint32_t tag, const char *kind)
{
	result r = {.rate = rate};
	char la[128];
	stats *st = &g.st;

	g.phase++;
	g.tag = tag;
	g.rate = rate;
	memset(st, 0, sizeof *st);
	sessions_setup(o.sessions, rate, duration);
	g.running = 1;
	uint64_t now = now_ns();
	if (!o.no_subs)
		for (uint32_t i = 0; i < g.nsess; i++)
			cq_push(&g.sess[i].sub);
	if (o.ndjson) {
		for (uint32_t i = 0; i < g.nsess; i++) {
			conn *c = &g.sess[i].ndj;
			char head[768];
			int n = snprintf(head, sizeof head,
					 "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-ndjson\r\n"
					 "Transfer-Encoding: chunked\r\n\r\n",
					 g.pub_path[i], g.pu.hostport);
			buf_put(&c->out, &c->out_len, &c->out_cap, head, (size_t)n);
			cq_push(c);
		}
	} else {
		for (uint32_t i = 0; i < o.publishers; i++)
			if (g.pubs[i].c.state == CS_NONE)
				cq_push(&g.pubs[i].c);
	}
	/* Everyone connected (subscribers past their response headers) before the clock starts. */
	uint64_t wait_end = now + 15 * NS + (uint64_t)g.nsess * 2 * MS;
	for (uint64_t guard = 0; guard < 10000000 && !g.stop; guard++) {
		now = now_ns();
		int ready = 1;
		if (!o.no_subs)
			for (uint32_t i = 0; i < g.nsess && ready; i++)
				if (!g.sess[i].up_once && g.sess[i].sub_fails < 10)
					ready = 0;
		if (!o.ndjson)
			for (uint32_t i = 0; i < o.publishers && ready; i++)
				if (g.pubs[i].c.state != CS_READY && g.pubs[i].c.attempts < 100)
					ready = 0;
		if (o.ndjson)
			for (uint32_t i = 0; i < g.nsess && ready; i++)
				if (g.sess[i].ndj.state != CS_HEAD && !g.sess[i].ndj_done)
					ready = 0;
		if (ready || now > wait_end)
			break;
		loop_once(now + 5 * MS);
	}
	if (!o.no_subs && st->sub_up < g.nsess)
		fprintf(stderr, "loadgen: only %" PRIu64 " of %u subscribers are up\n", st->sub_up, g.nsess);
	loop_once(now_ns() + 20 * MS); /* let first bytes (retry:, ": hi") arrive */
	if (!o.no_warmup)
		warm_up();

	sample s0, s1, s2;
	take_sample_server(&s0);
	loadavg(la, sizeof la);
	g.t_start = now_ns() + 2 * MS;
	g.sched_end = g.t_start + (uint64_t)(duration * 1e9);
	g.gen_i = 0;
	g.sched_on = 1;
	st->t_start = g.t_start;
	if (o.resume) {
		/* each subscriber drops once, spread over the second quarter of the run */
		for (uint32_t i = 0; i < g.nsess; i++)
			g.sess[i].drop_at = g.t_start + (uint64_t)(duration * 1e9 * (0.25 + 0.25 * i / g.nsess));
	}
	if (rate <= 0 && !o.ndjson)
		for (uint32_t i = 0; i < o.publishers; i++)
			pub_try_send(&g.pubs[i], now_ns());

	int ended = 0;
	uint64_t drain_end = 0, hard_end = g.sched_end + (uint64_t)((o.drain_s + 30) * 1e9);
	long rss_max = s0.rss_kb;
	uint64_t next_rss = g.t_start + 500 * MS;
	for (uint64_t guard = 0; guard < 1000000000ull; guard++) {
		now = now_ns();
		if (now > hard_end || g.stop)
			break;
		if (g.sched_on) {
			if (rate > 0)
				gen_due(now);
			else if (o.ndjson)
				ndj_fill(now);
		}
		if (o.resume)
			resume_tick(now);
		if (o.server_pid > 0 && now >= next_rss) {
			sample sm;
			take_sample_server(&sm);
			if (sm.rss_kb > rss_max)
				rss_max = sm.rss_kb;
			next_rss = now + 500 * MS;
		}
		if (!ended && now >= g.sched_end) {
			ended = 1;
			g.sched_on = 0;
			take_sample_server(&s1);
			st->t_sched_end = now;
			drain_end = now + (uint64_t)(o.drain_s * 1e9);
			for (uint32_t i = 0; i < g.nsess; i++) {
				if (g.sess[i].held) { /* --fault swap in a session that never reached seq 4 */
					emit(&g.sess[i], 3, g.sess[i].held_t);
					g.sess[i].held = 0;
				}
			}
			if (o.ndjson) {
				for (uint32_t i = 0; i < g.nsess; i++) {
					conn *c = &g.sess[i].ndj;
					buf_put(&c->out, &c->out_len, &c->out_cap, "0\r\n\r\n", 5);
					g.dirty[g.ndirty++] = i;
				}
			}
			flush_dirty(now);
			for (uint32_t i = 0; !o.ndjson && i < o.publishers; i++)
				pub_try_send(&g.pubs[i], now);
		}
		if (ended && (drained() || now > drain_end))
			break;
		uint64_t wake = now + 10 * MS;
		if (g.sched_on && rate > 0 && next_due() < wake)
			wake = next_due();
		if (g.sched_on && rate <= 0 && o.ndjson)
			wake = now + 200000;
		if (o.resume && wake > now + 2 * MS)
			wake = now + 2 * MS;
		loop_once(wake);
	}
	if (!ended) {
		take_sample_server(&s1);
		st->t_sched_end = now_ns();
	}
	st->t_end = now_ns();
	take_sample_server(&s2);
	count_loss();
	int drain_timeout = !drained();

	double span = (double)((st->t_last_ack > st->t_start ? st->t_last_ack : st->t_sched_end) - st->t_start) / 1e9;
	uint64_t published = (o.ndjson ? st->replies : st->replies - st->pub_err) - st->warm;
	r.achieved = span > 0 ? (double)published / span : 0;
	r.p50 = (double)h_q(&st->lat, 0.50) / 1e3;
	r.p99 = (double)h_q(&st->lat, 0.99) / 1e3;
	r.p999 = (double)h_q(&st->lat, 0.999) / 1e3;
	r.max = (double)st->lat.max / 1e3;
	r.ack_p50 = (double)h_q(&st->ack, 0.50) / 1e3;
	r.ack_p99 = (double)h_q(&st->ack, 0.99) / 1e3;
	r.cpu = cpu_pct(&s0, &s1);
	r.self_cpu = self_cpu_pct(&s0, &s1);
	r.rss0 = s0.rss_kb;
	r.rss1 = s2.rss_kb;
	r.lost = st->lost;
	r.dup = st->dup;
	r.reord = st->reord;
	r.err = st->pub_err + st->ndj_err + st->ndj_mismatch + st->proto_err + st->sub_fail;
	double want = rate > 0 ? rate : 0;
	r.held = r.p99 < o.ramp_p99_ms * 1000 && !st->lost && !st->dup && !st->reord && !r.err &&
		 !st->pub_unknown && (want <= 0 || r.achieved >= 0.95 * want) && !drain_timeout &&
		 (o.no_subs || st->uniq > 0);

	printf("== %s: %s, %s%.0f msg/s target, %u sessions, %s, %.1f s (tag %08x)\n", kind,
	       o.ndjson ? "one chunked NDJSON POST per session" : "one POST per message",
	       rate > 0 ? "" : "closed loop, ", rate, g.nsess,
	       o.ndjson ? "1 stream each" : "publishers shared", duration, tag);
	if (!o.ndjson)
		printf("published   %" PRIu64 " scheduled, %" PRIu64 " sent, %" PRIu64 " replies, %" PRIu64
		       " acknowledged (2xx), %" PRIu64 " errors, %" PRIu64 " outcome unknown\n",
		       st->gen, st->sent, st->replies, st->acked, st->pub_err, st->pub_unknown);
	else
		printf("published   %" PRIu64 " scheduled, %" PRIu64 " lines sent on %u streams, %" PRIu64
		       " counted by the replies, %" PRIu64 " stream errors, %" PRIu64 " count mismatches\n",
		       st->gen, st->lines, g.nsess, st->replies, st->ndj_err, st->ndj_mismatch);
	if (st->last_err_status)
		printf("            last error: HTTP %d %s\n", st->last_err_status, st->last_err);
	if (!o.no_warmup)
		printf("warm-up     one untimed first message per session (creates its topic): all delivered in %.0f ms, "
		       "p50 %.0f us, p99 %.0f us; counted in the totals, not in the rate or latencies\n",
		       st->warm_ms, st->warm_p50, st->warm_p99);
	printf("rate        %.0f msg/s achieved (published / time to the last reply)\n", r.achieved);
	if (!o.no_subs) {
		printf("delivered   %" PRIu64 " distinct; lost %" PRIu64 ", duplicated %" PRIu64 ", reordered %" PRIu64
		       ", misrouted %" PRIu64 ", foreign %" PRIu64 ", unparsable %" PRIu64
		       ", delivered but not acknowledged %" PRIu64 "%s\n",
		       st->uniq, st->lost, st->dup, st->reord, st->misrouted, st->foreign, st->bad,
		       st->unacked_seen, drain_timeout ? " (drain timed out)" : "");
		printf("latency     publish->delivery from the scheduled send, us: p50 %.0f  p99 %.0f  p99.9 %.0f  max %.0f\n",
		       r.p50, r.p99, r.p999, r.max);
		printf("subscribers %" PRIu64 " up, %" PRIu64 " failed, %" PRIu64 " streams ended by the server, %" PRIu64
		       " resumed with Last-Event-ID, %" PRIu64 " control events\n",
		       st->sub_up, st->sub_fail, st->sub_drops, st->resumes, st->control);
	}
	if (!o.ndjson)
		printf("latency     publish->2xx reply from the scheduled send, us: p50 %.0f  p99 %.0f\n", r.ack_p50,
		       r.ack_p99);
	if (o.fault_kind)
		printf("fault       %" PRIu64 " message(s) of session 0 mis-published on purpose (--fault %s)\n", st->faults,
		       o.fault);
	if (o.server_pid > 0)
		printf("server      pid %d: CPU %.1f%% of one core while publishing; RSS %ld kB before, %ld kB after, %ld kB max\n",
		       o.server_pid, r.cpu, r.rss0, r.rss1, rss_max);
	printf("loadgen     CPU %.1f%% of one core; load average at start: %s\n", r.self_cpu, la);
	print_result_line(kind, rate, &r);
	fflush(stdout);
	g.running = 0;
	sessions_teardown();
	return r;
}

static void run_idle(void)
{
	sample a, b;
	uint64_t now = now_ns();
	g.idle = xcalloc(o.idle, sizeof *g.idle);
	loop_once(now + 300 * MS);
	take_sample_server(&a);
	for (uint32_t i = 0; i < o.idle; i++) {
		g.idle[i] = (conn){.fd = -1, .kind = K_IDLE, .id = i};
		cq_push(&g.idle[i]);
	}
	uint64_t end = now + 60 * NS + (uint64_t)o.idle * 2 * MS;
	for (uint64_t guard = 0; guard < 100000000ull && !g.stop; guard++) {
		now = now_ns();
		if (g.idle_ok + g.idle_fail + g.idle_lost >= o.idle || now > end)
			break;
		loop_once(now + 10 * MS);
	}
	uint64_t settle = now_ns() + 1 * NS;
	for (int guard = 0; guard < 100000 && now_ns() < settle; guard++)
		loop_once(settle);
	take_sample_server(&b);
	uint64_t up = g.idle_ok - g.idle_lost;
	double per = up && a.ok && b.ok ? (double)(b.rss_kb - a.rss_kb) * 1024.0 / (double)up : -1;
	printf("== idle: %u idle SSE connections: %" PRIu64 " up, %" PRIu64 " failed, %" PRIu64 " closed by the server\n",
	       o.idle, up, g.idle_fail, g.idle_lost);
	if (o.server_pid > 0)
		printf("server      pid %d: RSS %ld kB -> %ld kB: %.0f bytes per idle connection\n", o.server_pid,
		       a.rss_kb, b.rss_kb, per);
	printf("RESULT label=%s kind=idle conns=%u up=%" PRIu64 " failed=%" PRIu64 " rss0_kb=%ld rss1_kb=%ld bytes_per_conn=%.0f\n",
	       o.label, o.idle, up, g.idle_fail + g.idle_lost, a.rss_kb, b.rss_kb, per);
	fflush(stdout);
}

/* Geometric steps up from --rate while steps hold, then bisection between the highest rate that
 * held and the lowest rate above it that failed. A rate may be tried twice (a noisy machine): the
 * answer is always the highest rate seen to hold and the lowest failure above it. */
static void run_ramp(void)
{
	double tried[16], r = o.rate;
	int held[16], n = 0;
	result best = {0};
	double ok = 0, bad = 0;
	for (int step = 0; step < 16 && !g.stop; step++) {
		char kind[32];
		snprintf(kind, sizeof kind, "ramp-step%d", step);
		result res = run_phase(r, o.duration, g.base_tag + 1 + (uint32_t)step, kind);
		tried[n] = r;
		held[n++] = res.held;
		if (res.held && r >= ok) {
			ok = r;
			best = res;
		}
		bad = 0;
		for (int i = 0; i < n; i++)
			if (!held[i] && tried[i] > ok && (!bad || tried[i] < bad))
				bad = tried[i];
		if (ok && bad && bad / ok < 1.07)
			break;
		double next = bad ? (ok + bad) / 2 : ok ? ok * o.ramp_factor : r / 2;
		double unit = next < 10000 ? 100 : 500;
		next = (double)((long)(next / unit + 0.5)) * unit;
		if (next > o.ramp_max || next < 100)
			break;
		int again = 0;
		for (int i = 0; i < n; i++)
			again += tried[i] == next;
		if (again >= 2)
			break;
		r = next;
		uint64_t pause = now_ns() + 1 * NS; /* let the server settle between steps */
		for (int guard = 0; guard < 100000 && now_ns() < pause; guard++)
			loop_once(pause);
	}
	printf("RESULT label=%s kind=ramp held_rate=%.0f first_failed=%.0f p50_us=%.0f p99_us=%.0f cpu=%.1f steps=%d\n",
	       o.label, ok, bad, best.p50, best.p99, best.cpu, n);
}

/* ---- Self-test: fake streams with known faults through the real parsing and accounting ---- */

static int t_pass, t_fail;
#define CHECK(cond, ...)                                                                   \
	do {                                                                               \
		if (cond) {                                                                \
			t_pass++;                                                          \
		} else {                                                                   \
			t_fail++;                                                          \
			fprintf(stderr, "self-test FAIL line %d: %s: ", __LINE__, #cond);  \
			fprintf(stderr, __VA_ARGS__);                                      \
			fputc('\n', stderr);                                               \
		}                                                                          \
	} while (0)

static unsigned t_seed = 12345;

static void t_feed(conn *c, const char *p, size_t n)
{
	for (size_t i = 0; i < n && c->state != CS_NONE;) {
		size_t k = 1 + (size_t)rand_r(&t_seed) % 37;
		if (k > n - i)
			k = n - i;
		http_feed(c, p + i, k, now_ns());
		i += k;
	}
}

/* SSE events for session `s` carrying the given sequence numbers; ids from `id0` on.
 * style 0: litegate (data is the JSON string); 1: nchan (data is the posted body). */
static size_t t_events(char *out, size_t cap, int style, uint32_t s, const uint32_t *qs, size_t nq, uint32_t id0)
{
	size_t o_ = 0;
	o_ += (size_t)snprintf(out + o_, cap - o_, style ? ": hi\n\n" : "retry: 2000\n\n");
	for (size_t i = 0; i < nq; i++) {
		char data[128];
		fmt_payload(data, sizeof data, s, qs[i], g.t0 + 1000 * (qs[i] + 1));
		if (style)
			o_ += (size_t)snprintf(out + o_, cap - o_,
					       "id: 1700000000:%u\ndata: {\"event\":\"token\",\"data\":\"%s\"}\n\n",
					       id0 + (uint32_t)i, data);
		else
			o_ += (size_t)snprintf(out + o_, cap - o_, "id: %u\r\nevent: token\r\ndata: \"%s\"\r\n\r\n",
					       id0 + (uint32_t)i, data);
	}
	return o_;
}

static size_t t_chunk(char *out, size_t cap, const char *body, size_t n)
{
	size_t o_ = 0;
	for (size_t i = 0; i < n;) {
		size_t k = 1 + (size_t)rand_r(&t_seed) % 60;
		if (k > n - i)
			k = n - i;
		o_ += (size_t)snprintf(out + o_, cap - o_, (i & 1) ? "%zX\r\n" : "%zx;ext=1\r\n", k);
		memcpy(out + o_, body + i, k);
		o_ += k;
		memcpy(out + o_, "\r\n", 2);
		o_ += 2;
		i += k;
	}
	return o_;
}

static void t_session_setup(uint32_t n, uint32_t acked_upto)
{
	memset(&g.st, 0, sizeof g.st);
	g.phase++;
	g.running = 0;
	sessions_setup(n, 0, 0);
	for (uint32_t i = 0; i < n; i++) {
		expect_reply(&g.sess[i].sub);
		for (uint32_t q = 0; q < acked_upto; q++)
			mark_acked(&g.sess[i], q);
	}
}

static void t_stream(int style, sess *s, const uint32_t *qs, size_t nq, uint32_t id0, const char *tail)
{
	static char ev[65536], wire[131072];
	size_t n = t_events(ev, sizeof ev, style, sess_index(s), qs, nq, id0);
	n += (size_t)snprintf(ev + n, sizeof ev - n, "%s", tail);
	size_t w;
	if (style) {
		w = (size_t)snprintf(wire, sizeof wire,
				     "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
				     "Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n");
		w += t_chunk(wire + w, sizeof wire - w, ev, n);
	} else {
		w = (size_t)snprintf(wire, sizeof wire,
				     "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
				     "connection: close\r\n\r\n");
		memcpy(wire + w, ev, n);
		w += n;
	}
	expect_reply(&s->sub);
	s->sub.in_len = 0;
	t_feed(&s->sub, wire, w);
}

static void t_done(void)
{
	count_loss();
}

static int self_test(void)
{
	static const uint32_t clean[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
	/* 4 missing, 6 twice, 8 before 7 */
	static const uint32_t faulty[] = {0, 1, 2, 3, 5, 6, 6, 8, 7, 9};
	g.t0 = now_ns();
	g.base_tag = g.tag = 0xabcdef01;
	o.publishers = 1;
	strcpy(g.pu.path, "/v1/topics/chatbot/s{r}-{n}/messages");
	strcpy(g.su.path, "/v1/topics/chatbot/s{r}-{n}/events");
	strcpy(g.pu.hostport, "127.0.0.1:1");
	strcpy(g.su.hostport, "127.0.0.1:1");
	g.pubs = xcalloc(1, sizeof *g.pubs);
	g.pubs[0].c = (conn){.fd = -1, .kind = K_PUB, .owner = &g.pubs[0]};

	for (int style = 0; style < 2; style++) {
		const char *sn = style ? "nchan/chunked" : "litegate";
		t_session_setup(1, 10);
		t_stream(style, &g.sess[0], clean, 10, 0, "");
		t_done();
		CHECK(g.st.uniq == 10 && !g.st.lost && !g.st.dup && !g.st.reord && !g.st.bad,
		      "%s clean: uniq %" PRIu64 " lost %" PRIu64 " dup %" PRIu64 " reord %" PRIu64 " bad %" PRIu64, sn,
		      g.st.uniq, g.st.lost, g.st.dup, g.st.reord, g.st.bad);
		CHECK(g.st.lat.n == 10, "%s: %" PRIu64 " latencies", sn, g.st.lat.n);
		sessions_teardown();

		t_session_setup(1, 10);
		t_stream(style, &g.sess[0], faulty, 10, 0, "");
		t_done();
		CHECK(g.st.uniq == 9 && g.st.lost == 1 && g.st.dup == 1 && g.st.reord == 1,
		      "%s faulty: uniq %" PRIu64 " lost %" PRIu64 " dup %" PRIu64 " reord %" PRIu64, sn, g.st.uniq,
		      g.st.lost, g.st.dup, g.st.reord);
		sessions_teardown();

		/* resume: the stream breaks inside event 5; the reconnect asks for what follows 4 */
		t_session_setup(1, 10);
		sess *s = &g.sess[0];
		t_stream(style, s, clean, 5, 0, style ? "id: 1700000000:5\ndata: {\"event\":\"tok" : "id: 5\nevent: tok");
		sub_reset_parse(s);
		char req[1024];
		sub_request(s, req, sizeof req);
		const char *want = style ? "Last-Event-ID: 1700000000:4\r\n" : "Last-Event-ID: 4\r\n";
		CHECK(strstr(req, want) != NULL, "%s resume request: %s", sn, req);
		t_stream(style, s, clean + 5, 5, 5, "");
		t_done();
		CHECK(g.st.uniq == 10 && !g.st.lost && !g.st.dup, "%s resume: uniq %" PRIu64 " lost %" PRIu64 " dup %" PRIu64,
		      sn, g.st.uniq, g.st.lost, g.st.dup);
		sessions_teardown();

		/* a server that resumes one too early repeats a message; one too late loses one */
		t_session_setup(1, 10);
		t_stream(style, &g.sess[0], clean, 5, 0, "");
		t_stream(style, &g.sess[0], clean + 4, 6, 4, "");
		t_done();
		CHECK(g.st.dup == 1 && !g.st.lost, "%s early resume: dup %" PRIu64 " lost %" PRIu64, sn, g.st.dup, g.st.lost);
		sessions_teardown();
		t_session_setup(1, 10);
		t_stream(style, &g.sess[0], clean, 5, 0, "");
		t_stream(style, &g.sess[0], clean + 6, 4, 6, "");
		t_done();
		CHECK(g.st.lost == 1 && !g.st.dup, "%s late resume: dup %" PRIu64 " lost %" PRIu64, sn, g.st.dup, g.st.lost);
		sessions_teardown();
	}

	/* a message for session 1 on session 0's stream, one of another run, a gap event, garbage */
	t_session_setup(2, 0);
	{
		static char ev[8192];
		char d1[128], d2[128];
		fmt_payload(d1, sizeof d1, 1, 0, g.t0);
		g.tag = 0x12345678;
		fmt_payload(d2, sizeof d2, 0, 1, g.t0);
		g.tag = g.base_tag;
		int n = snprintf(ev, sizeof ev,
				 "HTTP/1.1 200 OK\r\n\r\nid: 1\ndata: \"%s\"\n\nid: 2\ndata: \"%s\"\n\n"
				 "id: 3\nevent: gap\ndata: {\"from\":0,\"to\":3}\n\ndata: \"hello\"\n\n",
				 d1, d2);
		t_feed(&g.sess[0].sub, ev, (size_t)n);
		CHECK(g.st.misrouted == 1 && g.st.foreign == 1 && g.st.control == 1 && g.st.bad == 1 && !g.st.uniq,
		      "misrouted %" PRIu64 " foreign %" PRIu64 " control %" PRIu64 " bad %" PRIu64, g.st.misrouted,
		      g.st.foreign, g.st.control, g.st.bad);
		CHECK(!strcmp(g.sess[0].last_id, "3"), "last id %s", g.sess[0].last_id);
	}
	sessions_teardown();

	/* publisher replies: Content-Length, chunked, and a refusal */
	t_session_setup(1, 0);
	{
		pub *p = &g.pubs[0];
		const char *replies[] = {
			"HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\nContent-Length: 18\r\n\r\nqueued messages: 1",
			"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n2\r\n1}\r\n0\r\n\r\n",
			"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 14\r\n\r\n{\"error\":\"x\"}\n",
		};
		for (uint32_t i = 0; i < 3; i++) {
			p->busy = 1;
			p->cur = (msg){.s = 0, .q = i, .ph = g.phase, .t = now_ns()};
			expect_reply(&p->c);
			g.rate = 1;
			t_feed(&p->c, replies[i], strlen(replies[i]));
			CHECK(!p->busy && p->c.state == CS_READY, "reply %u: busy %d state %d", i, p->busy, p->c.state);
		}
		CHECK(g.st.acked == 2 && g.st.pub_err == 1 && g.st.last_err_status == 429,
		      "acked %" PRIu64 " err %" PRIu64 " status %d", g.st.acked, g.st.pub_err, g.st.last_err_status);
		sess *s = &g.sess[0];
		CHECK(BIT(s->acked, 0) && BIT(s->acked, 1) && !BIT(s->acked, 2), "acked bits");
	}
	sessions_teardown();

	/* NDJSON: the final reply's count is checked against the lines written */
	t_session_setup(1, 0);
	{
		sess *s = &g.sess[0];
		s->next_seq = s->lines = 10;
		expect_reply(&s->ndj);
		const char *rep = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 66\r\n\r\n"
				  "{\"topic\":\"chatbot/s1\",\"first_offset\":0,\"last_offset\":9,\"count\":10}";
		t_feed(&s->ndj, rep, strlen(rep));
		CHECK(s->ndj_done && s->ndj_count == 10 && g.st.acked == 10 && !g.st.ndj_mismatch,
		      "ndjson: done %d count %" PRIu64 " acked %" PRIu64, s->ndj_done, s->ndj_count, g.st.acked);
	}
	sessions_teardown();

	/* histogram */
	{
		static hist h;
		for (uint64_t v = 1; v <= 100000; v++)
			h_add(&h, v * 1000);
		double p50 = (double)h_q(&h, 0.5), p99 = (double)h_q(&h, 0.99);
		CHECK(p50 > 49e6 && p50 < 51e6 && p99 > 97.5e6 && p99 < 100.5e6, "p50 %.0f p99 %.0f", p50, p99);
		CHECK(h_q(&h, 1.0) == 100000000, "max %" PRIu64, h_q(&h, 1.0));
	}

	/* templates and URLs */
	{
		url u;
		char out[256];
		CHECK(!parse_url("http://127.0.0.1:8080/pub/s{r}-{n}", &u) && ntohs(u.addr.sin_port) == 8080,
		      "parse_url");
		CHECK(parse_url("http://10.0.0.1:80/x", &u) == -2, "non-loopback refused");
		CHECK(!parse_url("http://localhost/x", &u) && ntohs(u.addr.sin_port) == 80, "localhost");
		expand("/pub/s{r}-{n}", 42, 0xabc, out, sizeof out);
		CHECK(!strcmp(out, "/pub/s00000abc-42"), "expand: %s", out);
	}
	printf("self-test: %d passed, %d failed\n", t_pass, t_fail);
	return t_fail ? 1 : 0;
}

/* ---- main ---- */

static void on_alarm(int sig)
{
	static const char m[] = "loadgen: hard time limit reached, giving up\n";
	(void)sig;
	if (write(2, m, sizeof m - 1) < 0) {
	}
	_exit(3);
}

static void on_int(int sig)
{
	(void)sig;
	g.stop = 1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: loadgen --pub-url URL --sub-url URL [options]   |   loadgen --self-test\n"
		"  URLs are http://127.x.x.x:PORT/path templates: {n} = session number, {r} = run tag\n"
		"  --sessions N        sessions, one subscriber each (1000)\n"
		"  --rate R            messages/s in total, paced round robin over the sessions (20000);\n"
		"                      0 = closed loop (each publisher sends as soon as its reply is in;\n"
		"                      NDJSON: at most 64 lines per stream not yet delivered)\n"
		"  --duration S        seconds of publishing per run or ramp step (10)\n"
		"  --publishers P      keep-alive publisher connections (64); session k uses k mod P\n"
		"  --idle-subs N       first open N extra idle SSE connections; report server RSS per connection\n"
		"  --resume            every subscriber drops once mid-run and resumes with Last-Event-ID\n"
		"  --resume-gap-ms MS  how long a dropped subscriber stays away (1000)\n"
		"  --ramp              raise the rate from --rate by --ramp-factor (1.25) until a step fails\n"
		"                      (p99 >= --ramp-p99-ms (50), loss, errors, < 95%% of the rate), then bisect\n"
		"  --ramp-max R        highest rate to try (200000)\n"
		"  --ndjson            one chunked application/x-ndjson POST per session instead of a POST per message\n"
		"  --no-subs           publish only\n"
		"  --no-warmup         no untimed first message per session (topic creation) before the clock\n"
		"  --server-pid PID    sample this process's CPU and RSS from /proc\n"
		"  --msg-size B        bytes of data per message (32)\n"
		"  --drain-s S         after publishing, wait up to S s for replies and deliveries (5)\n"
		"  --fault lose|dup|swap  mis-publish session 0's 4th message on purpose (validation)\n"
		"  --label NAME        label for the RESULT lines\n"
		"  --max-connecting N  connects in flight at once (256)\n");
}

int main(int argc, char **argv)
{
	bench_prog = "loadgen";
	enum { O_PUB = 256, O_SUB, O_SESS, O_RATE, O_DUR, O_PUBS, O_IDLE, O_RESUME, O_GAP, O_RAMP, O_RMAX,
	       O_RFAC, O_RP99, O_NDJ, O_NOSUB, O_NOWARM, O_PID, O_SIZE, O_DRAIN, O_FAULT, O_LABEL, O_MAXC, O_SELF, O_HELP };
	static const struct option lo[] = {
		{"pub-url", 1, 0, O_PUB}, {"sub-url", 1, 0, O_SUB}, {"sessions", 1, 0, O_SESS},
		{"rate", 1, 0, O_RATE}, {"duration", 1, 0, O_DUR}, {"publishers", 1, 0, O_PUBS},
		{"idle-subs", 1, 0, O_IDLE}, {"resume", 0, 0, O_RESUME}, {"resume-gap-ms", 1, 0, O_GAP},
		{"ramp", 0, 0, O_RAMP}, {"ramp-max", 1, 0, O_RMAX}, {"ramp-factor", 1, 0, O_RFAC},
		{"ramp-p99-ms", 1, 0, O_RP99}, {"ndjson", 0, 0, O_NDJ}, {"no-subs", 0, 0, O_NOSUB}, {"no-warmup", 0, 0, O_NOWARM},
		{"server-pid", 1, 0, O_PID}, {"msg-size", 1, 0, O_SIZE}, {"drain-s", 1, 0, O_DRAIN},
		{"fault", 1, 0, O_FAULT}, {"label", 1, 0, O_LABEL}, {"max-connecting", 1, 0, O_MAXC},
		{"self-test", 0, 0, O_SELF}, {"help", 0, 0, O_HELP}, {0, 0, 0, 0},
	};
	int c;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case O_PUB: o.pub_url = optarg; break;
		case O_SUB: o.sub_url = optarg; break;
		case O_SESS: o.sessions = (uint32_t)strtoul(optarg, NULL, 10); break;
		case O_RATE: o.rate = atof(optarg); break;
		case O_DUR: o.duration = atof(optarg); break;
		case O_PUBS: o.publishers = (uint32_t)strtoul(optarg, NULL, 10); break;
		case O_IDLE: o.idle = (uint32_t)strtoul(optarg, NULL, 10); break;
		case O_RESUME: o.resume = 1; break;
		case O_GAP: o.resume_gap_ms = atof(optarg); break;
		case O_RAMP: o.ramp = 1; break;
		case O_RMAX: o.ramp_max = atof(optarg); break;
		case O_RFAC: o.ramp_factor = atof(optarg); break;
		case O_RP99: o.ramp_p99_ms = atof(optarg); break;
		case O_NDJ: o.ndjson = 1; break;
		case O_NOSUB: o.no_subs = 1; break;
		case O_NOWARM: o.no_warmup = 1; break;
		case O_PID: o.server_pid = atoi(optarg); break;
		case O_SIZE: o.msg_size = atoi(optarg); break;
		case O_DRAIN: o.drain_s = atof(optarg); break;
		case O_FAULT: o.fault = optarg; break;
		case O_LABEL: o.label = optarg; break;
		case O_MAXC: o.max_connecting = (uint32_t)strtoul(optarg, NULL, 10); break;
		case O_SELF: o.self_test = 1; break;
		case O_HELP: usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}
	if (o.self_test)
		return self_test();
	if (!o.sub_url || (!o.pub_url && o.sessions))
		die("--pub-url and --sub-url are required (--help)");
	if (o.pub_url) {
		int rc = parse_url(o.pub_url, &g.pu);
		if (rc)
			die(rc == -2 ? "--pub-url: loopback addresses only" : "--pub-url: expected http://HOST:PORT/path");
	}
	int rc = parse_url(o.sub_url, &g.su);
	if (rc)
		die(rc == -2 ? "--sub-url: loopback addresses only" : "--sub-url: expected http://HOST:PORT/path");
	if (o.publishers < 1 || o.publishers > 10000 || o.sessions > 1000000 || o.idle > 1000000 ||
	    o.duration <= 0 || o.duration > 3600 || o.rate < 0 || o.msg_size < 1 || o.msg_size > 400 ||
	    o.max_connecting < 1 || o.drain_s < 0 || o.drain_s > 600 || o.ramp_factor <= 1.0)
		die("an option is out of range (--help)");
	if (o.fault) {
		o.fault_kind = !strcmp(o.fault, "lose") ? F_LOSE : !strcmp(o.fault, "dup") ? F_DUP
							: !strcmp(o.fault, "swap") ? F_SWAP : -1;
		if (o.fault_kind < 0)
			die("--fault: lose, dup or swap");
	}
	if (o.ramp && o.rate <= 0)
		die("--ramp needs a starting --rate");

	printf("# command:");
	for (int i = 0; i < argc; i++)
		printf(strpbrk(argv[i], " {}*?$&;|<>\"") ? " '%s'" : " %s", argv[i]);
	printf("\n");

	/* descriptors: subscribers + NDJSON streams or publishers + idle, with room to spare */
	uint64_t need = (uint64_t)o.idle + (uint64_t)o.sessions * (o.ndjson ? 2 : 1) + o.publishers + 64;
	struct rlimit rl;
	if (!getrlimit(RLIMIT_NOFILE, &rl)) {
		if (rl.rlim_cur < need) {
			rl.rlim_cur = rl.rlim_max;
			setrlimit(RLIMIT_NOFILE, &rl);
		}
		if (rl.rlim_cur < need)
			die("need %" PRIu64 " file descriptors, the hard limit is %lu: raise it (ulimit -Hn)", need,
			    (unsigned long)rl.rlim_max);
	}
	g.spread = need > 20000 ? (uint32_t)(need / 20000 + 1) : 1;

	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_int);
	signal(SIGTERM, on_int);
	signal(SIGALRM, on_alarm);
	int phases = o.ramp ? 16 : 1;
	double budget = 60 + o.idle / 200.0 + phases * (o.duration + o.drain_s + 40 + o.sessions / 200.0);
	alarm((unsigned)budget);

	g.ep = epoll_create1(EPOLL_CLOEXEC);
	if (g.ep < 0)
		die("epoll_create1: %s", strerror(errno));
	g.t0 = now_ns();
	g.base_tag = (uint32_t)(g.t0 ^ ((uint64_t)getpid() << 16)) & 0xfffff000u;
	g.pubs = xcalloc(o.publishers, sizeof *g.pubs);
	for (uint32_t i = 0; i < o.publishers; i++)
		g.pubs[i].c = (conn){.fd = -1, .kind = K_PUB, .id = i, .owner = &g.pubs[i]};

	if (o.idle)
		run_idle();
	if (o.sessions && !g.stop) {
		if (o.ramp)
			run_ramp();
		else
			run_phase(o.rate, o.duration, g.base_tag, o.resume ? "resume" : "run");
	}
	return 0;
}
