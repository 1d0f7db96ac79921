/*
 * conn.c - admission of client connections (conn.h).
 *
 * Why look at request heads ourselves: lws 4.1.6 answers nothing when a request's head overflows
 * its header buffer or arrives too slowly; it closes the connection, and while the head trickles in
 * it holds one of its header tables (limits.max_header_pool). It is lenient or silent with
 * malformed heads (headcheck.h), and it spins on bytes pipelined behind an event-stream request. So
 * on a plain-HTTP connection every request head, the first and each kept-alive one, is peeked
 * (left in the socket) until it is complete, checked by headcheck.c, and answered here with 414,
 * 431, 408, 400 or 405 (a JSON body, like every API error) when it is too long, too slow or
 * malformed. A slowloris client therefore never reaches lws.
 *
 * The first head is read before lws has the socket (struct conn in MODE_FIRST). A kept-alive one
 * (MODE_NEXT, from the transaction-completed hook gw_conn_http_dropped) is checked when lws first
 * looks for it (next_recv) if it is whole by then, the common case; else lws's reading is paused
 * with lws_rx_flow_control() and our own ev_io peeks until it is whole, then lws is resumed, or the
 * error is answered and the connection closed. Between requests the connection may be idle for
 * timeouts.keepalive_s (closed and counted past it); from the first byte of a head, the head must be
 * complete within timeouts.header_s (408).
 *
 * Why lws may read only the request that was checked (MODE_REQUEST): lws reads up to 64 KiB per
 * recv(), so bytes a client pipelined behind a request would land in lws's own buffer (its wsi
 * buflist, which no public API shows), and lws parses the next request from there after the
 * transaction completes, past any check of ours. So this file defines recv(): lws calls recv() for
 * plain sockets (lws_ssl_capable_read_no_ssl; libwebsockets.so imports it, and a definition in the
 * executable comes first in symbol lookup), and on a socket registered here the length is capped at
 * what is left of the checked request: its head and its Content-Length body. Anything after it
 * stays in the socket for the next check. Our own calls (MSG_PEEK) and every other socket go
 * straight to the system call. When the checked request is all read, lws gets nothing more until
 * the transaction completes (request_recv() says what happens to bytes that come meanwhile); a
 * client's EOF still reaches lws at once, as before.
 *
 * TLS connections are registered here too (counts, timers, the socket table), but their bytes are
 * encrypted: conn_tls.c applies the same checks to what SSL_read() decrypts, through conn_int.h.
 * HTTP/2 streams have no HTTP/1 head at all. A request whose end is not known from its head
 * (Transfer-Encoding, an Upgrade other than websocket, a malformed Content-Length) is read by lws
 * freely (MODE_OPEN), and its connection is closed after its transaction.
 *
 * WebSocket (MODE_WS): after an upgrade the same recv() follows the client's frame boundaries
 * (wsmask.h) and stops before the first unmasked frame: lws 4.1.6 accepts those, RFC 6455 5.1 says
 * close with 1002, so ws.c closes it with 1002 (gw_ws_unmasked).
 *
 * Refusals are written straight to the socket, then the write side is shut and whatever the client
 * still sends is read and dropped for a moment before the close ("lingering close"), so the client
 * reads the reply instead of a reset. A refusal on a connection lws has goes through a dup() of its
 * socket: lws closes its descriptor, ours lingers.
 *
 * Accounting: every admitted connection holds a count on its client address (a hash table keyed by
 * the IPv6 or v4-mapped address). lws gives every wsi an opaque user pointer; ours points at the
 * struct conn, and LWS_CALLBACK_WSI_DESTROY releases it, however the connection ended (keep-alive,
 * SSE, WebSocket upgrade, timeout, shutdown).
 */
#define _GNU_SOURCE /* syscall() */
/* With _FORTIFY_SOURCE, glibc declares recv() as an inline wrapper, which cannot be defined here. */
#undef _FORTIFY_SOURCE
#include "conn_int.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"
#include "xalloc.h"

#define LINGER_S 2.0       /* read-and-drop time after a refusal, before the close */
#define LINGER_MAX 1024    /* refusals lingering at once; past it they close at once */

/* Our own reason bit for lws_rx_flow_control(): independent of ws.c's and publish.c's pauses,
 * which use LWS_RXFLOW_REASON_USER_BOOL. */
#define RXFLOW_CONN (1 << 5)

struct peer {
	uint8_t addr[16];      /* IPv6, or IPv4 mapped (::ffff:a.b.c.d) */
	uint32_t n;            /* admitted connections open from it */
	struct peer *next;     /* hash chain */
};

/* A refused connection lingering before its close. */
struct refused {
	struct refused *prev, *next;
	ev_io io;
	ev_timer tm;
	int fd;
};

