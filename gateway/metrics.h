/*
 * metrics.h - counters and latency histograms, rendered as Prometheus text for GET /metrics.
 *
 * Service thread only: every counter is bumped and read there, so plain integers suffice.
 */
#ifndef GW_METRICS_H
#define GW_METRICS_H

#include <stdint.h>

#include <engine.h>

#include "buf.h"

#define GW_HIST_BUCKETS 14

/* Limits whose hits /metrics counts, as litegate_limit_exceeded_total{limit="..."}. */
enum gw_limit {
	GW_LIMIT_CONNECTIONS = 0, /* limits.max_connections: 503 at accept */
	GW_LIMIT_CONNECTIONS_IP,  /* limits.max_connections_per_ip: 429 at accept */
	GW_LIMIT_HEADER_BYTES,    /* limits.max_header_bytes: 431 or 414 */
	GW_LIMIT_HEADER_TIMEOUT,  /* timeouts.header_s: 408, or closed when nothing came */
	GW_LIMIT_REQUEST_TIMEOUT, /* timeouts.request_s: a Content-Length body that trickles: 408 */
	GW_LIMIT_BODY_BYTES,      /* 413 replies: body, NDJSON line, message or batch too large */
	GW_LIMIT_WS_MESSAGE,      /* limits.max_ws_message_bytes: WebSocket closed with 1009 */
	GW_LIMIT_WS_TOPICS,       /* limits.max_ws_topics: too_many_topics */
	GW_LIMIT_HISTORY,         /* a history page cut short by limits.history_max_bytes */
	GW_LIMIT_KEEPALIVE_IDLE,  /* timeouts.keepalive_s: an idle kept-alive connection closed */
	GW_LIMIT_COUNT,
};

/* Cumulative-bucket histogram in seconds, as Prometheus expects. */
struct gw_hist {
	uint64_t counts[GW_HIST_BUCKETS]; /* per bucket (non-cumulative; summed when rendered) */
	uint64_t inf;                     /* above the last bound */
	uint64_t n;
	double sum;                       /* seconds */
};

struct gw_metrics {
	uint64_t http_requests;     /* API requests routed (static files not counted) */
	uint64_t http_errors;       /* API replies with status >= 400 */
	uint64_t auth_unauthorized; /* requests and upgrades refused with 401 (no or bad token) */
	uint64_t auth_forbidden;    /* requests, upgrades and WebSocket ops refused as out of scope */
	uint64_t auth_expired;      /* streams ended because their token expired */
	uint64_t conns_open;        /* gauge: client connections accepted and not closed (conn.c) */
	uint64_t conns_total;       /* client connections accepted */
	uint64_t limit_hits[GW_LIMIT_COUNT]; /* refusals and drops by limit (enum gw_limit) */
	uint64_t publish_requests;  /* HTTP publish requests answered */
	uint64_t published_msgs;    /* messages acknowledged (HTTP and WebSocket) */
	uint64_t published_bytes;   /* their payload bytes */
	uint64_t delivered_msgs;    /* events written to SSE and WebSocket subscribers */
	uint64_t delivered_bytes;   /* bytes of those writes */
	uint64_t sse_open;          /* gauge: open SSE streams */
	uint64_t ws_open;           /* gauge: open WebSockets */
	uint64_t sse_total;         /* streams opened since start */
	uint64_t ws_total;
	uint64_t stalled_dropped;   /* streams dropped because they could not be written */
	uint64_t gaps;              /* gap events sent */
	uint64_t resets;            /* reset events sent */
	uint64_t groups;            /* gauge: consumer groups defined */
	uint64_t pops;              /* pop requests answered */
	uint64_t pops_waiting;      /* gauge: pops parked (long poll) */
	uint64_t popped_msgs;       /* messages handed out by pops (redeliveries included) */
	uint64_t redelivered_msgs;  /* of those, handed out again (delivery > 1) */
	uint64_t acked_msgs;        /* messages acknowledged */
	uint64_t nacked_msgs;       /* messages handed back with nack */
	uint64_t visibility_timeouts; /* in-flight messages whose invisible_ms ran out */
	uint64_t dead_lettered;     /* messages moved to a dead-letter topic */
	uint64_t journal_records;   /* gauge: delivery-count journal records holding a current count */
	uint64_t journal_folded;    /* journal records found (and folded) at startup */
	uint64_t ready_overflows;   /* ENG_READY_OVERFLOW entries taken: a subscriber re-checked all */
	uint64_t ws_unmasked;       /* WebSockets closed with 1002 for an unmasked client frame */
	uint64_t h2_refused;        /* h2 connections closed: frames the tap cannot follow (conn_tls.c) */
	uint64_t publish_rate_limited; /* publishes refused by publish_limits (429 rate_limited) */
	struct gw_hist publish_latency;  /* request headers to durable ack */
	struct gw_hist delivery_latency; /* store time to the write that carries the event */
	struct gw_hist pop_latency;      /* pop request headers to its reply (long polls included) */
};

void gw_hist_observe(struct gw_hist *h, double seconds);

/** @brief Append the Prometheus text exposition of @p m and the engine's @p es to @p out. */
void gw_metrics_render(const struct gw_metrics *m, const eng_stats *es, struct gw_buf *out);

#endif /* GW_METRICS_H */
