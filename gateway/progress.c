/*
 * progress.c - a stream's position stored for a named group (see progress.h). Service thread;
 * the stores themselves run on the helper thread (bg.c).
 */
#include "progress.h"

#include <stdlib.h>
#include <string.h>

#include "bg.h"
#include "groups.h"
#include "log.h"
#include "route.h"
#include "xalloc.h"

#define STORE_EVERY_US 1000000u /* at most one store a second per stream */

struct store_job {
	struct gw_job job;            /* first: bg.c hands this pointer back */
	struct gw *gw;
	struct gw_progress *p;        /* NULL once the stream ended (then the job frees itself) */
	char group[GW_GROUP_NAME_MAX + 1];
	char topic[ENG_TOPIC_MAX + 1];
	uint64_t offset;
	int rc;
};

struct gw_progress {
	struct gw *gw;
	char group[GW_GROUP_NAME_MAX + 1];
	char topic[ENG_TOPIC_MAX + 1];
	uint64_t stored;              /* last position stored (or being stored) */
	uint64_t want;                /* the stream's position now */
	uint64_t last_us;             /* when the last store was submitted */
	struct store_job *inflight;   /* on the helper thread, or NULL */
};

int
gw_progress_param(struct lws *wsi, char *group, struct gw_error *e)
{
	for (int i = 0; i < 32; i++) {
		char frag[256];
		int n = lws_hdr_copy_fragment(wsi, frag, sizeof(frag), WSI_TOKEN_HTTP_URI_ARGS, i);

		if (n < 0 && lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i) > 0)
			continue; /* longer than a group parameter (an access_token): not ours */
		if (n < 0)
			break;
		if (n >= 6 && !memcmp(frag, "group=", 6)) {
			if (!gw_group_name_ok(frag + 6, (size_t)n - 6)) {
				gw_error_set(e, 400, "bad_name",
					     "group must match [A-Za-z0-9_.:-]{1,64}, not starting with '.'");
				return -1;
			}
			memcpy(group, frag + 6, (size_t)n - 6);
			group[n - 6] = '\0';
			return 1;
		}
	}
	return 0;
}

static void
store_work(struct gw_job *job)
{
	struct store_job *s = (struct store_job *)job;

	s->rc = eng_offset_commit(s->gw->db, s->group, s->topic, s->offset);
}

static void
store_done(struct gw_job *job)
{
	struct store_job *s = (struct store_job *)job;

	if (s->rc)
		LOG_WARN("storing %s's position in %s (%llu): %s", s->group, s->topic,
			 (unsigned long long)s->offset, eng_strerror(s->rc));
	if (s->p)
		s->p->inflight = NULL;
	free(s);
}

static void
submit(struct gw_progress *p, int detached)
{
	struct store_job *s = xcalloc(1, sizeof(*s));

	s->job.work = store_work;
	s->job.done = store_done;
	s->gw = p->gw;
	s->p = detached ? NULL : p;
	memcpy(s->group, p->group, sizeof(s->group));
	memcpy(s->topic, p->topic, sizeof(s->topic));
	s->offset = p->want;
	p->stored = p->want;
	p->last_us = gw_mono_us();
	if (!detached)
		p->inflight = s;
	gw_bg_submit(&s->job);
}

int
gw_progress_begin(struct gw *gw, const char *group, const char *topic, struct gw_progress **out,
		  uint64_t *stored, int *has_stored, struct gw_error *e)
{
	struct gw_progress *p;
	uint64_t off = 0;
	int rc;

	if (gw_group_find(gw, group)) {
		gw_error_set(e, 409, "group_conflict",
			     "%s is a pull consumer group (its offsets move by ack); name another group",
			     group);
		return -1;
	}
	rc = eng_offset_get(gw->db, group, topic, &off);
	if (rc && rc != ENG_ENOTFOUND) {
		gw_error_from_eng(rc, e);
		return -1;
	}
	*has_stored = rc == 0;
	*stored = off;
	p = xcalloc(1, sizeof(*p));
	p->gw = gw;
	strcpy(p->group, group);
	strcpy(p->topic, topic);
	p->stored = p->want = rc == 0 ? off : UINT64_MAX; /* nothing stored: the first note stores */
	*out = p;
	return 0;
}

void
gw_progress_note(struct gw_progress *p, uint64_t next)
{
	if (!p)
		return;
	p->want = next;
	if (p->want == p->stored || p->inflight || gw_mono_us() - p->last_us < STORE_EVERY_US)
		return;
	submit(p, 0);
}

void
gw_progress_end(struct gw_progress *p)
{
	if (!p)
		return;
	/* The helper thread runs jobs in order: this last store lands after any in flight. */
	if (p->inflight)
		p->inflight->p = NULL;
	if (p->want != p->stored && p->want != UINT64_MAX)
		submit(p, 1);
	free(p);
}
