/*
 * fuzz_cl.c - libFuzzer target for the CommitLog record decoder and its recovery scan
 * (engine/src/cl.c: cl_decode, cl_open + cl_scan), what the engine runs on every start over
 * whatever a crash, a full disk or a bad disk left in the log.
 *
 * Input: three control bytes, then the log's bytes. Byte 0 picks one to three segments, bytes 1
 * and 2 where the bytes are cut between them (segments are contiguous, as the writer makes them).
 * Invariants checked:
 *  - cl_decode of the bytes: a record it accepts lies inside them, has a stored priority of at
 *    most CL_PRIO_STORED_MAX, and encodes (cl_encode_rk) back to the very same bytes; every proper prefix of it is "incomplete" (1), never corrupt or a
 *    record, because that is how a torn tail is told from damage;
 *  - recovery: the segments are written to a temporary directory and scanned. Every record the
 *    scan reports decodes, is the input's bytes at its position, lies inside one segment, comes
 *    after the previous one, and reads back the same through cl_read. Each kept segment is cut
 *    right after the last record reported in it; the first one cut becomes the last (later ones
 *    are deleted); the last never ends inside an atomic append (CL_F_MORE); and the bytes cut are
 *    what the scan says it cut;
 *  - the recovered log reopens with zero further truncation and the same records, accepts an
 *    append at its end, and after another reopen holds exactly those records plus the new one.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <engine.h>

#include "cl.h"
#include "fuzz.h"

#define MAX_SEGS 3

static char g_dir[256];

static void
clean_dir(void)
{
	DIR *d = opendir(g_dir);
	struct dirent *e;
	char path[512];

	if (!d)
		return;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.') {
			snprintf(path, sizeof(path), "%s/%s", g_dir, e->d_name);
			unlink(path);
		}
	closedir(d);
}

static void
remove_dir(void)
{
	clean_dir();
	rmdir(g_dir);
}

/* One directory for the whole run; in RAM when /dev/shm is there, as every input writes files.
 * scripts/fuzz.sh sets LITEGATE_FUZZ_TMPDIR to a directory it removes itself, since a crash
 * skips atexit. */
static void
make_dir(void)
{
	const char *base = getenv("LITEGATE_FUZZ_TMPDIR");

	if (!base)
		base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");

	snprintf(g_dir, sizeof(g_dir), "%s/litegate-fuzz-cl-XXXXXX", base ? base : "/tmp");
	FUZZ_CHECK(mkdtemp(g_dir) != NULL);
	atexit(remove_dir);
}

/* ---- cl_decode on the bytes themselves -------------------------------------------------- */

static void
check_decode(const uint8_t *p, size_t len)
{
	cl_rec r;
	int rc = cl_decode(p, len, &r);
	uint8_t *again;

	FUZZ_CHECK(rc == 0 || rc == 1 || rc == ENG_ECORRUPT);
	if (rc)
		return;
	FUZZ_CHECK(r.total >= CL_HDR && r.total <= len);
	FUZZ_CHECK(r.prio <= CL_PRIO_STORED_MAX);
	FUZZ_CHECK((const uint8_t *)r.event == p + CL_HDR);
	FUZZ_CHECK(r.payload + r.payload_len == p + r.total);
	FUZZ_CHECK(CL_HDR + (size_t)r.event_len + r.key_len + r.rkey_len + r.payload_len ==
		   r.total);
	again = malloc(r.total);
	cl_encode_rk(again, r.flags, r.topic_id, r.offset, r.time_ms, r.event, r.event_len, r.key,
		     r.key_len, r.rkey, r.rkey_len, r.prio, r.payload, r.payload_len);
	FUZZ_CHECK(!memcmp(again, p, r.total));
	free(again);
	/* A torn copy of a good record is incomplete at every length. Short prefixes get an
	 * exact-size copy, so a read past them is caught by ASan. */
	for (size_t i = 0; i < r.total; i++) {
		cl_rec t;

		if (i <= CL_HDR) {
			uint8_t *cut = malloc(i ? i : 1);

			memcpy(cut, p, i);
			FUZZ_CHECK(cl_decode(cut, i, &t) == 1);
			free(cut);
		} else {
			FUZZ_CHECK(cl_decode(p, i, &t) == 1);
		}
	}
}

