/*
 * pubparse.h - publish bodies to messages: application/json (one message or an array), one
 * application/x-ndjson line, or a text/plain body.
 *
 * Pure code over (buf, len), so a libFuzzer target can call it; the service thread uses it from
 * publish.c. A message is {"event":E, "data":D, "id":K, "expected_offset":N, "priority":P}: event optional
 * ("message"), data any JSON (stored compacted, byte for byte as written otherwise; absent = null),
 * id an optional producer idempotency key ("key" is accepted as its earlier name), expected_offset
 * an optional condition (append only if the topic's next offset is N; publish.c decides where it
 * may appear), priority an optional integer 0..9 (9 most urgent: consumer groups serve it first).
 * Unknown or repeated members are refused, so a typo is an error, not lost data.
 */
#ifndef GW_PUBPARSE_H
#define GW_PUBPARSE_H

#include <stddef.h>
#include <stdint.h>

#include <engine.h>

#include "buf.h"

struct gw_msg {
	char event[ENG_EVENT_MAX + 1]; /* NUL-terminated, valid event name */
	char key[ENG_KEY_MAX + 1];     /* its "id": NUL-terminated; "" when the message has none */
	int has_expected;              /* "expected_offset" given */
	uint64_t expected;
	int has_priority;              /* "priority" given (or the request's default applied) */
	uint8_t priority;              /* 0..9 */
	size_t off;                    /* its data: bytes off..off+len of the batch's arena */
	size_t len;
};

/* Messages parsed so far, their data packed in one arena so a batch is two allocations. */
struct gw_batch {
	struct gw_msg *msgs;
	size_t n, cap;
	struct gw_buf arena;
};

/* Why a body was refused: a stable code for the API's error object and a human message. */
struct gw_perr {
	const char *code;  /* "bad_json", "bad_message", "bad_event", "too_many_messages", "bad_text" */
	char message[192];
};

/** @brief Fill @p e with @p code and a formatted message. @return -1, for `return gw_perr_set()`. */
int gw_perr_set(struct gw_perr *e, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/** @brief A message priority as written (a JSON number or a query value): one digit 0..9 (or -0).
 *  @return 0 and *out, or -1. */
int gw_parse_priority(const char *s, size_t len, uint8_t *out);

void gw_batch_init(struct gw_batch *b);
void gw_batch_reset(struct gw_batch *b);
void gw_batch_free(struct gw_batch *b);

/** @brief Fill @p out[0..b->n) with views into @p b for eng_append (valid while b is unchanged). */
void gw_batch_views(const struct gw_batch *b, eng_msg_in *out);

/**
 * @brief Parse an application/json body: one message object or a non-empty array of them.
 * @param max_msgs refuse arrays longer than this (code "too_many_messages").
 * @return 0 (messages appended to @p b), or -1 with @p e set and @p b unchanged.
 */
int gw_pub_parse_json(const char *p, size_t len, size_t max_msgs, struct gw_batch *b,
		      struct gw_perr *e);

/**
 * @brief Parse one NDJSON line (without its '\n'; a trailing '\r' is allowed). A blank line adds
 *        nothing and is not an error.
 * @return 0, or -1 with @p e set and @p b unchanged.
 */
int gw_pub_parse_line(const char *p, size_t len, struct gw_batch *b, struct gw_perr *e);

/** @brief A text/plain body: one message whose data is the body as a JSON string (UTF-8 required). */
int gw_pub_parse_text(const char *p, size_t len, struct gw_batch *b, struct gw_perr *e);

#endif /* GW_PUBPARSE_H */
