/*
 * http.h - what every transfer of the worker shares: growable buffers, a stop handle that aborts a
 * transfer from another thread at once, and a small request/reply helper over libcurl.
 *
 * Threads: each thread uses its own CURL handles (libcurl's rule). wk_stop_fire() is the only call
 * meant to cross threads: it sets a flag and wakes the transfer's multi handle with
 * curl_multi_wakeup(), which libcurl documents as thread-safe, so a cancelled or shutting-down
 * transfer ends within one poll turn instead of at the next keepalive or timeout.
 */
#ifndef WK_HTTP_H
#define WK_HTTP_H

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* ---- Codes ---------------------------------------------------------------------------------------- */
#define WK_OK 0
#define WK_ESTOPPED (-1)   /* the transfer was stopped on purpose (wk_stop_fire) */
#define WK_ETRANSPORT (-2) /* could not connect, the connection dropped, or a timeout */
#define WK_ESTATUS (-3)    /* an HTTP status the caller did not expect */
#define WK_EPROTO (-4)     /* a reply that is not what the API documents */
#define WK_ENOAPI (-5)     /* 404/405 on an endpoint: the gateway does not have this API */

/** @brief A short name for a WK_E* code. */
const char *wk_strerror(int rc);

/** @brief CLOCK_MONOTONIC in nanoseconds. */
uint64_t wk_mono_ns(void);

/* ---- Buffers -------------------------------------------------------------------------------------- */
/* A growable byte buffer, always NUL-terminated once anything was appended (p is NULL before). */
struct wk_buf {
	char *p;
	size_t len;
	size_t cap;
};

void wk_buf_append(struct wk_buf *b, const void *p, size_t n);
void wk_buf_puts(struct wk_buf *b, const char *s);
void wk_buf_printf(struct wk_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** @brief Empty the buffer, keeping its memory. */
void wk_buf_reset(struct wk_buf *b);
/** @brief Release the memory; the buffer is empty and reusable afterwards. */
void wk_buf_free(struct wk_buf *b);

/* ---- Stop handles --------------------------------------------------------------------------------- */
struct wk_stop {
	pthread_mutex_t mu; /* guards multi */
	atomic_int fired;   /* set once by wk_stop_fire, read by the transfer */
	CURLM *multi;       /* the transfer running under this stop, to wake; NULL between transfers */
};

void wk_stop_init(struct wk_stop *s);
void wk_stop_destroy(struct wk_stop *s);
/** @brief Stop the transfer running under @p s now, and every later one. Any thread. */
void wk_stop_fire(struct wk_stop *s);
/** @brief 1 once wk_stop_fire() was called. Accepts NULL (never fired). */
int wk_stop_fired(struct wk_stop *s);

/* ---- Transfers ------------------------------------------------------------------------------------ */
/** @brief curl_global_init; call once from main before any thread starts. @return 0 or -1. */
int wk_http_global_init(void);
void wk_http_global_cleanup(void);

/**
 * @brief A new easy handle for @p url with the options every transfer wants: no signals (threads),
 *        TCP keepalive, a 10 s connect timeout, no proxy from the environment for loopback.
 * @return owned; release with curl_easy_cleanup().
 */
CURL *wk_http_easy(const char *url);

/**
 * @brief Run @p easy to completion on a private multi handle, waking up when @p stop fires.
 * @param stop may be NULL (no stop).
 * @return the transfer's CURLcode, or CURLE_ABORTED_BY_CALLBACK if @p stop fired.
 */
CURLcode wk_http_perform(CURL *easy, struct wk_stop *stop);

/* A whole reply, for the request/reply calls of the API (not streams). */
struct wk_reply {
	long status;          /* HTTP status; 0 if no reply arrived */
	struct wk_buf body;   /* the body (capped at WK_REPLY_MAX; longer replies are refused) */
};

#define WK_REPLY_MAX (64u << 20)

/**
 * @brief One request to the gateway (with its token, gwtoken.h) with an optional JSON body, reply
 *        read whole.
 * @param body NUL-terminated JSON, or NULL for no body.
 * @param timeout_ms whole-transfer limit (0 = none).
 * @param[out] out filled whatever happens; release out->body with wk_buf_free().
 * @return WK_OK when a reply arrived (any status: check out->status), WK_ETRANSPORT, WK_ESTOPPED.
 */
int wk_http_request(const char *method, const char *url, const char *body, long timeout_ms,
		    struct wk_stop *stop, struct wk_reply *out);

/**
 * @brief Sleep up to @p ms, returning early (1) when @p stop fires. Polls every 20 ms, so use it
 *        for backoffs, not for pacing.
 * @return 0 after the full sleep, 1 if stopped.
 */
int wk_sleep_ms(unsigned ms, struct wk_stop *stop);

#endif /* WK_HTTP_H */
