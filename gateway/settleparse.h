/*
 * settleparse.h - the fast path for ack and nack bodies: {"receipts":["...", ...]} as workers send
 * it, read without building a JSON tree.
 *
 * Pure code over (buf, len), so a libFuzzer target can call it; consume.c uses it on the service
 * thread. Why: jansson parsing was 12% of the service thread under the pull benchmark (an ack of
 * 32 receipts is 33 allocations in jansson, and a tree walk), and receipts are plain ASCII.
 *
 * The fast path only says yes to the common shape and never refuses anything: for any other body
 * (escapes or non-ASCII in a receipt, another member such as a nack's "delay_ms", an empty or
 * oversized array, a syntax error) it returns 0 and the caller parses the body in full with
 * jansson, which accepts or refuses it with the messages it always gave. So a body is refused
 * exactly when it was before, and one it recognises is one jansson reads to the same receipts
 * (fuzz_settleparse checks both against jansson).
 */
#ifndef GW_SETTLEPARSE_H
#define GW_SETTLEPARSE_H

#include <stddef.h>

#include "buf.h"

/* A receipt as bytes of the body (no escapes in it: these bytes are the decoded string). */
struct gw_span {
	const char *p;
	size_t len;
};

/**
 * @brief Recognise exactly {"receipts":[S, ...]} (JSON whitespace between tokens) with 1 to @p max
 *        strings S of printable ASCII (0x20..0x7e) other than '"' and '\\'.
 * @param[out] out the receipts, appended as struct gw_span pointing into @p p (only when
 *        recognised); a buffer without headroom (gw_buf_init(out, 0)), so they are aligned.
 * @return how many receipts were appended, or 0 when the body has any other shape (nothing
 *         appended): parse it in full instead.
 */
size_t gw_settle_scan(const char *p, size_t len, size_t max, struct gw_buf *out);

#endif /* GW_SETTLEPARSE_H */
