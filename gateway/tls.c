/*
 * tls.c - HTTPS and WSS setup (tls.h).
 *
 * Why HTTP/1.1 only, although Debian's lws 4.1.6 is built with HTTP/2: the gateway writes each reply
 * (status, headers, body) in one lws_write, frames WebSocket messages itself and writes them raw,
 * decodes chunked request bodies itself and watches each SSE socket's read side; all four are
 * HTTP/1.1 designs that an h2 stream would break. So ALPN offers "http/1.1" alone, and an h2-capable
 * browser simply uses HTTP/1.1 over TLS.
 */
#include "tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>

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
	info->alpn = "http/1.1";
	LOG_INFO("TLS on: certificate %s, HTTP/1.1 by ALPN", cfg->tls_cert);
}