static struct {
	struct gw *gw;         /* set at the first accept */
	struct peer **tab;     /* power-of-two buckets */
	size_t cap, count;
	struct conn **byfd;    /* plain connections lws has, by socket: what recv() looks at */
	size_t nfd;
	struct conn *unadopted;/* MODE_FIRST connections, for shutdown */
	struct refused *lingering;
	size_t n_linger;
	size_t n_tls_refusing;   /* TLS connections over a limit, handshaking before their refusal */
	char *scratch;         /* one peek's worth (max_header_bytes), service thread only */
} C;

/* ---- Client addresses ------------------------------------------------------------------------------ */

/*
 * The "client address" a limit counts: an IPv4 address, or an IPv6 /64. One IPv6 host usually
 * has a whole /64 to pick addresses from, so counting single IPv6 addresses would let one client
 * open as many connections as it likes. (A v4-mapped IPv6 address counts as its IPv4 address.)
 */
static void
limit_key(uint8_t key[16])
{
	static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	if (memcmp(key, v4mapped, 12))
		memset(key + 8, 0, 8);
}

/* The peer's whole address, IPv4 as ::ffff:a.b.c.d (xff.h); all zeros for other families. */
static void
peer_addr(const struct sockaddr *sa, socklen_t len, uint8_t addr[16])
{
	memset(addr, 0, 16);
	if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		memcpy(addr, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
	} else if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		addr[10] = addr[11] = 0xff;
		memcpy(addr + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	}
}

/* A loopback peer (127.0.0.0/8, or ::1, whose /64 key is all zeros) is a local process: a reverse
 * proxy in front of the gateway, a worker, a benchmark. Every client behind it shares its address,
 * so a per-address limit would throttle them all together. */
static int
is_loopback(const uint8_t key[16])
{
	static const uint8_t zero[16];

	return (key[10] == 0xff && key[11] == 0xff && key[12] == 127 && !memcmp(key, zero, 10)) ||
	       !memcmp(key, zero, 16);
}

static size_t
bucket(const uint8_t key[16], size_t cap)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (int i = 0; i < 16; i++)
		h = (h ^ key[i]) * 0x100000001b3ull;
	return (size_t)(h ^ (h >> 29)) & (cap - 1);
}

static void
grow(void)
{
	size_t old = C.cap;
	struct peer **t = C.tab;

	C.cap = old ? old * 2 : 1024;
	C.tab = xcalloc(C.cap, sizeof(*C.tab));
	for (size_t i = 0; i < old; i++) {
		for (struct peer *p = t[i], *n; p; p = n) {
			size_t k = bucket(p->addr, C.cap);

			n = p->next;
			p->next = C.tab[k];
			C.tab[k] = p;
		}
	}
	free(t);
}

static struct peer *
peer_get(const uint8_t key[16])
{
	struct peer *p;
	size_t k;

	if (C.count + 1 > C.cap / 4 * 3)
		grow();
	k = bucket(key, C.cap);
	for (p = C.tab[k]; p; p = p->next)
		if (!memcmp(p->addr, key, 16))
			return p;
	p = xcalloc(1, sizeof(*p));
	memcpy(p->addr, key, 16);
	p->next = C.tab[k];
	C.tab[k] = p;
	C.count++;
	return p;
}

/* One admitted connection from @p p is gone. */
static void
release(struct gw *gw, struct peer *p)
{
	struct peer **pp;

	gw->m.conns_open--;
	if (--p->n)
		return;
	for (pp = &C.tab[bucket(p->addr, C.cap)]; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	C.count--;
	free(p);
}

/* ---- Lingering refusals ----------------------------------------------------------------------------- */

static void
linger_free(struct gw *gw, struct refused *l)
{
	ev_io_stop(gw->loop, &l->io);
	ev_timer_stop(gw->loop, &l->tm);
	if (l->prev)
		l->prev->next = l->next;
	else
		C.lingering = l->next;
	if (l->next)
		l->next->prev = l->prev;
	C.n_linger--;
	close(l->fd);
	free(l);
}

static void
on_linger_read(struct ev_loop *loop, ev_io *w, int revents)
{
	struct refused *l = (struct refused *)((char *)w - offsetof(struct refused, io));
	char drop[4096];
	ssize_t n;

	(void)loop;
	(void)revents;
	do
		n = recv(l->fd, drop, sizeof(drop), MSG_DONTWAIT);
	while (n > 0);
	if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
		linger_free(w->data, l);
}

static void
on_linger_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	linger_free(w->data, (struct refused *)((char *)w - offsetof(struct refused, tm)));
}

