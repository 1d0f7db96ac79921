/*
 * conn_tls.c - conn.c's request-head checks and WebSocket mask check for TLS connections, on
 * their decrypted bytes.
 *
 * Why: over TLS, lws 4.1.6 meets a head that is too big, too slow or malformed the way conn.c
 * explains for plain HTTP (a close without a reply, nothing counted, lenient parsing), and accepts
 * unmasked client frames on wss:. conn.c reads plain sockets before lws does; a TLS socket carries
 * ciphertext, and lws reads it with SSL_read() (lws_ssl_capable_read in tls/openssl/openssl-ssl.c).
 *
 * How: this file defines SSL_read() and SSL_pending() for the process (and SSL_accept(), to answer
 * a connection over a connection limit once its handshake is done), as conn.c defines recv():
 * libwebsockets.so imports them from libssl, a definition in the executable comes first in symbol
 * lookup, and the real ones are found with dlsym(RTLD_NEXT). For a TLS connection registered in
 * conn.c, on the service thread:
 *  - MODE_TLS (the first head, after lws's handshake) and MODE_NEXT (a kept-alive one): what
 *    OpenSSL has is read into the connection's `held` buffer (at most limits.max_header_bytes)
 *    until the head is whole. lws gets nothing meanwhile: the last real SSL_read() result, normally
 *    SSL_ERROR_WANT_READ, is what it sees. A whole, acceptable head starts the request as in conn.c
 *    (MODE_REQUEST with its length, or MODE_OPEN) and lws reads it from `held`; a refused one is
 *    answered here (conn_tls_refuse) with the same JSON 400/405/414/431/408 as plain HTTP.
 *  - MODE_REQUEST: lws reads `held` and then OpenSSL, no further than the request's end. Bytes
 *    after it (a pipelined request) stay in `held` for the next head check; unlike plain HTTP,
 *    where they would keep the socket readable, they cost nothing while the request is served, so
 *    pipelining is served over TLS. More than a head's worth meanwhile cuts the client off.
 *  - MODE_WS: frames are followed (wsmask.h); lws gets none from the first unmasked one on, and
 *    ws.c closes with 1002, as on ws:.
 *  - MODE_H2 (ALPN h2): untouched; h2 streams have no HTTP/1 heads.
 * lws asks OpenSSL with SSL_pending() whether data waits that no socket event will announce (it
 * does so when a read filled its buffer); our SSL_pending() adds what `held` has for lws. When a
 * head or frames are held after lws's transaction or upgrade ended, no socket event would make lws
 * read them: conn_tls_resume() services the socket as if it were readable (lws_service_fd), from
 * a timer, outside any lws callback.
 *
 * Any other SSL object, and any call off the service thread, goes straight to OpenSSL.
 */
#define _GNU_SOURCE /* RTLD_NEXT */
#include "conn_int.h"

#include <dlfcn.h>
#include <errno.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "h2tap.h"
#include "log.h"
#include "tls.h"
#include "xalloc.h"

static struct {
	int (*read)(SSL *, void *, int);
	int (*pending)(const SSL *);
	int (*accept)(SSL *);
} real;

__attribute__((constructor)) static void
real_resolve(void)
{
	real.read = (int (*)(SSL *, void *, int))dlsym(RTLD_NEXT, "SSL_read");
	real.pending = (int (*)(const SSL *))dlsym(RTLD_NEXT, "SSL_pending");
	real.accept = (int (*)(SSL *))dlsym(RTLD_NEXT, "SSL_accept");
	if (!real.read || !real.pending || !real.accept) {
		fprintf(stderr, "litegate: cannot find OpenSSL's SSL_read/SSL_pending/SSL_accept: %s\n",
			dlerror());
		abort();
	}
}

/* The TLS connection of @p ssl, if conn.c registered it and we are on the service thread. */
static struct conn *
tls_conn(const SSL *ssl)
{
	struct conn *c;

	if (!conn_on_service_thread)
		return NULL;
	c = conn_by_fd(SSL_get_fd(ssl));
	return c && c->tls ? c : NULL;
}

static size_t
held_avail(const struct conn *c)
{
	return c->held_len - c->held_off;
}

