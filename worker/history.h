/*
 * history.h - what the worker reads back from a session's topic (GET /v1/topics/{topic}/messages):
 * the prompt at an offset, how far a turn already got (for retries and redelivery), and the
 * earlier turns as chat context for an upstream model.
 *
 * The conversation model, shared with web-demo/app.js: `prompt` {"text"} opens a turn, `token`
 * (a JSON string) messages are the answer's pieces, `end` {"reason","prompt_offset"} closes it.
 * Other events (cancel, error, ...) carry no text.
 *
 * The context builder is pure (unit-tested); the readers do blocking HTTP on the caller's thread.
 */
#ifndef WK_HISTORY_H
#define WK_HISTORY_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"

/** @brief The text of a prompt's data: {"text":"..."}, a bare string, or else the compact JSON.
 *  @return owned string. */
char *wk_prompt_text(json_t *data);

/* ---- Context (pure) ------------------------------------------------------------------------------- */
/* Builds OpenAI chat messages from a topic's events, oldest first. */
struct wk_ctx {
	json_t *msgs;         /* [{"role","content"}], owned */
	struct wk_buf answer; /* the assistant turn being assembled from tokens */
	int in_answer;        /* tokens came since the last prompt or end */
};

void wk_ctx_init(struct wk_ctx *c);
/** @brief Feed one message of the topic (event name, data) in offset order. */
void wk_ctx_add(struct wk_ctx *c, const char *event, json_t *data);
/**
 * @brief Close the context with the prompt being answered, keep only the most recent messages
 *        whose contents fit @p max_bytes (the new prompt is always kept, and the kept part starts
 *        with a user message).
 * @return the messages array (owned: json_decref); @p c is emptied and must be freed still.
 */
json_t *wk_ctx_finish(struct wk_ctx *c, const char *prompt, size_t max_bytes);
void wk_ctx_free(struct wk_ctx *c);

/* ---- Readers -------------------------------------------------------------------------------------- */
/* How far the turn of the prompt at an offset has got in the topic. */
struct wk_progress {
	size_t tokens;  /* token messages after the prompt, up to its end */
	int ended;      /* an end message follows them */
};

/**
 * @brief Count the turn's tokens after @p prompt_off up to its `end`. The gateway hands a topic's
 *        prompts out one at a time, so turns write one after another: tokens after the prompt
 *        belong to it, except those closed by an `end` naming another "prompt_offset" (an earlier
 *        turn that was still writing when this prompt arrived). An `end` without one counts as
 *        this turn's.
 * @return WK_OK, WK_ETRANSPORT, WK_ESTATUS, WK_EPROTO, WK_ESTOPPED.
 */
int wk_history_progress(const char *gateway, const char *topic, uint64_t prompt_off,
			struct wk_stop *stop, struct wk_progress *out);

/**
 * @brief Read the message at @p off. @param[out] event, data owned, set only on WK_OK.
 * @return WK_OK, WK_ENOAPI (no topic or no message there), WK_ETRANSPORT, WK_ESTATUS, WK_EPROTO.
 */
int wk_history_get(const char *gateway, const char *topic, uint64_t off, struct wk_stop *stop,
		   char **event, json_t **data);

/**
 * @brief The chat messages for answering the prompt at @p prompt_off: every earlier turn of the
 *        topic, then @p prompt (see wk_ctx_finish for @p max_bytes).
 * @param[out] out owned array, set only on WK_OK.
 */
int wk_history_context(const char *gateway, const char *topic, uint64_t prompt_off,
		       const char *prompt, size_t max_bytes, struct wk_stop *stop, json_t **out);

#endif /* WK_HISTORY_H */