static const char *
reason_phrase(unsigned status)
{
	switch (status) {
	case 400: return "Bad Request";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 414: return "URI Too Long";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	default: return "Service Unavailable";
	}
}

int
conn_refusal(char *out, size_t outsz, unsigned status, const char *code, const char *msg)
{
	char body[300];
	int bl, n;

	bl = snprintf(body, sizeof(body), "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}\n", code, msg);
	n = snprintf(out, outsz,
		     "HTTP/1.1 %u %s\r\nserver: litegate\r\ncontent-type: application/json\r\n"
		     "content-length: %d\r\nconnection: close\r\n%s\r\n%s",
		     status, reason_phrase(status), bl,
		     status == 429 || status == 503 ? "retry-after: 1\r\n" : "", body);
	return n < (int)outsz ? n : (int)outsz - 1;
}

void
conn_linger(struct gw *gw, int fd)
{
	struct refused *l;

	if (C.n_linger >= LINGER_MAX) {
		close(fd);
		return;
	}
	shutdown(fd, SHUT_WR);
	l = xcalloc(1, sizeof(*l));
	l->fd = fd;
	ev_io_init(&l->io, on_linger_read, fd, EV_READ);
	l->io.data = gw;
	ev_timer_init(&l->tm, on_linger_timer, LINGER_S, 0);
	l->tm.data = gw;
	ev_io_start(gw->loop, &l->io);
	ev_timer_start(gw->loop, &l->tm);
	l->next = C.lingering;
	if (C.lingering)
		C.lingering->prev = l;
	C.lingering = l;
	C.n_linger++;
}

/*
 * Answer @p status on plain socket @p fd (nothing else writes to it now), then linger. Takes
 * ownership of @p fd.
 */