/* An empty `held` is let go: an idle connection (WebSocket, kept alive, h2) costs no buffer. */
static void
held_release(struct conn *c)
{
	if (held_avail(c))
		return;
	free(c->held);
	c->held = NULL;
	c->held_len = c->held_off = 0;
}

/*
 * lws must close the connection now: 0, with errno ENOTCONN, which lws 4.1.6 takes as fatal
 * whatever OpenSSL's own state says (lws_ssl_capable_read). OpenSSL's state alone would not do: a
 * refusal's SSL_write() may have left it at WANT_WRITE, and lws would keep the connection and come
 * back on every readable turn.
 */
static int
close_now(void)
{
	errno = ENOTCONN;
	return 0;
}

/* Move what is left of `held` to its start. */
static void
held_compact(struct conn *c)
{
	if (!c->held_off)
		return;
	memmove(c->held, c->held + c->held_off, held_avail(c));
	c->held_len -= c->held_off;
	c->held_off = 0;
}

/*
 * Read what OpenSSL has into `held` until it has no more or `held` is full. Returns 1 when full,
 * else the last SSL_read() result (<= 0), whose error state lws's SSL_get_error() then reads.
 */
static int
held_fill(struct gw *gw, struct conn *c, SSL *ssl)
{
	size_t cap = gw->cfg->max_header_bytes;
	int n;

	if (!c->held)
		c->held = xmalloc(cap);
	held_compact(c);
	while (c->held_len < cap) {
		n = real.read(ssl, c->held + c->held_len, (int)(cap - c->held_len));
		if (n <= 0)
			return n;
		c->held_len += (size_t)n;
	}
	return 1;
}

/* Read and drop what OpenSSL has (a connection being closed); the last SSL_read() result. */
static int
discard(SSL *ssl)
{
	char drop[4096];
	int n;

	while ((n = real.read(ssl, drop, sizeof(drop))) > 0)
		;
	return n;
}

/*
 * lws reads the current request (MODE_REQUEST, at most `allow` bytes), or freely (MODE_OPEN,
 * MODE_WS): `held` first, then OpenSSL.
 */
static int
deliver(struct gw *gw, struct conn *c, SSL *ssl, uint8_t *buf, int num)
{
	uint64_t limit = c->mode == MODE_REQUEST ? c->allow : UINT64_MAX;
	size_t n = 0;
	int r;

	if (!limit) {
		/* The request is all read and being served, and the client sent more: keep it for the
		 * next head check. A head's worth of it already: the client is cut off (0 with no
		 * error queued reads as SSL_ERROR_SYSCALL to lws, which closes). */
		r = held_fill(gw, c, ssl);
		return r == 1 ? close_now() : r;
	}
	if (held_avail(c)) {
		n = held_avail(c);
		if (n > (size_t)num)
			n = (size_t)num;
		if (n > limit)
			n = (size_t)limit;
		memcpy(buf, c->held + c->held_off, n);
		c->held_off += n;
		held_release(c);
	}
	if (!held_avail(c) && n < (size_t)num && n < limit) {
		uint64_t want = (uint64_t)num - n;

		if (want > limit - n)
			want = limit - n;
		r = real.read(ssl, buf + n, (int)want);
		if (r > 0)
			n += (size_t)r;
		else if (!n)
			return r;
	}
	if (c->mode == MODE_REQUEST)
		c->allow -= n;
	return (int)n;
}

/* MODE_TLS, MODE_NEXT: read the head into `held`; let lws read it once it is whole and acceptable. */
static int
head_read(struct gw *gw, struct conn *c, SSL *ssl, uint8_t *buf, int num)
{
	size_t cap = gw->cfg->max_header_bytes, head_len = 0, before = held_avail(c);
	struct gw_head_verdict v;
	char msg[128];
	int n, rc;

	n = held_fill(gw, c, ssl);
	if (!c->held_len) {
		held_release(c);
		return n;
	}
	if (c->mode == MODE_NEXT && !before) /* the first byte of a kept-alive request */
		conn_set_timer(gw, c, gw->cfg->header_timeout_s);
	rc = conn_head_verdict(gw, c->held, c->held_len, &head_len, &v);
	if (rc > 0 && c->held_len >= cap) {
		conn_too_large(gw, c->held, c->held_len, &v, msg, sizeof(msg));
		rc = -1;
	}
	if (rc < 0) {
		conn_tls_refuse(gw, c, v.status, v.code, v.message, 1);
		return close_now();
	}
	if (rc > 0)
		return n; /* not whole yet: lws sees OpenSSL's WANT_READ (or the client's close) */
	conn_stop_watchers(gw, c);
	conn_request_start(c, c->held, head_len);
	return deliver(gw, c, ssl, buf, num);
}

