/*
 * pubrate.c - publish rate limits per parent and per client address (see pubrate.h). Service thread.
 */
#include "pubrate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "xalloc.h"

#define SWEEP_EVERY 4096                /* publishes between sweeps of the client table */

struct bucket {
	double msgs, bytes;  /* tokens now */
	uint64_t at_us;      /* when they were last topped up */
};

struct client {
	struct client *next;
	struct bucket b;
	uint8_t addr[16]; /* gw_conn_client() */
};

static struct {
	struct bucket *parents;   /* per publish_limits.per_parent entry */
	struct client **tab;      /* client address -> bucket */
	size_t cap, count;
	unsigned calls;
} lim;

static double
burst(double rate, double b)
{
	return b > 0 ? b : (rate < 1 ? 1 : rate);
}

static void
refill(struct bucket *k, const struct gw_rate_conf *r, uint64_t now)
{
	double dt = (double)(now - k->at_us) / 1e6;

	if (!k->at_us) {
		/* A new bucket starts full. */
		k->msgs = burst(r->msgs_per_s, r->burst_msgs);
		k->bytes = burst(r->bytes_per_s, r->burst_bytes);
	} else {
		k->msgs = fmin(k->msgs + dt * r->msgs_per_s, burst(r->msgs_per_s, r->burst_msgs));
		k->bytes = fmin(k->bytes + dt * r->bytes_per_s, burst(r->bytes_per_s, r->burst_bytes));
	}
	k->at_us = now;
}

/* Seconds until @p k can take the request (0: now). A request over the burst needs a full bucket. */
static double
wait_for(const struct bucket *k, const struct gw_rate_conf *r, double n, double bytes)
{
	double w = 0;

	if (r->msgs_per_s > 0) {
		double need = fmin(n, burst(r->msgs_per_s, r->burst_msgs));

		if (k->msgs < need)
			w = fmax(w, (need - k->msgs) / r->msgs_per_s);
	}
	if (r->bytes_per_s > 0) {
		double need = fmin(bytes, burst(r->bytes_per_s, r->burst_bytes));

		if (k->bytes < need)
			w = fmax(w, (need - k->bytes) / r->bytes_per_s);
	}
	return w;
}

static void
take(struct bucket *k, const struct gw_rate_conf *r, double n, double bytes)
{
	if (r->msgs_per_s > 0)
		k->msgs -= n;
	if (r->bytes_per_s > 0)
		k->bytes -= bytes;
}

static size_t
cslot(const uint8_t addr[16])
{
	uint64_t h = 1469598103934665603ull;

	for (int i = 0; i < 16; i++)
		h = (h ^ addr[i]) * 1099511628211ull;
	return (size_t)(h ^ (h >> 29)) & (lim.cap - 1);
}

/* Forget clients whose buckets are full again: a new bucket starts full, so nothing changes. */
static void
sweep(const struct gw_rate_conf *r, uint64_t now)
{
	for (size_t i = 0; i < lim.cap; i++) {
		for (struct client **pp = &lim.tab[i]; *pp;) {
			struct client *c = *pp;

			refill(&c->b, r, now);
			if (c->b.msgs >= burst(r->msgs_per_s, r->burst_msgs) &&
			    c->b.bytes >= burst(r->bytes_per_s, r->burst_bytes)) {
				*pp = c->next;
				free(c);
				lim.count--;
			} else {
				pp = &c->next;
			}
		}
	}
}

static struct client *
client_get(const uint8_t addr[16])
{
	struct client *c;
	size_t k;

	if (lim.cap)
		for (c = lim.tab[cslot(addr)]; c; c = c->next)
			if (!memcmp(c->addr, addr, 16))
				return c;
	if (lim.count + 1 > lim.cap / 4 * 3) {
		size_t old = lim.cap;
		struct client **t = lim.tab;

		lim.cap = old ? old * 2 : 256;
		lim.tab = xcalloc(lim.cap, sizeof(*lim.tab));
		for (size_t i = 0; i < old; i++) {
			for (struct client *e = t[i], *nx; e; e = nx) {
				nx = e->next;
				k = cslot(e->addr);
				e->next = lim.tab[k];
				lim.tab[k] = e;
			}
		}
		free(t);
	}
	c = xcalloc(1, sizeof(*c));
	memcpy(c->addr, addr, 16);
	k = cslot(addr);
	c->next = lim.tab[k];
	lim.tab[k] = c;
	lim.count++;
	return c;
}

int
gw_limits_publish(struct gw *gw, const uint8_t *client, const char *topic, uint64_t n,
		  uint64_t bytes, struct gw_error *e)
{
	const struct gw_config *cfg = gw->cfg;
	const struct gw_rate_conf *cr = &cfg->client_publish;
	const struct gw_rate_conf *pr = NULL;
	struct bucket *pb = NULL;
	struct client *cl = NULL;
	const char *slash = strchr(topic, '/');
	size_t plen = slash ? (size_t)(slash - topic) : strlen(topic);
	uint64_t now = gw_mono_us();
	double w = 0;
	const char *which = "";

	for (size_t i = 0; i < cfg->n_parent_publish; i++) {
		if (strlen(cfg->parent_publish[i].parent) == plen &&
		    !memcmp(cfg->parent_publish[i].parent, topic, plen)) {
			if (!lim.parents)
				lim.parents = xcalloc(cfg->n_parent_publish, sizeof(*lim.parents));
			pr = &cfg->parent_publish[i].rate;
			pb = &lim.parents[i];
			break;
		}
	}
	if (client && gw_limits_by_client(gw)) {
		if (++lim.calls % SWEEP_EVERY == 0)
			sweep(cr, now);
		cl = client_get(client);
	}
	if (pb) {
		refill(pb, pr, now);
		w = wait_for(pb, pr, (double)n, (double)bytes);
		if (w > 0)
			which = "parent";
	}
	if (cl) {
		double wc;

		refill(&cl->b, cr, now);
		if ((wc = wait_for(&cl->b, cr, (double)n, (double)bytes)) > w) {
			w = wc;
			which = "client";
		}
	}
	if (w > 0) {
		gw_error_set(e, 429, "rate_limited",
			     "publish rate limit of this %s reached (publish_limits); retry in %.3f s",
			     which, w);
		e->retry_after_s = (unsigned)ceil(w);
		gw->m.publish_rate_limited++;
		return -1;
	}
	if (pb)
		take(pb, pr, (double)n, (double)bytes);
	if (cl)
		take(&cl->b, cr, (double)n, (double)bytes);
	return 0;
}

int
gw_limits_by_client(const struct gw *gw)
{
	const struct gw_rate_conf *cr = &gw->cfg->client_publish;

	return cr->msgs_per_s > 0 || cr->bytes_per_s > 0;
}

void
gw_limits_free(void)
{
	for (size_t i = 0; i < lim.cap; i++) {
		for (struct client *c = lim.tab[i], *nx; c; c = nx) {
			nx = c->next;
			free(c);
		}
	}
	free(lim.tab);
	free(lim.parents);
	memset(&lim, 0, sizeof(lim));
}
