/*
 * tls.c - HTTPS and WSS setup (tls.h).
 *
 * ALPN offers "h2,http/1.1" (or "http/1.1" alone with "tls": {"http2": false}). Plain HTTP stays
 * HTTP/1.1: there is no h2c. The gateway's HTTP/1.1 design (each reply in one lws_write, its own
 * chunk decoder, its own read watcher on SSE sockets, raw WebSocket frames) is kept for HTTP/1.1
 * connections; an HTTP/2 stream takes another path (docs/architecture.md): replies as HEADERS then
 * DATA frames within the peer's window (h2.c), no chunk decoder (a body is DATA frames, and needs a
 * Content-Length: lws 4.1.6 does not report a length-less body's end), SSE ends seen from lws's
 * stream close, and WebSocket refused (HTTP/1.1 only; browsers open a separate connection).
 *
 * lws 4.1.6 quirks that shape the settings here (roles/h2/ops-h2.c, http2.c):
 *  - vhost http2_settings[] reaches only settings 1..5, and lws writes
 *    SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441, WebSocket over h2) = 1 in every server preface:
 *    h2settings.c rewrites it to 0 on its way into OpenSSL, so browsers open WebSockets on
 *    HTTP/1.1 (ws.c refuses them on h2);
 *  - DATA frames are written as given, never split to the peer's frame size: static files use a
 *    protocol whose tx_packet_size keeps them at 16384 bytes (main.c).
 */
#include "tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

int
gw_tls_check(const struct gw_config *cfg, char *err, size_t errsz)
{
	SSL_CTX *ctx;
	const char *what = NULL, *file = cfg->tls_cert;
	unsigned long e;

	if (!cfg->tls_cert)
		return 0;
	if (!(ctx = SSL_CTX_new(TLS_server_method()))) {
		snprintf(err, errsz, "tls: OpenSSL cannot create a context");
		return -1;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert) != 1)
		what = "tls.cert: cannot load a PEM certificate from";
	else if (file = cfg->tls_key, SSL_CTX_use_PrivateKey_file(ctx, file, SSL_FILETYPE_PEM) != 1)
		what = "tls.key: cannot load a PEM private key from";
	else if (file = cfg->tls_cert, SSL_CTX_check_private_key(ctx) != 1)
		what = "tls: the key does not match the certificate in";
	if (what) {
		char why[160] = "";

		if ((e = ERR_peek_last_error()))
			ERR_error_string_n(e, why, sizeof(why));
		if (e && ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH)
			what = "tls: the key does not match the certificate in", file = cfg->tls_cert;
		snprintf(err, errsz, "%s %s (%s)", what, file, why);
	}
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return what ? -1 : 0;
}

int
gw_tls_alpn_is_h2(const SSL *ssl)
{
	const unsigned char *p;
	unsigned int len;

	SSL_get0_alpn_selected(ssl, &p, &len);
	return len == 2 && !memcmp(p, "h2", 2);
}

void
gw_tls_setup(const struct gw_config *cfg, struct lws_context_creation_info *info)
{
	if (!cfg->tls_cert)
		return;
	info->options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	if (cfg->security_headers)
		info->options |= LWS_SERVER_OPTION_STS;
	info->ssl_cert_filepath = cfg->tls_cert;
	info->ssl_private_key_filepath = cfg->tls_key;
	info->ssl_options_set = SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1 |
				SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION;
	if (cfg->tls_http2) {
		info->alpn = "h2,http/1.1";
		/* lws's own values but more streams (a page with several event streams, fetches
		 * and static files on one connection). [0] = 1: use these. */
		info->http2_settings[0] = 1;
		info->http2_settings[H2SET_HEADER_TABLE_SIZE] = GW_H2_HEADER_TABLE_SIZE;
		info->http2_settings[H2SET_ENABLE_PUSH] = 0;
		info->http2_settings[H2SET_MAX_CONCURRENT_STREAMS] = GW_H2_MAX_STREAMS;
		info->http2_settings[H2SET_INITIAL_WINDOW_SIZE] = 0; /* lws grants each stream 256 KiB */
		info->http2_settings[H2SET_MAX_FRAME_SIZE] = 16384;
		/* A peer's WINDOW_UPDATE past 2^31-1 is capped rather than fatal to the connection. */
		info->options |= LWS_SERVER_OPTION_H2_JUST_FIX_WINDOW_UPDATE_OVERFLOW;
	} else {
		info->alpn = "http/1.1";
	}
	LOG_INFO("TLS on: certificate %s, ALPN %s", cfg->tls_cert, info->alpn);
}
