/*
 * xalloc.h - allocation that aborts on out-of-memory (Redis zmalloc, h2o h2o_mem_alloc), shared by
 * the engine, the gateway and the worker, so callers need no OOM branches.
 *
 * Any thread. Sizes that come from outside (client bodies, frames, replies) are checked against
 * configured limits before anything is allocated, so a failure here means the machine is out of
 * memory, not that a peer was hostile.
 */
#ifndef LITEGATE_XALLOC_H
#define LITEGATE_XALLOC_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline void *xalloc_oom(size_t n)
{
	fprintf(stderr, "out of memory allocating %zu bytes\n", n);
	abort();
}

static inline void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	return p ? p : xalloc_oom(n);
}

static inline void *xcalloc(size_t nmemb, size_t size)
{
	void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
	return p ? p : xalloc_oom(nmemb * size);
}

static inline void *xrealloc(void *old, size_t n)
{
	void *p = realloc(old, n ? n : 1);
	return p ? p : xalloc_oom(n);
}

static inline char *xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;
	return memcpy(xmalloc(n), s, n);
}

static inline char *xstrndup(const char *s, size_t len)
{
	char *p = xmalloc(len + 1);
	memcpy(p, s, len);
	p[len] = 0;
	return p;
}
#endif /* LITEGATE_XALLOC_H */
