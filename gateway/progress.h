/*
 * progress.h - a stream's position stored for a named group (issue 4): SSE ?group=g and WebSocket
 * subscribe {"group":"g"}. With no explicit start point the stream resumes at the group's stored
 * offset in its topic; as it writes, its position (the next offset it would send) is stored for the
 * group, so the next connection naming that group resumes there.
 *
 * Service thread. Stores are eng_offset_commit() calls, synced RocksDB writes: they run on the
 * helper thread (bg.c), at most one in flight and one a second per stream, plus one when the stream
 * ends, so a stream never makes the loop wait on disk. What a crash can lose is the last second of
 * progress: the next connection then repeats those messages (the stream is at-least-once).
 *
 * A pull group (PUT /v1/groups/{g}) owns its offsets; a stream may not name one.
 */
#ifndef GW_PROGRESS_H
#define GW_PROGRESS_H

#include <stdint.h>

#include "gw.h"

struct gw_progress;

/**
 * @brief Read ?group=<name> from the request (before lws_http_mark_sse detaches the headers).
 * @param[out] group NUL-terminated, at least GW_GROUP_NAME_MAX + 1 bytes.
 * @return 1 present and valid, 0 absent, -1 malformed (@p e set).
 */
int gw_progress_param(struct lws *wsi, char *group, struct gw_error *e);

/**
 * @brief Start storing @p topic's progress for @p group.
 * @param[out] out the state (owned: gw_progress_end); @param[out] stored the group's stored offset,
 *        valid when *has_stored is 1.
 * @return 0, or -1 with @p e set (a pull group's name, a storage error).
 */
int gw_progress_begin(struct gw *gw, const char *group, const char *topic, struct gw_progress **out,
		      uint64_t *stored, int *has_stored, struct gw_error *e);

/** @brief The stream wrote up to @p next (the next offset it would send). Accepts NULL. */
void gw_progress_note(struct gw_progress *p, uint64_t next);

/** @brief The stream ends: store its last position and free @p p. Accepts NULL. */
void gw_progress_end(struct gw_progress *p);

#endif /* GW_PROGRESS_H */
