/*
 * benchlib.c - see benchlib.h.
 */
#define _GNU_SOURCE
#include "benchlib.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

const char *bench_prog = "bench";

uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS + (uint64_t)ts.tv_nsec;
}

void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "%s: ", bench_prog);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		die("out of memory");
	return q;
}

void *xcalloc(size_t n, size_t sz)
{
	void *p = calloc(n ? n : 1, sz ? sz : 1);
	if (!p)
		die("out of memory");
	return p;
}

void buf_put(char **b, size_t *len, size_t *cap, const void *p, size_t n)
{
	if (*len + n > *cap) {
		size_t nc = *cap ? *cap : 256;
		while (nc < *len + n)
			nc *= 2;
		*b = xrealloc(*b, nc);
		*cap = nc;
	}
	memcpy(*b + *len, p, n);
	*len += n;
}

/* ---- Histogram ---- */

static unsigned h_idx(uint64_t v)
{
	if (v < 2 * H_SUB)
		return (unsigned)v;
	unsigned msb = 63u - (unsigned)__builtin_clzll(v);
	unsigned shift = msb - H_SUB_BITS;
	unsigned idx = shift * H_SUB + (unsigned)(v >> shift);
	return idx < H_N ? idx : H_N - 1;
}

static uint64_t h_val(unsigned idx)
{
	if (idx < 2 * H_SUB)
		return idx;
	unsigned shift = idx / H_SUB - 1;
	uint64_t m = idx - shift * H_SUB;
	return (m << shift) + ((1ull << shift) >> 1);
}

void h_add(hist *h, uint64_t v)
{
	h->b[h_idx(v)]++;
	h->n++;
	if (v > h->max)
		h->max = v;
}

void h_merge(hist *into, const hist *from)
{
	for (unsigned i = 0; i < H_N; i++)
		into->b[i] += from->b[i];
	into->n += from->n;
	if (from->max > into->max)
		into->max = from->max;
}

uint64_t h_q(const hist *h, double p)
{
	if (!h->n)
		return 0;
	uint64_t target = (uint64_t)(p * (double)h->n + 0.999999);
	if (target < 1)
		target = 1;
	uint64_t cum = 0;
	for (unsigned i = 0; i < H_N; i++) {
		cum += h->b[i];
		if (cum >= target) {
			uint64_t v = h_val(i);
			return v > h->max ? h->max : v;
		}
	}
	return h->max;
}

/* ---- URLs ---- */

int parse_url(const char *s, url *u)
{
	char host[80];
	int port = 80;

	if (strncmp(s, "http://", 7))
		return -1;
	s += 7;
	const char *slash = strchr(s, '/');
	if (!slash)
		return -1;
	size_t hl = (size_t)(slash - s);
	if (!hl || hl >= sizeof host || strlen(slash) >= sizeof u->path)
		return -1;
	memcpy(u->hostport, s, hl);
	u->hostport[hl] = 0;
	memcpy(host, s, hl);
	host[hl] = 0;
	char *colon = strrchr(host, ':');
	if (colon) {
		*colon = 0;
		port = atoi(colon + 1);
		if (port <= 0 || port > 65535)
			return -1;
	}
	if (!strcmp(host, "localhost"))
		strcpy(host, "127.0.0.1");
	memset(&u->addr, 0, sizeof u->addr);
	u->addr.sin_family = AF_INET;
	u->addr.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &u->addr.sin_addr) != 1)
		return -1;
	if ((ntohl(u->addr.sin_addr.s_addr) >> 24) != 127)
		return -2;
	strcpy(u->path, slash);
	return 0;
}

/* ---- HTTP/1.1 responses ---- */

enum chst { CH_SIZE, CH_EXT, CH_SIZE_LF, CH_DATA, CH_DATA_END, CH_TRAILER, CH_TRAILER_SKIP };

