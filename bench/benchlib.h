/*
 * benchlib.h - what the bench programs (loadgen, pop_bench) share: a latency histogram, loopback
 * URLs, an incremental HTTP/1.1 response parser (Content-Length, chunked, until-close), a blocking
 * keep-alive client on top of it, and /proc sampling of a process's CPU and RSS.
 *
 * Plain libc. The parser and the client own only their own buffers; a client is used by one thread
 * at a time. die() ends the program (exit 2) after printing "<bench_prog>: message".
 */
#ifndef BENCH_BENCHLIB_H
#define BENCH_BENCHLIB_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#define NS 1000000000ull
#define MS 1000000ull

extern const char *bench_prog; /* the program's name for die() (set it in main) */

uint64_t now_ns(void); /* CLOCK_MONOTONIC */
void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void *xrealloc(void *p, size_t n);
void *xcalloc(size_t n, size_t sz);
/* Append n bytes to the growable buffer (*b, *len, *cap). */
void buf_put(char **b, size_t *len, size_t *cap, const void *p, size_t n);

/* ---- Latency histogram: log-linear, 64 sub-buckets per power of two (< 1.6% error), in ns ---- */

#define H_SUB_BITS 6
#define H_SUB (1u << H_SUB_BITS)
#define H_N (H_SUB * 60)

typedef struct hist {
	uint64_t n, max;
	uint64_t b[H_N];
} hist;

void h_add(hist *h, uint64_t v);
void h_merge(hist *into, const hist *from);
/* The value at quantile p (0..1), ns; 0 when empty. */
uint64_t h_q(const hist *h, double p);

/* ---- URLs (loopback only) ---- */

typedef struct url {
	struct sockaddr_in addr;
	char hostport[80];
	char path[512];
} url;

/* http://127.x.x.x[:port]/path (or localhost). 0; -1 malformed; -2 not a loopback address. */
int parse_url(const char *s, url *u);

/* ---- HTTP/1.1 response parser ---- */

enum hr_event {
	HR_MORE,    /* every byte given was consumed: feed more */
	HR_HEADERS, /* the head is parsed: status, bmode, conn_close are set */
	HR_DATA,    /* body bytes (de-chunked) at *data, *dlen */
	HR_DONE,    /* the response is complete; the parser waits for the next head */
	HR_ERROR,   /* malformed (r->err says what); reset before reuse */
};
enum hr_bmode { HR_BM_NONE, HR_BM_CL, HR_BM_CHUNKED, HR_BM_EOF /* until the connection closes */ };

#define HR_MAX_HEAD 16384

typedef struct hresp {
	int status;                  /* -1: not an HTTP/1.x status line */
	uint8_t in_body, bmode, chst, conn_close;
	uint64_t left;               /* body bytes left (CL) or left in this chunk */
	char *head;                  /* the head so far */
	size_t head_len, head_cap;
	const char *err;             /* HR_ERROR: what */
} hresp;

/*
 * Parse from p[0..n) up to the next event; *used says how many bytes were consumed. Call again
 * with the rest (even with none left: a Content-Length body may be complete) until HR_MORE. A
 * zeroed hresp waits for a head.
 */
int hr_step(hresp *r, const char *p, size_t n, size_t *used, const char **data, size_t *dlen);
void hr_reset(hresp *r);   /* wait for a new head (keeps the buffer) */
void hr_release(hresp *r); /* free the head buffer (between heads, or once one is parsed) */

/* ---- Blocking keep-alive client ---- */

typedef struct hclient {
	int fd;
	url u;
	hresp r;
	char *in;                    /* bytes received and not parsed yet */
	size_t in_off, in_len, in_cap;
	char *body;                  /* the last response's body */
	size_t body_len, body_cap;
	char *req;                   /* request head scratch */
	size_t req_cap;
	uint64_t reconnects;
} hclient;

/* Connect (TCP_NODELAY). 0 or -1 (errno). */
int hc_open(hclient *c, const url *u);
void hc_close(hclient *c);
void hc_free(hclient *c); /* close, and free its buffers */
/*
 * One request, one response: @p method @p path with @p body (ctype may be NULL when len is 0);
 * reconnects once if the kept-alive connection was closed before any reply byte. @return the
 * status, body in c->body (NUL-terminated); -1 on a transport or protocol error.
 */
int hc_call(hclient *c, const char *method, const char *path, const char *ctype, const char *body,
	    size_t len);
/* hc_call in two halves, to overlap a request with work elsewhere (no retry): send (0 or -1), then
 * receive (the status, or -1). */
int hc_send(hclient *c, const char *method, const char *path, const char *ctype, const char *body,
	    size_t len);
int hc_recv(hclient *c);

/* ---- /proc sampling of a server, and of ourselves ---- */

typedef struct sample {
	uint64_t t, ticks, self_us;
	long rss_kb;
	int ok;
} sample;

/* Our own CPU time, and pid's (all threads) and its VmRSS when pid > 0. */
void take_sample(sample *sm, int pid);
double cpu_pct(const sample *a, const sample *b);      /* pid's CPU, % of one core; -1 unknown */
double self_cpu_pct(const sample *a, const sample *b); /* ours */
/* /proc/loadavg's line, without the newline. */
void loadavg(char *out, size_t cap);

#endif /* BENCH_BENCHLIB_H */
