/*
 * turn.h - one turn of a session: answer the prompt at an offset of a topic, streaming tokens to
 * the topic in one chunked NDJSON POST and closing with an `end` message
 * {"reason":"done"|"cancelled"|"error","prompt_offset":N[,"message":"..."]}.
 *
 * Inside a turn:
 *  - the model produces tokens: the demo generator (paced at tokens_per_second) or an upstream
 *    thread relaying an OpenAI-compatible stream;
 *  - a watcher thread follows the topic's SSE stream from the prompt's offset and turns a `cancel`
 *    into a stop within one poll turn;
 *  - the caller's thread publishes: curl's read callback blocks until the next token is due and
 *    hands curl exactly one NDJSON line, so each token leaves as its own chunk. Every line carries
 *    an idempotency key "<prompt offset>-<token index>" ("<prompt offset>-end" for the end) in
 *    its "id" member (issue 7, docs/api.md; "key" for gateways built before the rename).
 *    A publish that fails or times out is retried from the last token the gateway acknowledged:
 *    the reply's offsets and count say how far it got, or, when no reply came, the topic's history
 *    (tokens after the prompt). Keys make any overlap harmless: the gateway answers a known key
 *    from what it stored instead of appending it again.
 *
 * Threads: wk_turn_run() blocks its caller; wk_turn_abort() may be called from any thread.
 */
#ifndef WK_TURN_H
#define WK_TURN_H

#include <stddef.h>
#include <stdint.h>

#include "upstream.h"

struct wk_turn_cfg {
	const char *gateway;          /* base URL, no trailing slash */
	int demo;                     /* 1: the built-in demo model; 0: upstream */
	double tokens_per_second;     /* demo pacing; 0 = no pacing */
	uint64_t seed;                /* demo seed */
	struct wk_upstream_cfg upstream;
	size_t context_bytes;         /* upstream: how much earlier conversation to send */
	unsigned reply_timeout_ms;    /* a publish reply later than this after the last line: retry */
};

enum wk_turn_result {
	WK_TURN_ENDED = 0, /* the end message is in the topic (done, cancelled or error) */
	WK_TURN_ABORTED,   /* wk_turn_abort() came first: what was sent is in, no end; hand it back */
	WK_TURN_FAILED,    /* the gateway refused the publish for good (4xx) */
};

struct wk_turn;

/**
 * @brief A turn answering @p prompt (the text of the prompt message at @p prompt_off of @p topic).
 * @param cfg borrowed: must outlive the turn. Strings are copied.
 * @return owned; wk_turn_free().
 */
struct wk_turn *wk_turn_new(const struct wk_turn_cfg *cfg, const char *topic, uint64_t prompt_off,
			    const char *prompt);

/** @brief Run the turn to its end (or abort). Call once. */
enum wk_turn_result wk_turn_run(struct wk_turn *t);

/**
 * @brief Stop the turn without an end message (shutdown): generation stops, the publish stream is
 *        closed after the line in flight, and wk_turn_run() returns WK_TURN_ABORTED. Any thread.
 */
void wk_turn_abort(struct wk_turn *t);

/** @brief The end reason wk_turn_run() published ("done", "cancelled", "error"), or NULL. */
const char *wk_turn_reason(const struct wk_turn *t);

void wk_turn_free(struct wk_turn *t);

/* ---- Exposed for tests ---------------------------------------------------------------------------- */
/** @brief The member publish lines carry their idempotency key in ("id", or "key" if refused). */
const char *wk_turn_key_member(void);

/**
 * @brief One NDJSON publish line: {"event":E,"data":D,"id":ID}\n (takes ownership of @p data).
 * @param[out] out appended to.
 */
void wk_turn_line(struct wk_buf *out, const char *event, json_t *data, const char *id);

#endif /* WK_TURN_H */
