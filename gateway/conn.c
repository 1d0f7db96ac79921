/*
 * conn.c - admission of client connections (conn.h).
 *
 * Why look at the first request head ourselves: lws 4.1.6 answers nothing when a request's head
 * overflows its header buffer or arrives too slowly; it closes the connection, and while the head
 * trickles in it holds one of its header tables (limits.max_header_pool). So a new plain-HTTP
 * connection waits here until its head is complete (peeked, left in the socket), and the gateway
 * answers 414, 431 or 408 itself (with a JSON body, like every API error) when the head is too long
 * or too slow, and 400/405/431 when the head is malformed (headcheck.c: lws is lenient or silent
 * with those); only a connection with a whole, well-formed head is handed to lws, which then reads
 * the socket as if it had accepted it. A slowloris client therefore never reaches lws.
 *
 * What this cannot cover: later requests on a kept-alive connection, and TLS connections (their
 * bytes are encrypted until lws runs the handshake). Those meet lws's own limits: a header buffer
 * of twice max_header_bytes and timeouts.header_s, past which lws closes without a reply.
 *
 * Refusals are written straight to the socket, then the write side is shut and whatever the client
 * still sends is read and dropped for a moment before the close ("lingering close"), so the client
 * reads the reply instead of a reset.
 *
 * Accounting: every admitted connection holds a count on its client address (a hash table keyed by
 * the IPv6 or v4-mapped address). lws gives every wsi an opaque user pointer; ours points at that
 * entry and LWS_CALLBACK_WSI_DESTROY releases it, however the connection ended (keep-alive, SSE,
 * WebSocket upgrade, timeout, shutdown).
 */
#include "conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "headcheck.h"
#include "log.h"
#include "xalloc.h"

#define LINGER_S 2.0       /* read-and-drop time after a refusal, before the close */
#define LINGER_MAX 1024    /* refusals lingering at once; past it they close at once */

struct peer {
	uint8_t addr[16];      /* IPv6, or IPv4 mapped (::ffff:a.b.c.d) */
	uint32_t n;            /* admitted connections open from it */
	struct peer *next;     /* hash chain */
};

/* A connection being read (its first head) or lingering after a refusal; not lws's yet. */
struct pending {
	struct pending *prev, *next;
	ev_io io;
	ev_timer tm;
	int fd;
	struct peer *peer;     /* its count, while admitted; NULL once refused */
	int lingering;
	size_t len;            /* bytes of the head seen so far (peeked, still in the socket) */
	size_t cap;            /* non-zero once SO_RCVLOWAT was raised */
};

