/*
 * pubrate.h - traffic shaping for producers (issue 4): publish rate limits per parent and per client
 * address, in messages per second and bytes per second (config "publish_limits"). A publish over a
 * limit is refused whole with 429 rate_limited and a Retry-After saying when it would fit; nothing
 * of it is appended and nothing is charged.
 *
 * Token buckets: each limit refills at its rate up to its burst (one second's worth by default). A
 * request larger than a burst passes when the bucket is full and leaves it in debt, so an oversized
 * batch is slowed, never refused forever. Client buckets are keyed by the client's address
 * (gw_conn_client(): the peer, or behind a trusted proxy the X-Forwarded-For client) and forgotten
 * once full again.
 *
 * Service thread only.
 */
#ifndef GW_PUBRATE_H
#define GW_PUBRATE_H

#include <stddef.h>
#include <stdint.h>

#include "gw.h"

/** @brief Are there per-client limits (so publishers need gw_conn_client() at all)? */
int gw_limits_by_client(const struct gw *gw);

/**
 * @brief Charge a publish of @p n messages and @p bytes payload bytes to @p topic's parent and to
 *        @p client (16 bytes from gw_conn_client(); NULL: the parent only).
 * @return 0 (charged), or -1 with @p e set to 429 rate_limited and e->retry_after_s (nothing charged).
 */
int gw_limits_publish(struct gw *gw, const uint8_t *client, const char *topic, uint64_t n,
		      uint64_t bytes, struct gw_error *e);

/** @brief Release the buckets (at exit). */
void gw_limits_free(void);

#endif /* GW_PUBRATE_H */