static void parse_head(hresp *r, const char *h, size_t n)
{
	r->status = -1;
	r->bmode = HR_BM_EOF;
	r->left = 0;
	r->conn_close = 0;
	if (n < 12 || strncmp(h, "HTTP/1.", 7))
		return;
	r->status = atoi(h + 9);
	if (h[7] == '0')
		r->conn_close = 1;
	const char *end = h + n;
	const char *p = memchr(h, '\n', n);
	int chunked = 0;
	for (int guard = 0; p && p + 1 < end && guard < 200; guard++) {
		p++;
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			break;
		size_t ll = (size_t)(nl - p);
		if (ll && p[ll - 1] == '\r')
			ll--;
		if (!ll)
			break;
		const char *colon = memchr(p, ':', ll);
		if (colon) {
			size_t nl2 = (size_t)(colon - p);
			const char *v = colon + 1;
			while (v < p + ll && *v == ' ')
				v++;
			size_t vl = (size_t)(p + ll - v);
			char val[128];
			size_t k = vl < sizeof val - 1 ? vl : sizeof val - 1;
			memcpy(val, v, k);
			val[k] = 0;
			if (nl2 == 14 && !strncasecmp(p, "content-length", 14)) {
				r->bmode = HR_BM_CL;
				r->left = strtoull(val, NULL, 10);
			} else if (nl2 == 17 && !strncasecmp(p, "transfer-encoding", 17) && strcasestr(val, "chunked")) {
				chunked = 1;
			} else if (nl2 == 10 && !strncasecmp(p, "connection", 10) && strcasestr(val, "close")) {
				r->conn_close = 1;
			}
		}
		p = nl;
	}
	if (chunked) {
		r->bmode = HR_BM_CHUNKED;
		r->chst = CH_SIZE;
		r->left = 0;
	}
	if (r->status == 204 || r->status == 304 || (r->status >= 100 && r->status < 200)) {
		r->bmode = HR_BM_CL;
		r->left = 0;
	}
}

static int hr_fail(hresp *r, const char *what)
{
	r->err = what;
	return HR_ERROR;
}

static int hr_done(hresp *r)
{
	r->in_body = 0;
	return HR_DONE;
}

static int head_step(hresp *r, const char *p, size_t n, size_t *used)
{
	size_t old = r->head_len;
	buf_put(&r->head, &r->head_len, &r->head_cap, p, n < HR_MAX_HEAD ? n : HR_MAX_HEAD);
	size_t from = old > 3 ? old - 3 : 0;
	const char *e = memmem(r->head + from, r->head_len - from, "\r\n\r\n", 4);
	if (!e) {
		*used = n;
		return r->head_len >= HR_MAX_HEAD ? hr_fail(r, "response headers too long") : HR_MORE;
	}
	size_t hl = (size_t)(e - r->head) + 4;
	parse_head(r, r->head, hl);
	*used = hl - old; /* the rest belongs to the body */
	r->head_len = 0;
	r->in_body = 1;
	return HR_HEADERS;
}

static int chunk_step(hresp *r, const char *p, size_t n, size_t *used, const char **data, size_t *dlen)
{
	size_t i = 0;
	for (size_t guard = 0; i < n && guard <= 2 * n; guard++) {
		char ch = p[i];
		switch (r->chst) {
		case CH_SIZE:
			if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F')) {
				if (r->left >> 40)
					return hr_fail(r, "chunk size");
				r->left = r->left * 16 + (uint64_t)(ch <= '9' ? ch - '0' : (ch | 0x20) - 'a' + 10);
				i++;
			} else if (ch == ';' || ch == ' ' || ch == '\t') {
				r->chst = CH_EXT;
				i++;
			} else if (ch == '\r') {
				r->chst = CH_SIZE_LF;
				i++;
			} else if (ch == '\n') {
				r->chst = r->left ? CH_DATA : CH_TRAILER;
				i++;
			} else {
				return hr_fail(r, "chunk size");
			}
			break;
		case CH_EXT:
			if (ch == '\n')
				r->chst = r->left ? CH_DATA : CH_TRAILER;
			i++;
			break;
		case CH_SIZE_LF:
			if (ch != '\n')
				return hr_fail(r, "chunk size line");
			r->chst = r->left ? CH_DATA : CH_TRAILER;
			i++;
			break;
		case CH_DATA: {
			size_t take = n - i < r->left ? n - i : (size_t)r->left;
			r->left -= take;
			if (!r->left)
				r->chst = CH_DATA_END;
			*data = p + i;
			*dlen = take;
			*used = i + take;
			return HR_DATA;
		}
		case CH_DATA_END:
			if (ch == '\r') {
				i++;
			} else if (ch == '\n') {
				r->chst = CH_SIZE;
				r->left = 0;
				i++;
			} else {
				return hr_fail(r, "chunk end");
			}
			break;
		case CH_TRAILER:
			if (ch == '\r') {
				i++;
			} else if (ch == '\n') {
				*used = i + 1;
				return hr_done(r);
			} else {
				r->chst = CH_TRAILER_SKIP;
			}
			break;
		case CH_TRAILER_SKIP:
			if (ch == '\n')
				r->chst = CH_TRAILER;
			i++;
			break;
		}
	}
	*used = i;
	return HR_MORE;
}

