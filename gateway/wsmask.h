/*
 * wsmask.h - follows the frame boundaries of a client's WebSocket byte stream to find an unmasked
 * frame.
 *
 * RFC 6455 5.1: a client masks every frame it sends, and a server must close the connection when a
 * frame is not masked (close code 1002). lws 4.1.6 takes unmasked client frames as they are (its
 * rx state machine records the mask bit and never refuses on it, and has no option to), so conn.c
 * runs this over the bytes lws reads from a plain WebSocket and stops before the first unmasked
 * frame. It only reads frame headers (first two bytes, extended length, masking key) and skips
 * payloads by their declared length: a few instructions per frame, no copy.
 *
 * Pure code, no lws: any thread (one tracker per connection), and a fuzz target can drive it.
 */
#ifndef GW_WSMASK_H
#define GW_WSMASK_H

#include <stddef.h>
#include <stdint.h>

struct gw_wsmask {
	uint64_t payload_left; /* payload bytes of the current frame not seen yet */
	uint64_t length;       /* the declared payload length of the header being read */
	uint8_t hdr_have;      /* header bytes of that frame seen so far (0: at a frame boundary) */
	uint8_t hdr_need;      /* its header's full size once its second byte is known */
	uint8_t unmasked;      /* an unmasked frame was found: stays so */
};

/** @brief A tracker at the start of a stream (right after the upgrade's head). */
void gw_wsmask_init(struct gw_wsmask *t);

/**
 * @brief Follow @p len more bytes of the stream.
 * @return how many of them precede the first unmasked frame's second header byte (the one that
 *         carries the mask bit): @p len when every frame so far is masked. Once a frame was found
 *         unmasked, every later call returns 0.
 */
size_t gw_wsmask_feed(struct gw_wsmask *t, const uint8_t *buf, size_t len);

#endif /* GW_WSMASK_H */
