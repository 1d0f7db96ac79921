/*
 * upstream.h - a streaming client of an OpenAI-compatible POST /v1/chat/completions (llama.cpp's
 * server, vLLM, Ollama, OpenAI): sends the chat messages with "stream": true and hands each
 * `data:` chunk's choices[0].delta.content to a callback until `data: [DONE]`.
 *
 * Blocking, on the caller's thread; its own curl handle; stopped from another thread through
 * the wk_stop (a user's cancel).
 */
#ifndef WK_UPSTREAM_H
#define WK_UPSTREAM_H

#include <jansson.h>
#include <stddef.h>

#include "http.h"

struct wk_upstream_cfg {
	const char *url;     /* base (http://host:port), .../v1, or the full .../chat/completions */
	const char *model;   /* NULL: the request names no model (the server's default) */
	const char *api_key; /* NULL: no Authorization header */
};

/** @return 0 to go on, nonzero to stop reading the stream. */
typedef int (*wk_delta_fn)(void *ctx, const char *piece, size_t len);

/** @brief The endpoint @p url names (see wk_upstream_cfg.url). @return owned string. */
char *wk_upstream_endpoint(const char *url);

/**
 * @brief Stream one completion for @p messages (borrowed), calling @p fn for every non-empty delta.
 * @param[out] err a reason on failure ("HTTP 500: ...", "connection refused", ...), NUL-terminated.
 * @return WK_OK at [DONE] (or a clean end of the stream), WK_ESTOPPED, WK_ESTATUS (non-200),
 *         WK_ETRANSPORT, WK_EPROTO (an error object or undecodable chunk in the stream).
 */
int wk_upstream_stream(const struct wk_upstream_cfg *cfg, json_t *messages, wk_delta_fn fn,
		       void *ctx, struct wk_stop *stop, char *err, size_t errsz);

#endif /* WK_UPSTREAM_H */
