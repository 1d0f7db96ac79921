/*
 * metrics.c - Prometheus text rendering of the gateway's and the engine's counters. Service thread.
 */
#include "metrics.h"

static const double bounds[GW_HIST_BUCKETS] = {
	0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
};

void
gw_hist_observe(struct gw_hist *h, double seconds)
{
	int i;

	if (seconds < 0)
		seconds = 0;
	for (i = 0; i < GW_HIST_BUCKETS && seconds > bounds[i]; i++)
		;
	if (i == GW_HIST_BUCKETS)
		h->inf++;
	else
		h->counts[i]++;
	h->n++;
	h->sum += seconds;
}

static void
counter(struct gw_buf *out, const char *name, const char *help, const char *type, uint64_t v)
{
	gw_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name,
		      (unsigned long long)v);
}

static void
hist(struct gw_buf *out, const char *name, const char *help, const struct gw_hist *h)
{
	uint64_t cum = 0;

	gw_buf_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
	for (int i = 0; i < GW_HIST_BUCKETS; i++) {
		cum += h->counts[i];
		gw_buf_printf(out, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i], (unsigned long long)cum);
	}
	gw_buf_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name,
		      (unsigned long long)h->n, name, h->sum, name, (unsigned long long)h->n);
}

void
gw_metrics_render(const struct gw_metrics *m, const eng_stats *es, struct gw_buf *out)
{
	counter(out, "litegate_http_requests_total", "API requests routed.", "counter", m->http_requests);
	counter(out, "litegate_http_errors_total", "API replies with a status of 400 or more.", "counter",
		m->http_errors);
	counter(out, "litegate_auth_unauthorized_total",
		"Requests and WebSocket upgrades refused with 401 (missing or invalid token).", "counter",
		m->auth_unauthorized);
	counter(out, "litegate_auth_forbidden_total",
		"Requests, upgrades and WebSocket operations refused as outside the token's scope.",
		"counter", m->auth_forbidden);
	counter(out, "litegate_auth_expired_streams_total",
		"SSE streams and WebSockets ended because their token expired.", "counter",
		m->auth_expired);
	counter(out, "litegate_ws_unmasked_frames_total",
		"WebSockets closed with 1002 because the client sent an unmasked frame.", "counter",
		m->ws_unmasked);
	counter(out, "litegate_h2_connections_refused_total",
		"HTTP/2 connections closed because their frames could not be followed, or a body came "
		"on a GET-like stream without content-length.", "counter", m->h2_refused);
	counter(out, "litegate_connections", "Open client connections.", "gauge", m->conns_open);
	counter(out, "litegate_connections_total", "Client connections accepted.", "counter",
		m->conns_total);
	{
		static const char *const names[GW_LIMIT_COUNT] = {
			"max_connections", "max_connections_per_ip", "max_header_bytes", "header_timeout",
			"request_timeout", "max_body_bytes", "max_ws_message_bytes", "max_ws_topics",
			"history_max_bytes", "keepalive_idle",
		};

		gw_buf_puts(out, "# HELP litegate_limit_exceeded_total Connections, requests and frames "
				 "refused or dropped by a limit (docs/security.md).\n"
				 "# TYPE litegate_limit_exceeded_total counter\n");
		for (int i = 0; i < GW_LIMIT_COUNT; i++)
			gw_buf_printf(out, "litegate_limit_exceeded_total{limit=\"%s\"} %llu\n", names[i],
				      (unsigned long long)m->limit_hits[i]);
	}
	counter(out, "litegate_publish_requests_total", "HTTP publish requests answered.", "counter",
		m->publish_requests);
	counter(out, "litegate_messages_published_total", "Messages acknowledged as durable.", "counter",
		m->published_msgs);
	counter(out, "litegate_published_bytes_total", "Payload bytes of acknowledged messages.",
		"counter", m->published_bytes);
	counter(out, "litegate_messages_delivered_total", "Events written to SSE and WebSocket subscribers.",
		"counter", m->delivered_msgs);
	counter(out, "litegate_delivered_bytes_total", "Bytes written to SSE and WebSocket subscribers.",
		"counter", m->delivered_bytes);
	counter(out, "litegate_sse_connections", "Open SSE streams.", "gauge", m->sse_open);
	counter(out, "litegate_ws_connections", "Open WebSocket connections.", "gauge", m->ws_open);
	counter(out, "litegate_sse_connections_total", "SSE streams opened.", "counter", m->sse_total);
	counter(out, "litegate_ws_connections_total", "WebSocket connections opened.", "counter",
		m->ws_total);
	counter(out, "litegate_stalled_dropped_total", "Streams dropped because the peer stopped reading.",
		"counter", m->stalled_dropped);
	counter(out, "litegate_gap_events_total", "Gap events sent (start point below retention).",
		"counter", m->gaps);
	counter(out, "litegate_reset_events_total", "Reset events sent (start point past a topic's end).",
		"counter", m->resets);
	counter(out, "litegate_groups", "Consumer groups defined.", "gauge", m->groups);
	counter(out, "litegate_pops_total", "Pop requests answered.", "counter", m->pops);
	counter(out, "litegate_pops_waiting", "Pop requests parked (long poll).", "gauge",
		m->pops_waiting);
	counter(out, "litegate_messages_popped_total", "Messages handed out by pops, redeliveries included.",
		"counter", m->popped_msgs);
	counter(out, "litegate_messages_redelivered_total", "Messages handed out again (delivery > 1).",
		"counter", m->redelivered_msgs);
	counter(out, "litegate_messages_acked_total", "Messages acknowledged by consumer groups.",
		"counter", m->acked_msgs);
	counter(out, "litegate_messages_nacked_total", "Messages handed back with nack.", "counter",
		m->nacked_msgs);
	counter(out, "litegate_visibility_timeouts_total",
		"In-flight messages whose invisible_ms ran out before an ack.", "counter",
		m->visibility_timeouts);
	counter(out, "litegate_messages_dead_lettered_total", "Messages moved to a dead-letter topic.",
		"counter", m->dead_lettered);
	counter(out, "litegate_delivery_journal_records",
		"Delivery-count journal records (one per pop) that still hold a current count.", "gauge",
		m->journal_records);
	counter(out, "litegate_delivery_journal_folded_total",
		"Delivery-count journal records found at startup and folded into per-topic records.",
		"counter", m->journal_folded);
	counter(out, "litegate_ready_overflows_total",
		"Times the engine's ready set was full and a subscriber (group or stream) re-checked all "
		"its topics.", "counter", m->ready_overflows);
	counter(out, "litegate_publish_rate_limited_total",
		"Publishes refused by publish_limits (429 rate_limited), HTTP and WebSocket.", "counter",
		m->publish_rate_limited);
	counter(out, "litegate_lite_topics", "Lite topics that exist.", "gauge", es->topics);
	counter(out, "litegate_cached_topics", "Lite topics with in-memory state.", "gauge",
		es->cached_topics);
	counter(out, "litegate_log_bytes", "Bytes in retained log segments.", "gauge", es->log_bytes);
	counter(out, "litegate_log_segments", "Retained log segments.", "gauge", es->segments);
	counter(out, "litegate_engine_appended_messages_total", "Messages appended since open.", "counter",
		es->appended_msgs);
	counter(out, "litegate_engine_appended_bytes_total", "Record bytes appended since open.", "counter",
		es->appended_bytes);
	counter(out, "litegate_engine_batches_total", "Group commits since open.", "counter", es->batches);
	counter(out, "litegate_engine_fsyncs_total", "fsyncs since open.", "counter", es->fsyncs);
	counter(out, "litegate_engine_expired_topics_total", "Topics expired since open.", "counter",
		es->expired_topics);
	counter(out, "litegate_engine_duplicates_total",
		"Messages not appended because their producer key (Idempotency-Key or id) was already "
		"stored within the dedup window, since open.", "counter", es->duplicates);
	counter(out, "litegate_engine_failed", "Non-zero while storage refuses appends (sticky error).",
		"gauge", es->failed ? 1 : 0);
	hist(out, "litegate_publish_latency_seconds",
	     "From a publish request's headers to its durable acknowledgement.", &m->publish_latency);
	hist(out, "litegate_delivery_latency_seconds",
	     "From a message's store time to the write that carries it to a subscriber.",
	     &m->delivery_latency);
	hist(out, "litegate_pop_latency_seconds",
	     "From a pop request's headers to its reply (long-poll waits included).", &m->pop_latency);
}
