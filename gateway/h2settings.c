/*
 * h2settings.c - HTTP/2 connections do not offer WebSocket over HTTP/2 (RFC 8441).
 *
 * Why: lws 4.1.6 puts SETTINGS_ENABLE_CONNECT_PROTOCOL (0x8) = 1 in the SETTINGS frame that opens
 * every HTTP/2 connection it serves, and no setting stops it (h2preface.h). Chrome then opens a
 * page's WebSockets as extended CONNECT streams on that connection, which ws.c refuses (the gateway
 * speaks WebSocket on HTTP/1.1 only): a page loaded over h2 could not open a WebSocket. With 0x8 =
 * 0 a client opens its WebSockets on a separate HTTP/1.1 connection, as it does with any server
 * that does not offer extended CONNECT.
 *
 * How: this file defines SSL_write() for the process, as conn_tls.c defines SSL_read() (see there):
 * libwebsockets.so imports it from libssl, a definition in the executable comes first in symbol
 * lookup, and the real one is found with dlsym(RTLD_NEXT). lws writes its server preface, that
 * SETTINGS frame, as the first write on a connection whose ALPN picked "h2": after it has read the
 * client's preface, lws_h2_do_pps_send (roles/h2/http2.c, LWS_H2_PPS_MY_SETTINGS) builds the
 * frame alone in a buffer and writes it with one lws_issue_raw(), so one SSL_write() gets exactly
 * that frame at offset 0. If it cannot go at once, lws keeps it as one segment of its buflist_out
 * and writes that segment from its start later (core-net/output.c; without
 * SSL_MODE_ENABLE_PARTIAL_WRITE, which lws does not set, SSL_write() writes all or nothing), so
 * the retry starts with the frame too, and is patched the same way. The first SSL_write() that
 * succeeds on a server SSL ends our interest in it: it held the preface (patched), or conn_tls.c's
 * refusal of a connection over a limit (an empty SETTINGS frame, then GOAWAY: nothing to patch),
 * or the connection is not h2. A per-SSL mark (OpenSSL ex_data, which lives and dies with the SSL, so a
 * freed and reused SSL object starts afresh) records that, so every later write costs one lookup.
 *
 * If lws ever wrote its preface otherwise (not at a write's start, split), it would go out as lws
 * made it, 0x8 = 1, and test_tls.py's Http2 test that reads the raw preface fails.
 *
 * Service thread only, and server SSL objects only: any other call goes straight to OpenSSL.
 */
#define _GNU_SOURCE /* RTLD_NEXT */
#include "conn_int.h"
#include "tls.h"

#include <dlfcn.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h2preface.h"
#include "xalloc.h"

static int (*real_write)(SSL *, const void *, int);

__attribute__((constructor)) static void
real_resolve(void)
{
	real_write = (int (*)(SSL *, const void *, int))dlsym(RTLD_NEXT, "SSL_write");
	if (!real_write) {
		fprintf(stderr, "litegate: cannot find OpenSSL's SSL_write: %s\n", dlerror());
		abort();
	}
}

/* The ex_data slot of our mark (non-NULL: the first write went out); -1 until the first call. */
static int mark_index = -1;
#define MARK_DONE ((void *)1)

/* @p ssl's first successful write is still to come (and we can tell). */
static int
first_write_pending(const SSL *ssl)
{
	if (mark_index < 0)
		mark_index = SSL_get_ex_new_index(0, "litegate: first write done", NULL, NULL, NULL);
	return mark_index >= 0 && !SSL_get_ex_data(ssl, mark_index);
}

/* The first write of an h2 server connection: lws's SETTINGS frame, written with 0x8 = 0. */
static int
write_preface(SSL *ssl, const void *buf, int num)
{
	uint8_t *copy;
	int n;

	if (gw_h2_preface_scan(buf, (size_t)num) <= 0)
		return real_write(ssl, buf, num);
	copy = xmalloc((size_t)num);
	memcpy(copy, buf, (size_t)num);
	gw_h2_preface_no_connect(copy, (size_t)num);
	n = real_write(ssl, copy, num);
	free(copy);
	return n;
}

/* The SSL_write() libwebsockets calls (see the top of this file). */
int
SSL_write(SSL *ssl, const void *buf, int num)
{
	int n;

	if (!conn_on_service_thread || num <= 0 || !SSL_is_server(ssl) || !first_write_pending(ssl))
		return real_write(ssl, buf, num);
	n = gw_tls_alpn_is_h2(ssl) ? write_preface(ssl, buf, num) : real_write(ssl, buf, num);
	if (n > 0)
		SSL_set_ex_data(ssl, mark_index, MARK_DONE);
	return n;
}
