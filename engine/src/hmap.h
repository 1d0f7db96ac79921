/*
 * hmap.h - an intrusive chained hash map. Users embed hnode first in their struct, give each
 * node its hash, and pass an equality callback to find. Not thread-safe: the owner locks.
 */
#ifndef LITEGATE_HMAP_H
#define LITEGATE_HMAP_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "xalloc.h"

typedef struct hnode {
	struct hnode *next;
	uint64_t hash;
} hnode;

typedef struct hmap {
	hnode **b;
	size_t nb; /* buckets, a power of two */
	size_t n;  /* nodes */
} hmap;

/* FNV-1a, 64-bit; good enough for names, cheap for short keys. */
static inline uint64_t hmap_hash(const void *p, size_t len, uint64_t seed)
{
	const uint8_t *s = p;
	uint64_t h = 1469598103934665603ull ^ seed;
	for (size_t i = 0; i < len; i++)
		h = (h ^ s[i]) * 1099511628211ull;
	return h ^ (h >> 29);
}

static inline void hmap_free(hmap *m)
{
	free(m->b);
	m->b = NULL;
	m->nb = m->n = 0;
}

static inline void hmap_insert(hmap *m, hnode *node)
{
	if (m->n + 1 > m->nb) {
		size_t nb = m->nb ? m->nb * 2 : 64;
		hnode **b = xcalloc(nb, sizeof *b);
		for (size_t i = 0; i < m->nb; i++)
			for (hnode *x = m->b[i], *nx; x; x = nx) {
				nx = x->next;
				x->next = b[x->hash & (nb - 1)];
				b[x->hash & (nb - 1)] = x;
			}
		free(m->b);
		m->b = b;
		m->nb = nb;
	}
	hnode **slot = &m->b[node->hash & (m->nb - 1)];
	node->next = *slot;
	*slot = node;
	m->n++;
}

typedef int (*hmap_eq_fn)(const hnode *node, const void *key);

static inline hnode *hmap_find(const hmap *m, uint64_t hash, hmap_eq_fn eq, const void *key)
{
	if (!m->nb)
		return NULL;
	for (hnode *x = m->b[hash & (m->nb - 1)]; x; x = x->next)
		if (x->hash == hash && eq(x, key))
			return x;
	return NULL;
}

static inline void hmap_remove(hmap *m, hnode *node)
{
	hnode **p = &m->b[node->hash & (m->nb - 1)];
	while (*p && *p != node)
		p = &(*p)->next;
	if (*p) {
		*p = node->next;
		m->n--;
	}
}

/* Visit every node; @fn may not modify the map except removing the node it is given. */
#define HMAP_FOREACH_SAFE(m, var, tmp)                                                             \
	for (size_t hmap_i_ = 0; hmap_i_ < (m)->nb; hmap_i_++)                                    \
		for (hnode *var = (m)->b[hmap_i_], *tmp = var ? var->next : NULL; var;            \
		     var = tmp, tmp = var ? var->next : NULL)
#endif