/* MODE_WS: lws reads frames up to the first unmasked one. */
static int
ws_read(struct gw *gw, struct conn *c, SSL *ssl, uint8_t *buf, int num)
{
	size_t ok;
	int n;

	if (c->bad_ws)
		return discard(ssl);
	n = deliver(gw, c, ssl, buf, num);
	if (n <= 0)
		return n;
	ok = gw_wsmask_feed(&c->ws, buf, (size_t)n);
	if (ok == (size_t)n)
		return n;
	c->held_off = c->held_len = 0; /* what follows is dropped */
	held_release(c);
	conn_ws_unmasked(c);
	return ok ? (int)ok : discard(ssl);
}

/* MODE_H2: lws gets every byte; the tap follows them first. */
static int
h2_read(struct gw *gw, struct conn *c, SSL *ssl, uint8_t *buf, int num)
{
	int n = real.read(ssl, buf, num);

	if (n <= 0 || !c->h2)
		return n;
	if (gw_h2tap_feed(c->h2, buf, (size_t)n)) {
		/* lws must not read these bytes (a stream it would abort on, or headers the tap
		 * lost track of): 0 with nothing queued reads as SSL_ERROR_SYSCALL, and lws closes. */
		gw->m.h2_refused++;
		LOG_DEBUG("h2: closing a connection whose frames cannot be followed (or that sent a "
			  "body on a GET-like stream without content-length)");
		return close_now();
	}
	if (gw_h2tap_has_changed(c->h2))
		ev_timer_start(gw->loop, &c->arm); /* END_STREAM or RST_STREAM: conn_h2_events */
	return n;
}

/*
 * The only reply @p c gets (a refusal), then its end. The reply, then our close_notify, go through
 * lws's SSL object (nothing of lws's own is being written: no request is in progress). Then the
 * socket lingers on a duplicate, as a plain refusal does, so the client reads the reply rather than
 * a reset; lws closes its descriptor (its own SSL_shutdown then finds ours done). @p inside_lws:
 * called from within lws (SSL_read, SSL_accept), where the connection may not be closed: `arm`
 * closes it if lws has not by then.
 */
static void
answer_and_close(struct gw *gw, struct conn *c, const void *reply, int n, int inside_lws)
{
	int fd;

	gw->m.http_errors++;
	conn_stop_watchers(gw, c);
	c->held_off = c->held_len = 0;
	held_release(c);
	if (c->ssl && SSL_write(c->ssl, reply, n) == n) {
		SSL_shutdown(c->ssl);
		if ((fd = dup(c->fd)) >= 0)
			conn_linger(gw, fd);
	}
	c->mode = MODE_CLOSING;
	if (inside_lws)
		ev_timer_start(gw->loop, &c->arm);
	else
		conn_kill(c);
}

/*
 * A connection over a connection limit (conn.c's refuse_new), as soon as its handshake is done
 * (SSL_accept below), before the client sent anything: HTTP/1.1 gets the JSON 429/503; an h2
 * connection gets a GOAWAY (ENHANCE_YOUR_CALM, nothing processed) whose debug data says why, after
 * a SETTINGS frame as the server's preface.
 */
static void
refuse_connection(struct gw *gw, struct conn *c, SSL *ssl)
{
	uint8_t f[9 + 9 + 8 + 128];
	size_t n = strlen(c->refusal_msg), len;

	if (!gw_tls_alpn_is_h2(ssl)) {
		conn_tls_refuse(gw, c, c->refusal, "too_many_connections", c->refusal_msg, 1);
		return;
	}
	n = n > 128 ? 128 : n;
	len = 8 + n;
	memset(f, 0, 18 + 8);
	f[3] = 0x4;                 /* SETTINGS, empty */
	f[9] = (uint8_t)(len >> 16); /* GOAWAY, stream 0 */
	f[10] = (uint8_t)(len >> 8);
	f[11] = (uint8_t)len;
	f[12] = 0x7;
	f[25] = 0xb;                /* last stream 0, ENHANCE_YOUR_CALM */
	memcpy(f + 26, c->refusal_msg, n);
	answer_and_close(gw, c, f, (int)(26 + n), 1);
}

