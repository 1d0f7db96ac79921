/*
 * wsproto.h - the WebSocket client frame grammar: one JSON text message -> one operation.
 *
 * Pure code over (buf, len), so a libFuzzer target can call it; ws.c calls it on the service thread
 * for every reassembled client message. Frames:
 *   {"op":"subscribe","topic":"chatbot/s1","from":12|"tail","group":"g"}   ("from" omitted: first
 *    retained, or with "group" the position stored for that group; see progress.h)
 *   {"op":"unsubscribe","topic":"chatbot/s1"}
 *   {"op":"publish","topic":"chatbot/s1","event":"token","data":<any>,"id":K,"expected_offset":N,
 *    "priority":P,"req":7}   ("id": a producer idempotency key, "key" accepted as its earlier name;
 *               N: append only if the topic's next offset is N; P: 0..9, see pubparse.h)
 *   {"op":"ping"}
 * Every op may carry "req" (a number or a string of up to 64 bytes), echoed in its reply.
 */
#ifndef GW_WSPROTO_H
#define GW_WSPROTO_H

#include <stddef.h>
#include <stdint.h>

#include <engine.h>

#include "buf.h"
#include "pubparse.h"

#define GW_WS_REQ_MAX 64
#define GW_WS_GROUP_MAX 64 /* GW_GROUP_NAME_MAX (groups.h) */

enum gw_ws_opcode {
	GW_WS_OP_NONE = 0,
	GW_WS_OP_SUBSCRIBE,
	GW_WS_OP_UNSUBSCRIBE,
	GW_WS_OP_PUBLISH,
	GW_WS_OP_PING,
};

struct gw_ws_op {
	enum gw_ws_opcode op;
	char topic[ENG_TOPIC_MAX + 1]; /* "" when absent */
	int has_from;                  /* "from" given */
	int from_tail;                 /* "from":"tail" */
	uint64_t from;
	char group[GW_WS_GROUP_MAX + 1]; /* subscribe: "group", "" when absent */
	char req[GW_WS_REQ_MAX + 1];   /* raw JSON of "req" (e.g. 7 or "a"), "" when absent */
	struct gw_msg msg;             /* publish: event, key (id), expected offset, and data at
					  msg.off/len in the data buffer */
};

/**
 * @brief Parse one client message.
 * @param[out] data publish data is compacted into this buffer (at op->msg.off).
 * @return 0, or -1 with @p e set; op->req is filled whenever the frame was a JSON object with a
 *         valid "req", so even an error reply can name the request.
 */
int gw_ws_parse(const char *p, size_t len, struct gw_ws_op *op, struct gw_buf *data,
		struct gw_perr *e);

#endif /* GW_WSPROTO_H */