static void
refuse_fd(struct gw *gw, int fd, unsigned status, const char *code, const char *msg)
{
	char resp[600];
	int n = conn_refusal(resp, sizeof(resp), status, code, msg);

	gw->m.http_errors++;
	if (send(fd, resp, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		close(fd);
		return;
	}
	conn_linger(gw, fd);
}

/* ---- Connections ----------------------------------------------------------------------------------- */

static void on_head_read(struct ev_loop *loop, ev_io *w, int revents);
static void on_head_timer(struct ev_loop *loop, ev_timer *w, int revents);
static void on_next_arm(struct ev_loop *loop, ev_timer *w, int revents);

static struct conn *
conn_new(struct gw *gw, int fd, struct peer *peer, enum conn_mode mode)
{
	struct conn *c = xcalloc(1, sizeof(*c));

	c->ref = REF_CONN;
	c->fd = fd;
	c->peer = peer;
	c->mode = mode;
	ev_io_init(&c->io, on_head_read, fd, EV_READ);
	c->io.data = gw;
	ev_timer_init(&c->tm, on_head_timer, 1, 0);
	c->tm.data = gw;
	ev_timer_init(&c->arm, on_next_arm, 0, 0);
	c->arm.data = gw;
	return c;
}

void
conn_stop_watchers(struct gw *gw, struct conn *c)
{
	ev_io_stop(gw->loop, &c->io);
	ev_timer_stop(gw->loop, &c->tm);
	ev_timer_stop(gw->loop, &c->arm);
	if (c->lowat) {
		int one = 1;

		setsockopt(c->fd, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof(one));
		c->lowat = 0;
	}
}

static void
unadopted_unlink(struct conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		C.unadopted = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
}

/* The end of a connection: its counts, its watchers, its place in the socket table. */
static void
conn_free(struct gw *gw, struct conn *c)
{
	conn_stop_watchers(gw, c);
	if (c->mode == MODE_FIRST)
		unadopted_unlink(c);
	if (c->fd >= 0 && (size_t)c->fd < C.nfd && C.byfd[c->fd] == c)
		C.byfd[c->fd] = NULL;
	if (c->peer)
		release(gw, c->peer);
	conn_h2_conn_gone(c);
	if (c->refusal)
		C.n_tls_refusing--;
	free(c->refusal_msg);
	free(c->held);
	free(c);
}

void
conn_set_timer(struct gw *gw, struct conn *c, double secs)
{
	ev_timer_stop(gw->loop, &c->tm);
	ev_timer_set(&c->tm, secs, 0);
	ev_timer_start(gw->loop, &c->tm);
}

/* Pause or resume lws's reading of @p c's socket (our reason bit only). */
void
conn_lws_reading(struct conn *c, int on)
{
	if (!c->wsi || c->paused == !on)
		return;
	c->paused = !on;
	lws_rx_flow_control(c->wsi, on ? LWS_RXFLOW_REASON_APPLIES_ENABLE | RXFLOW_CONN
				       : LWS_RXFLOW_REASON_APPLIES_DISABLE | RXFLOW_CONN);
}

/*
 * Close a connection whose wsi lws has, from one of our watchers (never from inside an lws
 * callback): lws closes it now, and its WSI_DESTROY frees @p c. Touch nothing of @p c after.
 */
void
conn_kill(struct conn *c)
{
	lws_set_timeout(c->wsi, PENDING_TIMEOUT_KILLED_BY_PARENT, LWS_TO_KILL_SYNC);
}

/* Refuse the head being read on @p c with a JSON error, and end the connection. */
static void
conn_refuse(struct gw *gw, struct conn *c, unsigned status, const char *code, const char *msg)
{
	int fd;

	if (c->mode == MODE_FIRST) {
		fd = c->fd;
		conn_free(gw, c);
		refuse_fd(gw, fd, status, code, msg);
		return;
	}
	if (c->tls) {
		conn_tls_refuse(gw, c, status, code, msg, 0);
		return;
	}
	/* lws has the socket and nothing of its own left to send (the transaction completed): answer
	 * on a duplicate that lingers, and let lws close its descriptor. */
	conn_stop_watchers(gw, c);
	fd = dup(c->fd);
	if (fd >= 0)
		refuse_fd(gw, fd, status, code, msg);
	else
		gw->m.http_errors++;
	conn_kill(c);
}

/* The head is complete (or the connection is TLS): lws takes the socket, and recv() or SSL_read()
 * find the connection by it. */
static int
hand_over(struct gw *gw, struct conn *c)
{
	struct lws *wsi;

	/* Registered first: lws may already read, or finish a TLS handshake (SSL_accept), inside
	 * lws_adopt_socket_vhost(), and conn_tls.c must know the connection then. */
	if ((size_t)c->fd >= C.nfd) {
		size_t n = C.nfd ? C.nfd : 1024;

		while (n <= (size_t)c->fd)
			n *= 2;
		C.byfd = xrealloc(C.byfd, n * sizeof(*C.byfd));
		memset(C.byfd + C.nfd, 0, (n - C.nfd) * sizeof(*C.byfd));
		C.nfd = n;
	}
	C.byfd[c->fd] = c;
	/* lws closes the socket itself if it cannot adopt it. */
	wsi = lws_adopt_socket_vhost(gw->vhost, c->fd);
	if (!wsi) {
		C.byfd[c->fd] = NULL;
		c->fd = -1;
		conn_free(gw, c);
		return -1;
	}
	c->wsi = wsi;
	lws_set_opaque_user_data(wsi, c);
	return 0;
}

void
conn_too_large(struct gw *gw, const char *buf, size_t len, struct gw_head_verdict *v, char *msg,
	       size_t msgsz)
{
	const struct gw_config *cfg = gw->cfg;

	gw->m.limit_hits[GW_LIMIT_HEADER_BYTES]++;
	if (!memchr(buf, '\n', len)) {
		snprintf(msg, msgsz, "request line longer than limits.max_header_bytes (%u)",
			 cfg->max_header_bytes);
		v->status = 414;
		v->code = "uri_too_long";
	} else {
		snprintf(msg, msgsz, "request headers larger than limits.max_header_bytes (%u)",
			 cfg->max_header_bytes);
		v->status = 431;
		v->code = "headers_too_large";
	}
	v->message = msg;
}

int
conn_head_verdict(struct gw *gw, const char *buf, size_t len, size_t *head_len,
		  struct gw_head_verdict *v)
{
	int rc = gw_head_check(buf, len, head_len, v);

	if (rc == 0 && *head_len < len && gw_head_is_event_stream(buf, len)) {
		/* Bytes after an event-stream request: a browser never sends them (docs/api.md). */
		rc = -1;
		v->status = 400;
		v->code = "bad_request";
		v->message = "nothing may follow an event-stream request on its connection";
	}
	if (rc < 0 && v->status == 431)
		gw->m.limit_hits[GW_LIMIT_HEADER_BYTES]++;
	return rc;
}

void
conn_request_start(struct conn *c, const char *buf, size_t head_len)
{
	struct gw_head_body b;

	gw_head_body(buf, head_len, &b);
	c->allow = head_len;
	c->mode = MODE_REQUEST;
	if (b.kind == GW_BODY_LENGTH && b.length <= UINT64_MAX - head_len)
		c->allow += b.length;
	else if (b.kind == GW_BODY_UNBOUNDED || b.kind == GW_BODY_LENGTH)
		c->mode = MODE_OPEN;
	/* GW_BODY_UPGRADE: the head alone; ws.c's ESTABLISHED switches to MODE_WS. */
}

/* A whole, acceptable head of @p head_len bytes waits in the socket: let lws read that request. */
static void
head_accepted(struct gw *gw, struct conn *c, size_t head_len)
{
	conn_stop_watchers(gw, c);
	c->len = 0;
	conn_request_start(c, C.scratch, head_len);
	if (!c->wsi) {
		unadopted_unlink(c);
		hand_over(gw, c);
	} else {
		conn_lws_reading(c, 1);
	}
}

/* The head waiting in the socket changed: accept it, refuse it, or wait for more of it. */
static void
on_head_read(struct ev_loop *loop, ev_io *w, int revents)
{
	struct gw *gw = w->data;
	struct conn *c = (struct conn *)((char *)w - offsetof(struct conn, io));
	size_t cap = gw->cfg->max_header_bytes;
	struct gw_head_verdict v;
	size_t head_len = 0;
	ssize_t n;
	int rc;

	(void)loop;
	(void)revents;
	/*
	 * Peek, do not read: lws must read the request itself. Handing it bytes we read
	 * (lws_adopt_socket_vhost_readbuf) makes 4.1.6 run a request's body completion twice. A head
	 * that is not complete yet stays in the socket, and SO_RCVLOWAT makes the socket readable again
	 * only once more bytes than we saw have come (or the peer closed), so waiting does not spin.
	 */
	n = recv(c->fd, C.scratch, cap, MSG_PEEK | MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0 || (size_t)n == c->len) {
		/* The client went away before finishing a request (or half-closed: nothing more can
		 * come, and nothing we have is a whole head). */
		if (c->wsi) {
			conn_kill(c);
		} else {
			close(c->fd);
			conn_free(gw, c);
		}
		return;
	}
	if (!c->len && c->mode == MODE_NEXT) /* the first byte of a kept-alive request */
		conn_set_timer(gw, c, gw->cfg->header_timeout_s);
	c->len = (size_t)n;
	rc = conn_head_verdict(gw, C.scratch, c->len, &head_len, &v);
	if (rc < 0) {
		conn_refuse(gw, c, v.status, v.code, v.message);
		return;
	}
	if (rc == 0) {
		head_accepted(gw, c, head_len);
		return;
	}
	if (c->len >= cap) {
		char msg[128];

		conn_too_large(gw, C.scratch, c->len, &v, msg, sizeof(msg));
		conn_refuse(gw, c, v.status, v.code, v.message);
		return;
	}
	{
		int lowat = (int)c->len + 1;

		setsockopt(c->fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof(lowat));
		c->lowat = 1;
	}
}

static void
on_head_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct gw *gw = w->data;
	struct conn *c = (struct conn *)((char *)w - offsetof(struct conn, tm));
	char msg[128];

	(void)loop;
	(void)revents;
	if (!(c->tls ? c->held_len : c->len)) {
		/* Nothing came: a new connection that never spoke (or, on TLS, never finished its
		 * handshake), or a kept-alive one left idle. (A connection refused at its handshake's
		 * end was counted as what it exceeded.) */
		if (!c->refusal)
			gw->m.limit_hits[c->mode == MODE_NEXT ? GW_LIMIT_KEEPALIVE_IDLE
							       : GW_LIMIT_HEADER_TIMEOUT]++;
		if (c->wsi) {
			conn_kill(c);
		} else {
			close(c->fd);
			conn_free(gw, c);
		}
		return;
	}
	gw->m.limit_hits[GW_LIMIT_HEADER_TIMEOUT]++;
	snprintf(msg, sizeof(msg), "the request head did not arrive within timeouts.header_s (%u s)",
		 gw->cfg->header_timeout_s);
	conn_refuse(gw, c, 408, "request_timeout", msg);
}