/* The SSL_read() libwebsockets calls (see the top of this file). */
int
SSL_read(SSL *ssl, void *buf, int num)
{
	struct conn *c = tls_conn(ssl);
	struct gw *gw = conn_gw();

	if (!c || num <= 0)
		return real.read(ssl, buf, num);
	c->ssl = ssl;
	if (c->mode == MODE_TLS && gw_tls_alpn_is_h2(ssl)) {
		conn_stop_watchers(gw, c);
		c->mode = MODE_H2;
		c->h2 = gw_h2tap_new(4 * (size_t)gw->cfg->max_header_bytes, GW_H2_HEADER_TABLE_SIZE,
				     2 * GW_H2_MAX_STREAMS);
	}
	switch (c->mode) {
	case MODE_TLS:
	case MODE_NEXT:
		return head_read(gw, c, ssl, buf, num);
	case MODE_REQUEST:
	case MODE_OPEN:
		return deliver(gw, c, ssl, buf, num);
	case MODE_WS:
		return ws_read(gw, c, ssl, buf, num);
	case MODE_CLOSING:
		return close_now(); /* served its last request, or refused: lws closes (or `arm` does) */
	case MODE_H2:
		return h2_read(gw, c, ssl, buf, num);
	default:
		return real.read(ssl, buf, num);
	}
}

/* lws runs the handshake with SSL_accept(): once it is done, a connection over a limit is
 * answered, and closed from `arm` (outside lws's call). */
int
SSL_accept(SSL *ssl)
{
	int n = real.accept(ssl);
	struct conn *c;

	if (n == 1 && (c = tls_conn(ssl)) && c->refusal && c->mode == MODE_TLS) {
		struct gw *gw = conn_gw();

		c->ssl = ssl;
		refuse_connection(gw, c, ssl);
	}
	return n;
}

/* What lws may read without a socket event: OpenSSL's decrypted bytes and, for the current
 * request, `held`. */
int
SSL_pending(const SSL *ssl)
{
	struct conn *c = tls_conn(ssl);
	int n = real.pending(ssl);
	size_t h;

	if (!c)
		return n;
	switch (c->mode) {
	case MODE_REQUEST:
		if (!c->allow)
			return 0; /* lws may read nothing more now */
		h = held_avail(c);
		return n + (int)(h < c->allow ? h : c->allow);
	case MODE_OPEN:
	case MODE_WS:
		return c->bad_ws ? 0 : n + (int)held_avail(c);
	default:
		return n;
	}
}

void
conn_tls_refuse(struct gw *gw, struct conn *c, unsigned status, const char *code, const char *msg,
		int inside_lws)
{
	char resp[600];

	answer_and_close(gw, c, resp, conn_refusal(resp, sizeof(resp), status, code, msg), inside_lws);
}

/* Service @p c's socket as if poll() had reported @p revents. */
static void
service_as_if(struct conn *c, short revents)
{
	struct lws_pollfd pfd;

	pfd.fd = c->fd;
	pfd.events = LWS_POLLIN | LWS_POLLOUT;
	pfd.revents = revents;
	lws_service_fd(lws_get_context(c->wsi), &pfd);
}

void
conn_tls_resume(struct gw *gw, struct conn *c)
{
	int fd = c->fd;

	if (c->mode == MODE_NEXT) {
		held_compact(c);
		held_release(c);
		conn_set_timer(gw, c, c->held_len ? gw->cfg->header_timeout_s : gw->cfg->keepalive_s);
	}
	if (!held_avail(c) && !(c->ssl && real.pending(c->ssl)))
		return; /* lws reads when the socket brings more */
	if (c->mode == MODE_NEXT) {
		/* After a transaction lws waits in LRS_DEFERRING_ACTION for POLLOUT before it reads
		 * again (roles/h1/ops-h1.c, lws_h1_server_socket_service): POLLOUT first, which only
		 * moves it on (no write is pending, no header is parsed yet). */
		service_as_if(c, LWS_POLLOUT);
		if (conn_by_fd(fd) != c)
			return;
	}
	service_as_if(c, LWS_POLLIN);
}