/* ---- Recovery ---------------------------------------------------------------------------- */

struct seen {
	uint64_t pos, total;
	uint16_t flags;
};

struct scan_ctx {
	const uint8_t *log; /* the log's bytes: segment i holds log[base[i], end[i]) */
	size_t len;
	const uint64_t *base, *end; /* each segment's first position and end before recovery */
	size_t nseg;
	struct seen *recs;
	size_t n, cap;
};

static int
on_rec(void *ctx, uint64_t pos, const cl_rec *rec)
{
	struct scan_ctx *s = ctx;
	const uint8_t *start = (const uint8_t *)rec->event - CL_HDR;
	cl_rec again;
	size_t seg = 0;

	FUZZ_CHECK(rec->total >= CL_HDR);
	FUZZ_CHECK(pos + rec->total <= s->len);
	FUZZ_CHECK(!s->n || pos >= s->recs[s->n - 1].pos + s->recs[s->n - 1].total);
	while (seg + 1 < s->nseg && pos >= s->base[seg + 1])
		seg++;
	FUZZ_CHECK(pos >= s->base[seg] && pos + rec->total <= s->end[seg]); /* inside one segment */
	FUZZ_CHECK(!memcmp(start, s->log + pos, rec->total));
	FUZZ_CHECK(cl_decode(start, rec->total, &again) == 0 && again.total == rec->total);
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 16;
		s->recs = realloc(s->recs, s->cap * sizeof(*s->recs));
	}
	s->recs[s->n++] = (struct seen){ pos, rec->total, rec->flags };
	return 0;
}

static void
write_seg(uint64_t base, const uint8_t *p, size_t n)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%020" PRIu64 ".log", g_dir, base);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	FUZZ_CHECK(fd >= 0);
	FUZZ_CHECK(n == 0 || write(fd, p, n) == (ssize_t)n);
	close(fd);
}

static uint64_t
seg_size(uint64_t base)
{
	char path[512];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%020" PRIu64 ".log", g_dir, base);
	FUZZ_CHECK(stat(path, &st) == 0);
	return (uint64_t)st.st_size;
}

static int
seg_exists(uint64_t base)
{
	char path[512];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%020" PRIu64 ".log", g_dir, base);
	return stat(path, &st) == 0;
}

static void
scan(struct scan_ctx *s, uint64_t *truncated)
{
	cl_log *log;

	s->n = 0;
	FUZZ_CHECK(cl_open(g_dir, 1ull << 30, NULL, &log) == 0);
	FUZZ_CHECK(cl_scan(log, 0, on_rec, s, truncated) == 0);
	cl_close(log);
}