/*
 * MODE_NEXT, once lws_http_transaction_completed() has returned: lws set its keep-alive timeout
 * there; ours replace it (they answer and count), then the next head is awaited. (TLS: also
 * MODE_WS, when bytes after the upgrade were read already.)
 */
static void
on_next_arm(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct gw *gw = w->data;
	struct conn *c = (struct conn *)((char *)w - offsetof(struct conn, arm));

	(void)loop;
	(void)revents;
	if (c->mode == MODE_CLOSING) {
		conn_kill(c);
		return;
	}
	if (c->tls && c->mode == MODE_WS) {
		conn_tls_resume(gw, c);
		return;
	}
	if (c->mode == MODE_H2) {
		conn_h2_events(gw, c);
		return;
	}
	if (c->mode != MODE_NEXT)
		return; /* next_recv() already took the next request: lws has set its own timeouts */
	if (c->tls) {
		lws_set_timeout(c->wsi, NO_PENDING_TIMEOUT, 0);
		conn_tls_resume(gw, c);
		return;
	}
	if (c->held_len) {
		conn_refuse(gw, c, 400, "bad_request",
			    "a request was pipelined behind one still in progress (a publish, a delete or "
			    "a group request); send it after the reply");
		return;
	}
	lws_set_timeout(c->wsi, NO_PENDING_TIMEOUT, 0);
	c->len = 0;
	conn_set_timer(gw, c, gw->cfg->keepalive_s);
	ev_io_start(gw->loop, &c->io);
}

