/*
 * conn.h - admission of client connections: limits on open connections (overall and per client
 * address), every plain-HTTP request head checked before libwebsockets reads it (the first before
 * lws adopts the socket, kept-alive ones while lws's reading is paused), unmasked WebSocket frames
 * refused, and the accounting that ends when lws destroys the connection.
 *
 * conn.c also defines recv() for the process: libwebsockets reads plain sockets with it (see
 * conn.c for why and how); conn_tls.c defines SSL_read() and SSL_pending(), through which it reads
 * TLS connections, for the same checks on their decrypted bytes.
 *
 * Service thread only.
 */
#ifndef GW_CONN_H
#define GW_CONN_H

#include <sys/socket.h>

#include "gw.h"

/**
 * @brief Take a socket main.c just accepted: refuse it when a connection limit is reached (503 or
 *        429 with Retry-After on plain HTTP, a close on TLS), else read its first request head (plain
 *        HTTP) or hand it to lws at once (TLS: its heads are read as lws reads, conn_tls.c). Takes ownership of @p fd.
 */
void gw_conn_accept(struct gw *gw, int fd, const struct sockaddr *sa, socklen_t salen);

/**
 * @brief LWS_CALLBACK_HTTP_DROP_PROTOCOL (any HTTP protocol), @p reason its `in`: when lws's
 *        transaction on a kept-alive connection completed, the next request's head is read and
 *        checked here before lws may read it.
 */
void gw_conn_http_dropped(struct lws *wsi, const void *reason);

/** @brief LWS_CALLBACK_ESTABLISHED: the connection is a WebSocket now; its frames are followed for
 *  unmasked ones (gw_ws_unmasked() is called on the first). */
void gw_conn_ws_established(struct lws *wsi);

/** @brief LWS_CALLBACK_WSI_CREATE (any wsi): with HTTP/2 on, a new stream is matched with its
 *  connection's frame tap (conn_h2.c). */
void gw_conn_wsi_created(struct lws *wsi);

/** @brief LWS_CALLBACK_WSI_DESTROY (any wsi): if it is a connection we handed to lws, release its
 *  counts. */
void gw_conn_destroyed(struct lws *wsi);

/**
 * @brief The client a request is charged to, as a 16-byte address (xff.h): the peer, or, when the
 *        peer is one of limits.trusted_proxies, the client its X-Forwarded-For names. IPv6 peers
 *        count by their /64 as in the connection limits. The request's headers must be attached.
 */
void gw_conn_client(struct gw *gw, struct lws *wsi, uint8_t client[16]);

/** @brief Shutdown: close every connection not handed to lws yet. */
void gw_conn_shutdown(struct gw *gw);

/** @brief Release the tables (after the lws context is destroyed). */
void gw_conn_free(void);

/** @brief How big lws's own header buffer must be for limits.max_header_bytes (main.c). */
unsigned gw_conn_lws_header_bytes(const struct gw_config *cfg);

#endif /* GW_CONN_H */
