/*
 * tls.h - HTTPS and WSS on the gateway's own listening socket (config group "tls").
 *
 * The gateway accepts connections itself and adopts them into lws (main.c explains why), so TLS is
 * the vhost's: lws's OpenSSL backend builds the vhost's SSL_CTX from the certificate and key, and
 * lws_adopt_socket_vhost() (LWS_ADOPT_ALLOW_SSL) runs the handshake on each adopted socket. Main
 * thread, at startup only.
 */
#ifndef GW_TLS_H
#define GW_TLS_H

#include <libwebsockets.h>
#include <stddef.h>

#include "config.h"

/* SETTINGS_MAX_CONCURRENT_STREAMS we advertise: streams open at once on one HTTP/2 connection. */
#define GW_H2_MAX_STREAMS 128
/* SETTINGS_HEADER_TABLE_SIZE we advertise: the largest HPACK table a client may encode against
 * (conn_tls.c's frame tap decodes with one of that size). */
#define GW_H2_HEADER_TABLE_SIZE 65536
/* Bytes per DATA frame of a static file: SETTINGS_MAX_FRAME_SIZE's floor, which lws 4.1.6 does
 * not enforce itself (main.c). */
#define GW_H2_STATIC_PACKET 16384

/** @brief Whether ALPN picked h2 on @p ssl (an OpenSSL SSL). */
int gw_tls_alpn_is_h2(const struct ssl_st *ssl);

/**
 * @brief With tls configured, load the certificate chain and key with OpenSSL and check that they
 *        belong together, so a bad pair is a config error (exit 2) with a message, not a failed
 *        lws context. No-op without tls.
 * @return 0, or -1 with @p err set.
 */
int gw_tls_check(const struct gw_config *cfg, char *err, size_t errsz);

/**
 * @brief Turn on TLS in the context/vhost creation info: global OpenSSL init, the files, TLS 1.2 as
 *        the floor, ALPN "h2,http/1.1" (or "http/1.1" with tls.http2 false) with the HTTP/2
 *        settings, and Strict-Transport-Security when security_headers is on. No-op without tls.
 */
void gw_tls_setup(const struct gw_config *cfg, struct lws_context_creation_info *info);

#endif /* GW_TLS_H */