/* ---- recv() for lws ------------------------------------------------------------------------------ */

static ssize_t
sys_recv(int fd, void *buf, size_t len, int flags)
{
	return (ssize_t)syscall(SYS_recvfrom, fd, buf, len, flags, NULL, NULL);
}

void
conn_ws_unmasked(struct conn *c)
{
	/* What follows is dropped: the connection ends with 1002 (ws.c) and lws reads no more. */
	c->bad_ws = 1;
	conn_lws_reading(c, 0);
	C.gw->m.ws_unmasked++;
	gw_ws_unmasked(c->wsi);
}

/* lws reads a plain WebSocket: follow its frames, stop before an unmasked one. */
static ssize_t
ws_recv(struct conn *c, uint8_t *buf, size_t len, int flags)
{
	ssize_t n;
	size_t ok;

	if (c->bad_ws) {
		errno = EAGAIN;
		return -1;
	}
	n = sys_recv(c->fd, buf, len, flags);
	if (n <= 0)
		return n;
	ok = gw_wsmask_feed(&c->ws, buf, (size_t)n);
	if (ok == (size_t)n)
		return n;
	conn_ws_unmasked(c);
	if (!ok) {
		errno = EAGAIN;
		return -1;
	}
	return (ssize_t)ok;
}

/*
 * lws reads a checked request: no further than its end.
 *
 * Once it is all read, lws keeps polling the socket while the request is served. EOF is passed on
 * (lws closes, as it always did). Bytes of a pipelined request cannot stay in the socket while the
 * request is served asynchronously (a publish waiting for the disk, a DELETE, a long poll): the
 * socket would stay readable and wake lws on every loop turn, and lws_rx_flow_control() cannot
 * pause it then, because lws 4.1.6 also skips an rx-paused h1 connection's writes (its
 * rops_handle_POLLIN_h1 returns before the POLLOUT handling), so the reply would never leave. So
 * those bytes are taken out of the socket and held here, and the next request is refused once the
 * reply is out (gw_conn_http_dropped): pipelining behind an unfinished request is the one case
 * not served. A request answered at once (a GET) is done before lws looks at the socket again.
 */
static ssize_t
request_recv(struct conn *c, void *buf, size_t len, int flags)
{
	size_t cap = C.gw->cfg->max_header_bytes;
	ssize_t n;

	if (c->allow) {
		if (len > c->allow)
			len = (size_t)c->allow;
		n = sys_recv(c->fd, buf, len, flags);
		if (n > 0)
			c->allow -= (uint64_t)n;
		return n;
	}
	if (!c->held)
		c->held = xmalloc(cap);
	if (c->held_len < cap) {
		n = sys_recv(c->fd, c->held + c->held_len, cap - c->held_len, MSG_DONTWAIT);
		if (n == 0 && !c->held_len)
			return 0;
		if (n > 0)
			c->held_len += (size_t)n;
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return -1;
	}
	if (c->held_len == cap) {
		char b;

		/* More than a head's worth pipelined behind an unfinished request: nothing would stop
		 * the readable socket from waking lws on every turn. The client is cut off. */
		n = sys_recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
		if (n > 0)
			return 0;
	}
	errno = EAGAIN;
	return -1;
}

/*
 * MODE_NEXT: lws looks at the socket for the next request, whose head is not checked yet. When it
 * is all there and acceptable (the common case), it is checked here and lws reads it in this same
 * call: no pause, no extra loop turn. Otherwise lws is paused (it looks only once its transaction's
 * end was written, so no write of its own is pending) and on_head_read() takes it from there: it
 * answers a refusal, or resumes lws once the head is complete.
 */
static ssize_t
next_recv(struct conn *c, void *buf, size_t len, int flags)
{
	struct gw_head_verdict v;
	size_t head_len = 0;
	ssize_t n;

	if (!c->held_len) {
		n = sys_recv(c->fd, C.scratch, C.gw->cfg->max_header_bytes, MSG_PEEK | MSG_DONTWAIT);
		if (n == 0)
			return 0; /* the client closed an idle connection: lws closes it */
		/* (A refusal's limit hit is counted again by on_head_read: no counting here.) */
		if (n > 0 && gw_head_check(C.scratch, (size_t)n, &head_len, &v) == 0 &&
		    !(head_len < (size_t)n && gw_head_is_event_stream(C.scratch, (size_t)n))) {
			head_accepted(C.gw, c, head_len);
			return recv(c->fd, buf, len, flags);
		}
	}
	conn_lws_reading(c, 0);
	errno = EAGAIN;
	return -1;
}

