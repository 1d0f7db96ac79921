/*
 * pubrate.h - traffic shaping for producers (issue 4): publish rate limits per parent and per client
 * address, in messages per second and bytes per second (config "publish_limits"). A publish over a
 * limit is refused whole with 429 rate_limited and a Retry-After saying when it would fit; nothing
 * of it is appended and nothing is charged.
 *
 * Token buckets: each limit refills at its rate up to its burst (one second's worth by default). A
 * request larger than a burst passes when the bucket is full and leaves it in debt, so an oversized
 * batch is slowed, never refused forever. Client buckets are keyed by the peer's address and
 * forgotten once full again.
 *
 * Service thread only.
 */
#ifndef GW_PUBRATE_H
#define GW_PUBRATE_H

#include <stddef.h>
#include <stdint.h>

#include "gw.h"

/**
 * @brief Charge a publish of @p n messages and @p bytes payload bytes to @p topic's parent and to
 *        @p wsi's client address (NULL: the parent only).
 * @return 0 (charged), or -1 with @p e set to 429 rate_limited and e->retry_after_s (nothing charged).
 */
int gw_limits_publish(struct gw *gw, struct lws *wsi, const char *topic, uint64_t n, uint64_t bytes,
		      struct gw_error *e);

/** @brief Release the buckets (at exit). */
void gw_limits_free(void);

#endif /* GW_PUBRATE_H */