int hr_step(hresp *r, const char *p, size_t n, size_t *used, const char **data, size_t *dlen)
{
	*used = 0;
	*data = NULL;
	*dlen = 0;
	if (!r->in_body)
		return n ? head_step(r, p, n, used) : HR_MORE;
	switch (r->bmode) {
	case HR_BM_CHUNKED:
		return chunk_step(r, p, n, used, data, dlen);
	case HR_BM_CL: {
		if (!r->left)
			return hr_done(r);
		size_t take = n < r->left ? n : (size_t)r->left;
		if (!take)
			return HR_MORE;
		r->left -= take;
		*data = p;
		*dlen = *used = take;
		return HR_DATA;
	}
	default:
		if (!n)
			return HR_MORE;
		*data = p;
		*dlen = *used = n;
		return HR_DATA;
	}
}

void hr_reset(hresp *r)
{
	r->in_body = 0;
	r->bmode = HR_BM_NONE;
	r->head_len = 0;
	r->left = 0;
	r->err = NULL;
}

void hr_release(hresp *r)
{
	r->head_len = 0;
	free(r->head);
	r->head = NULL;
	r->head_cap = 0;
}

/* ---- Blocking client ---- */

int hc_open(hclient *c, const url *u)
{
	int one = 1;
	if (u)
		c->u = *u;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(c->fd, (const struct sockaddr *)&c->u.addr, sizeof c->u.addr)) {
		int e = errno;
		close(c->fd);
		c->fd = -1;
		errno = e;
		return -1;
	}
	c->in_off = c->in_len = 0;
	hr_reset(&c->r);
	return 0;
}

void hc_close(hclient *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

void hc_free(hclient *c)
{
	hc_close(c);
	free(c->in);
	free(c->body);
	free(c->req);
	hr_release(&c->r);
	c->in = c->body = c->req = NULL;
	c->in_cap = c->body_cap = c->req_cap = 0;
}

static int send_all(int fd, struct iovec *iov, int n)
{
	while (n) {
		ssize_t k = writev(fd, iov, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		while (n && (size_t)k >= iov->iov_len) {
			k -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n) {
			iov->iov_base = (char *)iov->iov_base + k;
			iov->iov_len -= (size_t)k;
		}
	}
	return 0;
}

/* Read and parse until the response is complete. 0, or -1 (*got says whether any byte came). */
static int read_reply(hclient *c, int *got)
{
	c->body_len = 0;
	*got = 0;
	for (;;) {
		const char *d;
		size_t used, dl;
		int ev = hr_step(&c->r, c->in + c->in_off, c->in_len - c->in_off, &used, &d, &dl);
		c->in_off += used;
		if (ev == HR_DATA) {
			buf_put(&c->body, &c->body_len, &c->body_cap, d, dl);
			continue;
		}
		if (ev == HR_HEADERS)
			continue;
		if (ev == HR_DONE)
			return 0;
		if (ev == HR_ERROR)
			return -1;
		/* HR_MORE */
		if (c->in_cap < 65536) {
			c->in = xrealloc(c->in, 65536);
			c->in_cap = 65536;
		}
		c->in_off = c->in_len = 0;
		ssize_t k = recv(c->fd, c->in, c->in_cap, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			if (c->r.in_body && c->r.bmode == HR_BM_EOF)
				return 0; /* a body delimited by the close */
			return -1;
		}
		*got = 1;
		c->in_len = (size_t)k;
	}
}

static int send_request(hclient *c, const char *method, const char *path, const char *ctype,
			const char *body, size_t len)
{
	if (c->fd < 0 && hc_open(c, NULL))
		return -1;
	if (c->req_cap < 1024 + strlen(path)) {
		c->req_cap = 1024 + strlen(path);
		c->req = xrealloc(c->req, c->req_cap);
	}
	int hn = snprintf(c->req, c->req_cap, "%s %s HTTP/1.1\r\nHost: %s\r\n%s%s%sContent-Length: %zu\r\n\r\n",
			  method, path, c->u.hostport, ctype ? "Content-Type: " : "", ctype ? ctype : "",
			  ctype ? "\r\n" : "", len);
	struct iovec iov[2] = {{c->req, (size_t)hn}, {(void *)body, len}};
	hr_reset(&c->r);
	c->in_off = c->in_len = 0;
	return send_all(c->fd, iov, len ? 2 : 1);
}

static int finish_reply(hclient *c)
{
	buf_put(&c->body, &c->body_len, &c->body_cap, "", 1);
	c->body_len--;
	if (c->r.conn_close)
		hc_close(c);
	return c->r.status;
}

int hc_call(hclient *c, const char *method, const char *path, const char *ctype, const char *body,
	    size_t len)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		int got = 0;
		if (send_request(c, method, path, ctype, body, len) || read_reply(c, &got)) {
			hc_close(c);
			if (got)
				return -1;
			c->reconnects++;
			continue; /* the server closed an idle keep-alive connection: once more */
		}
		return finish_reply(c);
	}
	return -1;
}