/* Set on the service thread (the only one that may touch C); recv() or SSL_read() on any other
 * thread, from a library or a helper thread, must not read the connection table it does not own. */
__thread int conn_on_service_thread;

struct gw *
conn_gw(void)
{
	return C.gw;
}

struct conn *
conn_of(struct lws *wsi)
{
	struct conn *c = lws_get_opaque_user_data(wsi);

	return c && c->ref == REF_CONN ? c : NULL;
}

struct conn *
conn_by_fd(int fd)
{
	return fd >= 0 && (size_t)fd < C.nfd ? C.byfd[fd] : NULL;
}

/*
 * The recv() libwebsockets calls (see the top of this file). Service thread for the sockets
 * registered here; any other call is the plain system call.
 */
ssize_t
recv(int fd, void *buf, size_t len, int flags)
{
	struct conn *c;

	if (!conn_on_service_thread)
		return sys_recv(fd, buf, len, flags);
	c = conn_by_fd(fd);
	if (!c || c->tls || (flags & MSG_PEEK))
		return sys_recv(fd, buf, len, flags);
	switch (c->mode) {
	case MODE_REQUEST:
		return request_recv(c, buf, len, flags);
	case MODE_WS:
		return ws_recv(c, buf, len, flags);
	case MODE_NEXT:
		return next_recv(c, buf, len, flags);
	case MODE_CLOSING:
		return 0;
	default:
		return sys_recv(fd, buf, len, flags);
	}
}

/*
 * A new connection over a connection limit: 503/429 with Retry-After, its only reply. On TLS that
 * needs the handshake first: lws runs it, and conn_tls.c answers at the first read instead of
 * reading a request. Such a connection counts in no limit; at most LINGER_MAX are handshaking at
 * once (past it, and when the handshake does not end within timeouts.header_s, the connection is
 * closed without a reply).
 */
static void
refuse_new(struct gw *gw, int fd, int tls, unsigned status, const char *msg)
{
	struct conn *c;

	if (!tls) {
		refuse_fd(gw, fd, status, "too_many_connections", msg);
		return;
	}
	if (C.n_tls_refusing >= LINGER_MAX) {
		close(fd);
		return;
	}
	c = conn_new(gw, fd, NULL, MODE_TLS);
	c->tls = 1;
	c->refusal = status;
	c->refusal_msg = xstrdup(msg);
	C.n_tls_refusing++;
	if (!hand_over(gw, c))
		conn_set_timer(gw, c, gw->cfg->header_timeout_s);
}

/* ---- API ------------------------------------------------------------------------------------------------ */

void
gw_conn_accept(struct gw *gw, int fd, const struct sockaddr *sa, socklen_t salen)
{
	const struct gw_config *cfg = gw->cfg;
	int tls = cfg->tls_cert != NULL;
	struct conn *c;
	struct peer *p;
	uint8_t addr[16], key[16];
	int proxy;
	char msg[128];

	conn_on_service_thread = 1; /* gw_conn_accept runs on it, before any socket is registered */
	if (!C.scratch)
		C.scratch = xmalloc(cfg->max_header_bytes);
	C.gw = gw;
	if (gw->m.conns_open >= cfg->max_connections) {
		gw->m.limit_hits[GW_LIMIT_CONNECTIONS]++;
		snprintf(msg, sizeof(msg), "the gateway has limits.max_connections (%u) open; retry later",
			 cfg->max_connections);
		refuse_new(gw, fd, tls, 503, msg);
		return;
	}
	peer_addr(sa, salen, addr);
	memcpy(key, addr, 16);
	limit_key(key);
	proxy = gw_cidr_match(cfg->trusted_proxies, cfg->n_trusted_proxies, addr);
	p = peer_get(key);
	if (p->n >= cfg->max_connections_per_ip && (cfg->per_ip_loopback || !is_loopback(key)) &&
	    !proxy) {
		gw->m.limit_hits[GW_LIMIT_CONNECTIONS_IP]++;
		snprintf(msg, sizeof(msg), "limits.max_connections_per_ip (%u) reached from this address",
			 cfg->max_connections_per_ip);
		refuse_new(gw, fd, tls, 429, msg);
		return;
	}
	p->n++;
	gw->m.conns_open++;
	gw->m.conns_total++;
	c = conn_new(gw, fd, p, tls ? MODE_TLS : MODE_FIRST);
	if (tls) {
		/* The handshake and then the first head must be done within timeouts.header_s. */
		c->tls = 1;
		if (!hand_over(gw, c))
			conn_set_timer(gw, c, cfg->header_timeout_s);
		return;
	}
	c->next = C.unadopted;
	if (C.unadopted)
		C.unadopted->prev = c;
	C.unadopted = c;
	conn_set_timer(gw, c, cfg->header_timeout_s);
	ev_io_start(gw->loop, &c->io);
}

