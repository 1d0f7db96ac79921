/*
 * conn_int.h - what conn.c (admission, plain-HTTP heads) and conn_tls.c (the same checks on the
 * decrypted bytes of TLS connections) share. Not for other files: their interface is conn.h.
 *
 * Service thread only, like everything in conn.h.
 */
#ifndef GW_CONN_INT_H
#define GW_CONN_INT_H

#include <stdint.h>

#include "conn.h"
#include "headcheck.h"
#include "wsmask.h"

enum conn_mode {
	MODE_FIRST = 0, /* plain: reading the first head; lws does not have the socket yet */
	MODE_REQUEST,   /* lws reads the checked request: at most `allow` more bytes */
	MODE_NEXT,      /* a transaction completed: reading the next head (plain: lws paused) */
	MODE_OPEN,      /* no request boundary known: lws reads freely, closes after the transaction */
	MODE_WS,        /* a WebSocket: lws reads freely up to the first unmasked frame */
	MODE_TLS,       /* TLS: handshake, then the first head (read by conn_tls.c as lws asks) */
	MODE_H2,        /* TLS with ALPN h2: lws's alone (no HTTP/1 heads to check) */
	MODE_CLOSING,   /* served its last request: lws reads EOF, or it is closed from `arm` */
};

struct peer;
struct gw_h2tap;

/* What a wsi's opaque user data points at: its connection (a network wsi) or, for an HTTP/2
 * stream, its match with the frame tap (conn_h2.c). Both structs start with this. */
enum conn_ref { REF_CONN = 0x434f4e4e, REF_H2STREAM = 0x48325354 };

/* An admitted connection, from accept until lws destroys its wsi (or we close it first). */
struct conn {
	enum conn_ref ref;     /* REF_CONN */
	struct conn *prev, *next; /* MODE_FIRST: the unadopted list */
	struct peer *peer;     /* its count on its client address */
	struct lws *wsi;       /* NULL until lws adopted it */
	int fd;
	enum conn_mode mode;
	uint64_t allow;        /* MODE_REQUEST: bytes of the checked request lws may still read */
	unsigned tls : 1;      /* lws reads it through OpenSSL (conn_tls.c), not recv() */
	unsigned paused : 1;   /* we paused lws's reading (RXFLOW_CONN) */
	unsigned lowat : 1;    /* SO_RCVLOWAT was raised: lower it before lws reads again */
	unsigned bad_ws : 1;   /* MODE_WS: an unmasked frame was found; lws reads nothing more */
	ev_io io;              /* plain MODE_FIRST, MODE_NEXT: the socket is readable */
	ev_timer tm;           /* head-reading modes: idle or header timeout */
	ev_timer arm;          /* MODE_NEXT, MODE_CLOSING (TLS also MODE_WS, MODE_H2): acts once lws
	                          returned */
	size_t len;            /* plain: bytes of the head seen so far (peeked, still in the socket) */
	/*
	 * Bytes taken out of the socket that lws has not read. Plain: pipelined behind an unfinished
	 * request (request_recv in conn.c). TLS: decrypted bytes from held_off on, a head being read
	 * or what follows the request lws reads now (conn_tls.c). At most max_header_bytes.
	 */
	char *held;
	size_t held_len, held_off;
	void *ssl;             /* TLS: lws's SSL object, known from its first SSL_read */
	unsigned refusal;      /* TLS over a connection limit: this status is its only reply */
	char *refusal_msg;
	struct gw_h2tap *h2;   /* MODE_H2: the client's frames, followed (conn_h2.c) */
	struct gw_wsmask ws;   /* MODE_WS: the client's frame boundaries */
};

/* Set on the service thread, the only one that may touch the connection table. */
extern __thread int conn_on_service_thread;

/* conn.c */
struct gw *conn_gw(void);
/* The connection of network wsi @p wsi, NULL if it has none (or @p wsi is an h2 stream). */
struct conn *conn_of(struct lws *wsi);
struct conn *conn_by_fd(int fd);
void conn_set_timer(struct gw *gw, struct conn *c, double secs);
void conn_stop_watchers(struct gw *gw, struct conn *c);
void conn_lws_reading(struct conn *c, int on);
void conn_kill(struct conn *c);
/* The JSON refusal of @p status, whole HTTP/1.1 response in @p out; returns its length. */
int conn_refusal(char *out, size_t outsz, unsigned status, const char *code, const char *msg);
/* Shut the write side of @p fd, drop what the client still sends for a moment, close (takes @p fd). */
void conn_linger(struct gw *gw, int fd);
/* Check the head in @p buf: 0 whole and acceptable (its length in @p head_len), 1 incomplete, -1
 * refused (@p v says how). Applies the rules that go beyond headcheck.c (event streams). */
int conn_head_verdict(struct gw *gw, const char *buf, size_t len, size_t *head_len,
		      struct gw_head_verdict *v);
/* A head of @p len bytes (>= max_header_bytes) is still incomplete: its 414/431 message. */
void conn_too_large(struct gw *gw, const char *buf, size_t len, struct gw_head_verdict *v,
		    char *msg, size_t msgsz);
/* The head of @p head_len bytes at the start of @p buf was accepted: the request's mode and allow. */
void conn_request_start(struct conn *c, const char *buf, size_t head_len);
/* MODE_WS: the client sent an unmasked frame: lws reads nothing more, ws.c closes with 1002. */
void conn_ws_unmasked(struct conn *c);

/* conn_tls.c */
/* Refuse the head being read on TLS connection @p c: the reply goes through OpenSSL and the
 * socket lingers. @p inside_lws: called inside lws's SSL_read (lws closes the connection on our
 * return, else `arm` does) rather than from a watcher (closed here). */
void conn_tls_refuse(struct gw *gw, struct conn *c, unsigned status, const char *code,
		     const char *msg, int inside_lws);
/* MODE_NEXT or MODE_WS on TLS, from `arm`: if bytes lws must see next are held already, make lws
 * read now (no socket event would tell it). May destroy @p c. */
void conn_tls_resume(struct gw *gw, struct conn *c);

/* conn_h2.c */
void conn_h2_wsi_created(struct lws *wsi);
/* Match the queued stream wsis now: any wsi is being destroyed, and the queue (that wsi too, if
 * it is in it) must be matched while every wsi in it is alive. drain() empties it, so no queued
 * pointer outlives its wsi. */
void conn_h2_settle(void);
/* After the lws context and the loop are gone: the queue's memory. */
void conn_h2_free(void);
/* An h2 stream's opaque data (REF_H2STREAM), at its wsi's destruction. */
void conn_h2_ref_destroyed(void *opaque);
/* @p c is being freed: its tap too, and its streams' refs let go of it. */
void conn_h2_conn_gone(struct conn *c);
/* The tap of @p c has END_STREAM or RST_STREAM events: hand them to http.c (from `arm`). */
void conn_h2_events(struct gw *gw, struct conn *c);

#endif /* GW_CONN_INT_H */
