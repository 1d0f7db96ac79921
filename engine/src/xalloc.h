/* xalloc.h - allocation that aborts on out-of-memory (as Redis zmalloc), so callers need no
 * OOM branches. Sizes that come from outside are checked against limits before allocating. */
#ifndef LITEGATE_XALLOC_H
#define LITEGATE_XALLOC_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline void *xalloc_oom(size_t n)
{
	fprintf(stderr, "litegate: out of memory allocating %zu bytes\n", n);
	abort();
}
static inline void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	return p ? p : xalloc_oom(n);
}
static inline void *xcalloc(size_t m, size_t n)
{
	void *p = calloc(m ? m : 1, n ? n : 1);
	return p ? p : xalloc_oom(m * n);
}
static inline void *xrealloc(void *q, size_t n)
{
	void *p = realloc(q, n ? n : 1);
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
#endif