void
gw_conn_http_dropped(struct lws *wsi, const void *reason)
{
	struct conn *c = conn_of(wsi);

	/* lws_bind_protocol() passes its caller's name: this is the keep-alive path of
	 * lws_http_transaction_completed(), about to wait for the next request. (h2 streams and
	 * closing connections return before it.) */
	if (!c || !reason || strcmp(reason, "lws_http_transaction_completed"))
		return;
	if (c->mode == MODE_REQUEST && !c->allow) {
		/* lws's reading is paused by next_recv() at its first look at the socket: pausing
		 * here would hold up the POLLOUT lws waits for to leave LRS_DEFERRING_ACTION. */
		c->mode = MODE_NEXT;
		ev_timer_start(C.gw->loop, &c->arm);
	} else if (c->mode == MODE_REQUEST || c->mode == MODE_OPEN) {
		/* Where the next request starts is not known (the body was not read to its end, or
		 * had no length): this connection serves no more requests. */
		c->mode = MODE_CLOSING;
		ev_timer_start(C.gw->loop, &c->arm);
	}
}

void
gw_conn_ws_established(struct lws *wsi)
{
	struct conn *c = conn_of(wsi);

	if (!c || (c->mode != MODE_REQUEST && c->mode != MODE_OPEN))
		return;
	c->mode = MODE_WS;
	gw_wsmask_init(&c->ws);
	if (c->tls) {
		/* Frames the client sent right behind its upgrade may be held already (conn_tls.c), or
		 * wait in OpenSSL: no socket event would bring lws to them (`arm` looks). */
		ev_timer_start(C.gw->loop, &c->arm);
		return;
	}
	conn_lws_reading(c, 1);
}

void
gw_conn_wsi_created(struct lws *wsi)
{
	if (C.gw && C.gw->cfg->tls_cert && C.gw->cfg->tls_http2)
		conn_h2_wsi_created(wsi);
}

void
gw_conn_destroyed(struct lws *wsi)
{
	enum conn_ref *ref;

	if (!C.gw)
		return;
	conn_h2_settle();
	if (!(ref = lws_get_opaque_user_data(wsi)))
		return;
	lws_set_opaque_user_data(wsi, NULL);
	if (*ref == REF_H2STREAM)
		conn_h2_ref_destroyed(ref);
	else
		conn_free(C.gw, (struct conn *)ref);
}

void
gw_conn_shutdown(struct gw *gw)
{
	while (C.unadopted) {
		struct conn *c = C.unadopted;

		close(c->fd);
		conn_free(gw, c);
	}
	while (C.lingering)
		linger_free(gw, C.lingering);
}

void
gw_conn_free(void)
{
	for (size_t i = 0; i < C.cap; i++) {
		for (struct peer *p = C.tab[i], *n; p; p = n) {
			n = p->next;
			free(p);
		}
	}
	free(C.tab);
	free(C.byfd);
	free(C.scratch);
	conn_h2_free();
	memset(&C, 0, sizeof(C));
}

void
gw_conn_client(struct gw *gw, struct lws *wsi, uint8_t client[16])
{
	const struct gw_config *cfg = gw->cfg;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char xff[1024];
	int n;

	memset(client, 0, 16);
	/* An HTTP/2 stream has no socket of its own: its connection's is the peer's. */
	if (getpeername(lws_get_socket_fd(lws_get_network_wsi(wsi)), (struct sockaddr *)&ss, &len))
		return;
	peer_addr((const struct sockaddr *)&ss, len, client);
	/* An X-Forwarded-For longer than 1 KiB (about 25 hops) does not fit and is not read: the
	 * proxy itself is charged, which errs towards limiting, never towards trusting. */
	if (gw_cidr_match(cfg->trusted_proxies, cfg->n_trusted_proxies, client) &&
	    (n = lws_hdr_copy(wsi, xff, sizeof(xff), WSI_TOKEN_X_FORWARDED_FOR)) > 0)
		gw_xff_client(xff, (size_t)n, cfg->trusted_proxies, cfg->n_trusted_proxies, client);
	limit_key(client);
}

unsigned
gw_conn_lws_header_bytes(const struct gw_config *cfg)
{
	/* lws stores headers in its own layout (8 bytes more per unknown header), so its buffer must be
	 * roomier than the raw limit for a head that passed our check to fit. */
	return cfg->max_header_bytes * 2 + 1024;
}