int hc_send(hclient *c, const char *method, const char *path, const char *ctype, const char *body,
	    size_t len)
{
	if (send_request(c, method, path, ctype, body, len)) {
		hc_close(c);
		return -1;
	}
	return 0;
}

int hc_recv(hclient *c)
{
	int got;
	if (c->fd < 0 || read_reply(c, &got)) {
		hc_close(c);
		return -1;
	}
	return finish_reply(c);
}

/* ---- /proc ---- */

void take_sample(sample *sm, int pid)
{
	struct rusage ru;
	memset(sm, 0, sizeof *sm);
	sm->t = now_ns();
	getrusage(RUSAGE_SELF, &ru);
	sm->self_us = (uint64_t)ru.ru_utime.tv_sec * 1000000u + (uint64_t)ru.ru_utime.tv_usec +
		      (uint64_t)ru.ru_stime.tv_sec * 1000000u + (uint64_t)ru.ru_stime.tv_usec;
	if (pid <= 0)
		return;
	char path[64], buf[2048];
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	if (!p)
		return;
	p += 2; /* field 3, the state; utime and stime are fields 14 and 15 */
	for (int i = 0; i < 11 && p; i++) {
		p = strchr(p, ' ');
		if (p)
			p++;
	}
	unsigned long ut, stt;
	if (!p || sscanf(p, "%lu %lu", &ut, &stt) != 2)
		return;
	sm->ticks = ut + stt;
	snprintf(path, sizeof path, "/proc/%d/status", pid);
	f = fopen(path, "r");
	char line[256];
	for (int i = 0; f && i < 100 && fgets(line, sizeof line, f); i++)
		if (sscanf(line, "VmRSS: %ld kB", &sm->rss_kb) == 1)
			break;
	if (f)
		fclose(f);
	sm->ok = 1;
}

double cpu_pct(const sample *a, const sample *b)
{
	double dt = (double)(b->t - a->t) / 1e9;
	if (!a->ok || !b->ok || dt <= 0)
		return -1;
	return (double)(b->ticks - a->ticks) / (double)sysconf(_SC_CLK_TCK) / dt * 100.0;
}

double self_cpu_pct(const sample *a, const sample *b)
{
	double dt = (double)(b->t - a->t) / 1e9;
	return dt > 0 ? (double)(b->self_us - a->self_us) / 1e6 / dt * 100.0 : 0;
}

void loadavg(char *out, size_t cap)
{
	FILE *f = fopen("/proc/loadavg", "r");
	out[0] = 0;
	if (f) {
		if (fgets(out, (int)cap, f))
			out[strcspn(out, "\n")] = 0;
		fclose(f);
	}
}