static struct {
	struct gw *gw;         /* set at the first accept */
	struct peer **tab;     /* power-of-two buckets */
	size_t cap, count;
	struct pending *pending;
	size_t n_linger;
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

/* ---- Connections not handed to lws yet ---------------------------------------------------------------- */

static void
pending_free(struct gw *gw, struct pending *c)
{
	ev_io_stop(gw->loop, &c->io);
	ev_timer_stop(gw->loop, &c->tm);
	if (c->prev)
		c->prev->next = c->next;
	else
		C.pending = c->next;
	if (c->next)
		c->next->prev = c->prev;
	if (c->lingering)
		C.n_linger--;
	if (c->peer)
		release(gw, c->peer);
	free(c);
}

static void on_pending_read(struct ev_loop *loop, ev_io *w, int revents);
static void on_pending_timer(struct ev_loop *loop, ev_timer *w, int revents);

static struct pending *
pending_new(struct gw *gw, int fd, struct peer *peer, double timeout)
{
	struct pending *c = xcalloc(1, sizeof(*c));

	c->fd = fd;
	c->peer = peer;
	ev_io_init(&c->io, on_pending_read, fd, EV_READ);
	c->io.data = gw;
	ev_timer_init(&c->tm, on_pending_timer, timeout, 0);
	c->tm.data = gw;
	ev_io_start(gw->loop, &c->io);
	ev_timer_start(gw->loop, &c->tm);
	c->next = C.pending;
	if (C.pending)
		C.pending->prev = c;
	C.pending = c;
	return c;
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

/*
 * Answer @p status on a connection lws never saw, then linger: shut our side, drop what the client
 * still sends for LINGER_S, close. Counts of an admitted connection are released here (@p c may be
 * NULL: a connection refused at accept).
 */
static void
refuse(struct gw *gw, int fd, struct pending *c, unsigned status, const char *code, const char *msg)
{
	char body[300], resp[600];
	int bl, n;

	bl = snprintf(body, sizeof(body), "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}\n", code, msg);
	n = snprintf(resp, sizeof(resp),
		     "HTTP/1.1 %u %s\r\nserver: litegate\r\ncontent-type: application/json\r\n"
		     "content-length: %d\r\nconnection: close\r\n%s\r\n%s",
		     status, reason_phrase(status), bl,
		     status == 429 || status == 503 ? "retry-after: 1\r\n" : "", body);
	gw->m.http_errors++;
	if (send(fd, resp, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 || C.n_linger >= LINGER_MAX) {
		if (c)
			pending_free(gw, c);
		close(fd);
		return;
	}
	shutdown(fd, SHUT_WR);
	if (!c)
		c = pending_new(gw, fd, NULL, LINGER_S);
	if (c->peer) {
		release(gw, c->peer);
		c->peer = NULL;
	}
	c->lingering = 1;
	C.n_linger++;
	ev_timer_stop(gw->loop, &c->tm);
	ev_timer_set(&c->tm, LINGER_S, 0);
	ev_timer_start(gw->loop, &c->tm);
}

/* The head is complete (or the connection is TLS): lws takes the socket. */
static void
hand_over(struct gw *gw, int fd, struct peer *peer)
{
	struct lws *wsi;

	/* lws closes the socket itself if it cannot adopt it. */
	wsi = lws_adopt_socket_vhost(gw->vhost, fd);
	if (!wsi) {
		release(gw, peer);
		return;
	}
	lws_set_opaque_user_data(wsi, peer);
}

static void
too_large(struct gw *gw, struct pending *c, const char *buf, size_t len)
{
	const struct gw_config *cfg = gw->cfg;
	char msg[128];

	gw->m.limit_hits[GW_LIMIT_HEADER_BYTES]++;
	if (!memchr(buf, '\n', len)) {
		snprintf(msg, sizeof(msg), "request line longer than limits.max_header_bytes (%u)",
			 cfg->max_header_bytes);
		refuse(gw, c->fd, c, 414, "uri_too_long", msg);
	} else {
		snprintf(msg, sizeof(msg), "request headers larger than limits.max_header_bytes (%u)",
			 cfg->max_header_bytes);
		refuse(gw, c->fd, c, 431, "headers_too_large", msg);
	}
}

static void
on_pending_read(struct ev_loop *loop, ev_io *w, int revents)
{
	struct gw *gw = w->data;
	struct pending *c = (struct pending *)((char *)w - offsetof(struct pending, io));
	size_t cap = gw->cfg->max_header_bytes;
	struct gw_head_verdict v;
	size_t head_len = 0;
	ssize_t n;
	int rc;

	(void)loop;
	(void)revents;
	if (c->lingering) {
		char drop[4096];

		do
			n = recv(c->fd, drop, sizeof(drop), MSG_DONTWAIT);
		while (n > 0);
		if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
			close(c->fd);
			pending_free(gw, c);
		}
		return;
	}
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
		/* The client went away before finishing its first request (or half-closed: nothing
		 * more can come, and nothing we have is a whole head). */
		close(c->fd);
		pending_free(gw, c);
		return;
	}
	c->len = (size_t)n;
	rc = gw_head_check(C.scratch, c->len, &head_len, &v);
	if (rc == 0 && head_len < c->len && gw_head_is_event_stream(C.scratch, c->len)) {
		/* Bytes after an event-stream request make lws 4.1.6 spin on its buffer until the client
		 * closes (docs/api.md, known limits): a browser never sends them. */
		rc = -1;
		v.status = 400;
		v.code = "bad_request";
		v.message = "nothing may follow an event-stream request on its connection";
	}
	if (rc < 0) {
		if (v.status == 431)
			gw->m.limit_hits[GW_LIMIT_HEADER_BYTES]++;
		refuse(gw, c->fd, c, v.status, v.code, v.message);
		return;
	}
	if (rc == 0) {
		int fd = c->fd, one = 1;
		struct peer *peer = c->peer;

		if (c->cap)
			setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof(one));
		c->peer = NULL; /* the count goes with the socket to lws */
		pending_free(gw, c);
		hand_over(gw, fd, peer);
		return;
	}
	if (c->len >= cap) {
		too_large(gw, c, C.scratch, c->len);
		return;
	}
	{
		int lowat = (int)c->len + 1;

		setsockopt(c->fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof(lowat));
		c->cap = 1; /* SO_RCVLOWAT was raised: lower it before lws takes the socket */
	}
}

static void
on_pending_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct gw *gw = w->data;
	struct pending *c = (struct pending *)((char *)w - offsetof(struct pending, tm));
	char msg[128];

	(void)loop;
	(void)revents;
	if (c->lingering || !c->len) {
		/* Lingering is over, or a connection that never said anything: just close. */
		if (!c->lingering)
			gw->m.limit_hits[GW_LIMIT_HEADER_TIMEOUT]++;
		close(c->fd);
		pending_free(gw, c);
		return;
	}
	gw->m.limit_hits[GW_LIMIT_HEADER_TIMEOUT]++;
	snprintf(msg, sizeof(msg), "the request head did not arrive within timeouts.header_s (%u s)",
		 gw->cfg->header_timeout_s);
	refuse(gw, c->fd, c, 408, "request_timeout", msg);
}

/* ---- API ------------------------------------------------------------------------------------------------ */

void
gw_conn_accept(struct gw *gw, int fd, const struct sockaddr *sa, socklen_t salen)
{
	const struct gw_config *cfg = gw->cfg;
	int tls = cfg->tls_cert != NULL;
	struct peer *p;
	uint8_t addr[16], key[16];
	int proxy;
	char msg[128];

	if (!C.scratch)
		C.scratch = xmalloc(cfg->max_header_bytes);
	C.gw = gw;
	if (gw->m.conns_open >= cfg->max_connections) {
		gw->m.limit_hits[GW_LIMIT_CONNECTIONS]++;
		snprintf(msg, sizeof(msg), "the gateway has limits.max_connections (%u) open; retry later",
			 cfg->max_connections);
		if (tls)
			close(fd);
		else
			refuse(gw, fd, NULL, 503, "too_many_connections", msg);
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
		if (tls)
			close(fd);
		else
			refuse(gw, fd, NULL, 429, "too_many_connections", msg);
		return;
	}
	p->n++;
	gw->m.conns_open++;
	gw->m.conns_total++;
	if (tls)
		hand_over(gw, fd, p);
	else
		pending_new(gw, fd, p, cfg->header_timeout_s);
}

void
gw_conn_destroyed(struct lws *wsi)
{
	struct peer *p = lws_get_opaque_user_data(wsi);

	if (!p || !C.gw)
		return;
	lws_set_opaque_user_data(wsi, NULL);
	release(C.gw, p);
}

void
gw_conn_shutdown(struct gw *gw)
{
	while (C.pending) {
		close(C.pending->fd);
		pending_free(gw, C.pending);
	}
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
	free(C.scratch);
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
