/*
 * json.h - a small strict JSON (RFC 8259) scanner over (buf, len) for publish bodies and WebSocket
 * frames: it validates, reports each field of an object as a raw byte span, and compacts a value.
 *
 * Pure code: no allocation except into a caller's gw_buf, no lws, so a fuzz target can call it.
 * Why not jansson here: a message's data must be stored exactly as the client wrote it, minus
 * insignificant whitespace. jansson would round-trip numbers through double (0.1 becomes
 * 0.10000000000000001) and re-encode strings; it also builds a tree per token, which the publish
 * hot path does not need. jansson still reads the config file.
 */
#ifndef GW_JSON_H
#define GW_JSON_H

#include <stddef.h>

#include "buf.h"

#define GW_JSON_DEPTH_MAX 64

enum gw_json_type {
	GW_J_NONE = 0,
	GW_J_OBJECT,
	GW_J_ARRAY,
	GW_J_STRING,
	GW_J_NUMBER,
	GW_J_TRUE,
	GW_J_FALSE,
	GW_J_NULL,
};

/* One member of an object, as spans of the input. */
struct gw_json_field {
	const char *key;         /* key bytes between the quotes, escapes not decoded */
	size_t key_len;
	enum gw_json_type type;  /* type of the value */
	const char *raw;         /* the value as written (strings include their quotes) */
	size_t raw_len;
};

/* Called once per member in order; non-zero stops the scan and is returned. */
typedef int (*gw_json_field_fn)(void *ctx, const struct gw_json_field *f);

/* Where and why a scan failed. */
struct gw_json_err {
	size_t pos;        /* byte offset of the problem */
	const char *what;  /* static text */
};

/** @brief Skip JSON whitespace from *pos. */
void gw_json_ws(const char *p, size_t len, size_t *pos);

/**
 * @brief Validate one value starting at *pos (after optional whitespace) and move *pos past it.
 * @param[out] type its type. @return 0, or -1 with @p err set.
 */
int gw_json_skip(const char *p, size_t len, size_t *pos, enum gw_json_type *type,
		 struct gw_json_err *err);

/**
 * @brief Scan an object at *pos, calling @p fn for each member; *pos ends after the '}'.
 * @return 0, -1 on a syntax error (err set), or the callback's non-zero value.
 * @note Duplicate keys are passed to the callback as they come; the callback decides.
 */
int gw_json_object(const char *p, size_t len, size_t *pos, gw_json_field_fn fn, void *ctx,
		   struct gw_json_err *err);

/** @brief Append @p raw (an already validated value) to @p out without insignificant whitespace. */
void gw_json_compact(const char *raw, size_t len, struct gw_buf *out);

/** @brief 1 if @p p[0..len) is valid UTF-8 (no overlongs, no surrogates, at most U+10FFFF). */
int gw_utf8_valid(const char *p, size_t len);

#endif /* GW_JSON_H */
