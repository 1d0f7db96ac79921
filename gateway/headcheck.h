/*
 * headcheck.h - a strict look at an HTTP/1.1 request head before libwebsockets parses it.
 *
 * lws 4.1.6 is lenient or silent with malformed heads: a control byte, a folded line or a non-ASCII
 * byte in a header makes it wait until its timeout, a NUL or too many fields closes the connection
 * without a word, an unknown method gets an HTML 403, a space before a colon or a second Host is
 * accepted. conn.c runs this check on every request head of a plain-HTTP connection, the first and
 * each kept-alive one (it has the whole head then), answers what it refuses with a JSON error
 * itself, and lets lws read only the bytes of the request it checked (gw_head_body() says how many).
 *
 * Pure code over (buf, len), no lws: any thread, and a fuzz target can drive it.
 */
#ifndef GW_HEADCHECK_H
#define GW_HEADCHECK_H

#include <stddef.h>

#define GW_HEAD_MAX_FIELDS 64 /* header fields; lws 4.1.6 has about 95 slots for fields and query */
#define GW_HEAD_MAX_PARAMS 24 /* query parameters, which share those slots */

/* Why a head was refused. */
struct gw_head_verdict {
	unsigned status;      /* 400, 405 or 431 */
	const char *code;     /* "bad_request", "method_not_allowed", "headers_too_large" */
	const char *message;  /* static text, no quotes */
};

/**
 * @brief Check a request head: the request line "METHOD SP /target SP HTTP/1.x", then fields
 *        "name: value" (token names, no space before the colon, ASCII values without control
 *        bytes but HTAB, no folded lines), at most one Host, Content-Length and Transfer-Encoding,
 *        at most GW_HEAD_MAX_FIELDS fields and GW_HEAD_MAX_PARAMS query parameters, a target whose
 *        percent escapes are well formed and never %00. Lines end in CRLF or LF; an empty line
 *        before the request line is refused (lws 4.1.6 cannot take it).
 * @param buf the bytes from the start of the connection; they must hold the head's blank line.
 * @param[out] head_len on 0: the head's bytes, blank line included (what follows is body or a
 *        pipelined request).
 * @param[out] v set when refused.
 * @return 0 when lws may have it, -1 when refused, 1 when @p buf holds no complete head.
 */
int gw_head_check(const char *buf, size_t len, size_t *head_len, struct gw_head_verdict *v);

/**
 * @brief Is this head (accepted by gw_head_check) a GET of an SSE route (".../events")? lws 4.1.6
 *        spins on bytes pipelined behind such a request, so conn.c refuses them.
 */
int gw_head_is_event_stream(const char *buf, size_t len);

/* How the bytes after an accepted head are framed, as lws 4.1.6 will read them. */
enum gw_head_body_kind {
	GW_BODY_NONE = 0,  /* nothing: the next bytes are the next request */
	GW_BODY_LENGTH,    /* Content-Length: exactly `length` bytes, then the next request */
	GW_BODY_UPGRADE,   /* Upgrade: websocket: what follows is WebSocket frames */
	GW_BODY_UNBOUNDED, /* Transfer-Encoding, another Upgrade (h2c), or a Content-Length that is
			      not one decimal number: no request boundary is known after this head */
};

struct gw_head_body {
	enum gw_head_body_kind kind;
	unsigned long long length; /* GW_BODY_LENGTH */
};

/**
 * @brief Where the request whose head gw_head_check() accepted ends: its body framing.
 * @param buf, head_len the accepted head (head_len from gw_head_check).
 */
void gw_head_body(const char *buf, size_t head_len, struct gw_head_body *b);

#endif /* GW_HEADCHECK_H */