static void
check_recovery(const uint8_t *ctl, const uint8_t *p, size_t len)
{
	uint64_t base[MAX_SEGS], end[MAX_SEGS], cut[MAX_SEGS + 1], truncated = 0, left = 0;
	size_t nseg = 1 + ctl[0] % MAX_SEGS, n1;
	struct scan_ctx s = { p, len, base, end, 0, NULL, 0, 0 };
	struct seen *first;
	cl_log *log;
	uint64_t at, endpos;

	/* Cut points; an empty segment other than the last would share its name with the next, so
	 * such a cut is dropped (the writer never leaves one either: it rolls only to write). */
	cut[0] = 0;
	cut[1] = (uint64_t)len * ctl[1] / 255;
	cut[2] = cut[1] + (uint64_t)(len - cut[1]) * ctl[2] / 255;
	s.nseg = 0;
	for (size_t i = 0; i < nseg; i++) {
		uint64_t b = cut[i], e = i + 1 < nseg ? cut[i + 1] : len;

		if (e == b && i + 1 < nseg)
			continue;
		base[s.nseg] = b;
		end[s.nseg++] = e;
	}
	for (size_t i = 0; i < s.nseg; i++) {
		if (i + 1 < s.nseg)
			end[i] = base[i + 1];
		write_seg(base[i], p + base[i], (size_t)(end[i] - base[i]));
	}

	scan(&s, &truncated);
	FUZZ_CHECK(truncated <= len);
	/* Each kept segment ends right after the last record reported in it. The first segment that
	 * was cut becomes the last: every later one was written after the damage and is gone, so no
	 * topic keeps a hole in its offsets. */
	size_t kept = s.nseg;
	for (size_t i = 0, r = 0, ended = 0; i < s.nseg; i++) {
		uint64_t last_end = base[i];
		struct seen *last = NULL;

		if (ended) {
			FUZZ_CHECK(!seg_exists(base[i]));
			FUZZ_CHECK(r == s.n);
			continue;
		}
		for (; r < s.n && s.recs[r].pos < end[i]; r++) {
			last_end = s.recs[r].pos + s.recs[r].total;
			last = &s.recs[r];
		}
		FUZZ_CHECK(seg_size(base[i]) == last_end - base[i]);
		left += last_end - base[i];
		if (last_end < end[i] || i + 1 == s.nseg) {
			ended = 1;
			kept = i + 1;
			if (last)
				FUZZ_CHECK(!(last->flags & CL_F_MORE)); /* no half atomic append left */
		}
	}
	FUZZ_CHECK(left + truncated == len);
	s.nseg = kept;

	/* Reopen: nothing more to cut, the same records. Then append one at the end. */
	n1 = s.n;
	first = malloc((n1 ? n1 : 1) * sizeof(*first));
	if (n1)
		memcpy(first, s.recs, n1 * sizeof(*first));
	FUZZ_CHECK(cl_open(g_dir, 1ull << 30, NULL, &log) == 0);
	s.n = 0;
	FUZZ_CHECK(cl_scan(log, 0, on_rec, &s, &truncated) == 0);
	FUZZ_CHECK(truncated == 0);
	FUZZ_CHECK(s.n == n1 && fuzz_mem_eq(s.recs, first, n1 * sizeof(*first)));
	for (size_t i = 0; i < n1; i++) {
		uint8_t *buf = malloc(first[i].total);
		cl_rec r;

		FUZZ_CHECK(cl_read(log, first[i].pos, first[i].total, buf) == 0);
		FUZZ_CHECK(!memcmp(buf, p + first[i].pos, first[i].total));
		FUZZ_CHECK(cl_decode(buf, first[i].total, &r) == 0);
		free(buf);
	}
	endpos = cl_end(log);
	FUZZ_CHECK(endpos == base[s.nseg - 1] + seg_size(base[s.nseg - 1]));
	FUZZ_CHECK(cl_add_rk(log, CL_REC_MSG, 7, 8, 9, "ev", 2, "k", 1, "rk", 2, 3, "payload", 7,
			     &at) == 0);
	FUZZ_CHECK(at == endpos);
	FUZZ_CHECK(cl_flush(log) == 0 && cl_sync(log) == 0);
	cl_close(log);

	/* The new record is found after the recovered ones; nothing is cut. The scan checks a
	 * record against the input bytes, so give it a copy of the log with the new record. */
	{
		size_t total = cl_rec_size(2, 1 + 2, 7), newlen = (size_t)at + total;
		uint8_t *img = calloc(1, newlen);
		uint64_t base2[MAX_SEGS], end2[MAX_SEGS];

		memcpy(img, p, (size_t)(at < len ? at : len));
		cl_encode_rk(img + at, CL_REC_MSG, 7, 8, 9, "ev", 2, "k", 1, "rk", 2, 3, "payload", 7);
		memcpy(base2, base, sizeof(base));
		memcpy(end2, end, sizeof(end));
		end2[s.nseg - 1] = newlen;
		s.log = img;
		s.len = newlen;
		s.base = base2;
		s.end = end2;
		scan(&s, &truncated);
		FUZZ_CHECK(truncated == 0);
		FUZZ_CHECK(s.n == n1 + 1 && fuzz_mem_eq(s.recs, first, n1 * sizeof(*first)));
		FUZZ_CHECK(s.recs[n1].pos == at && s.recs[n1].total == total);
		free(img);
	}
	free(first);
	free(s.recs);
	clean_dir();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!g_dir[0])
		make_dir();
	if (size < 3) {
		check_decode(data, size);
		return 0;
	}
	check_decode(data + 3, size - 3);
	check_recovery(data, data + 3, size - 3);
	return 0;
}
