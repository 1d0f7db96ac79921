/*
 * h2conn.h - what the request handlers get from conn_h2.c about HTTP/2 streams, beyond lws 4.1.6:
 * the request headers lws drops on h2 (read the same way on HTTP/1.1), and the end of a body sent
 * without Content-Length. Service thread only.
 */
#ifndef GW_H2CONN_H
#define GW_H2CONN_H

#include <stdint.h>

#include "gw.h"
#include "h2tap.h"

/** @brief Request header @p h of @p wsi's request into @p dst (NUL-terminated): its length, or -1
 *  when absent or when it does not fit in @p len bytes (lws_hdr_custom_copy()'s contract). */
int gw_hdr_custom_copy(struct lws *wsi, char *dst, int len, enum gw_h2hdr h);

/** @brief The length of request header @p h of @p wsi's request, -1 when absent. */
int gw_hdr_custom_length(struct lws *wsi, enum gw_h2hdr h);

/** @brief LWS_CALLBACK_HTTP of an h2 stream: 1 when the frame tap follows it, 0 when not (its
 *  dropped headers read as absent), -1 when the tap's record disagrees with lws's (logged: the
 *  request must not be served with another stream's headers). */
int gw_h2_request_followed(struct lws *wsi);

/** @brief Whether the frame tap follows h2 stream @p wsi (its dropped headers and body end are
 *  known). */
int gw_h2_followed(struct lws *wsi);

/** @brief An h2 request without Content-Length: 1 once the client ended its body (END_STREAM) and
 *  @p received bytes (what LWS_CALLBACK_HTTP_BODY delivered) are all of it. */
int gw_h2_body_ended(struct lws *wsi, uint64_t received);

/** @brief http.c: the client ended @p wsi's body (its END_STREAM). Called from a timer, outside
 *  lws's callbacks. (A stream the client reset is closed by conn_h2.c.) */
void gw_http_h2_body_end(struct gw *gw, struct lws *wsi);

#endif /* GW_H2CONN_H */
