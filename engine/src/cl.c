/*
 * cl.c - the CommitLog (see cl.h): segment files, record framing, group-commit buffer,
 * recovery scan with torn-tail truncation, and a fault-injecting I/O seam for tests.
 */
#define _GNU_SOURCE
#include "cl.h"

#include "crc32c.h"
#include "engine.h"
#include "xalloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- Low level: one segment file ------------------------------------------------------------- */

typedef struct seg {
	uint64_t base;   /* log position of the file's first byte (also its name) */
	uint64_t size;   /* bytes written to the file */
	uint64_t synced; /* bytes covered by the last completed fdatasync */
	int fd;
} seg;

struct cl_log {
	char *dir;
	int dirfd;
	uint64_t seg_bytes;
	pthread_rwlock_t rw; /* guards segs/n (readers shared; roll and delete exclusive) */
	seg *segs;
	size_t n, cap;
	/* Writer state: pending records not yet written. */
	uint8_t *buf;
	size_t buf_len, buf_cap;
	uint64_t buf_pos;       /* log position of buf[0] */
	size_t first_unsynced;  /* index of the first segment with bytes beyond its synced mark */
	int failed;             /* sticky error */
	cl_faults faults;
	uint64_t n_writes, n_syncs; /* counted for fault injection */
	uint64_t start;         /* first retained position */
	uint64_t end;           /* end of written data, read by other threads under rw */
};

static inline uint32_t get32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}
static inline uint64_t get64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}
static inline void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}
static inline void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

void cl_encode(uint8_t *d, uint16_t flags, uint64_t topic_id, uint64_t offset, uint64_t time_ms,
	       const char *ev, size_t ev_len, const char *key, size_t key_len, const void *payload,
	       size_t payload_len)
{
	cl_encode_rk(d, flags, topic_id, offset, time_ms, ev, ev_len, key, key_len, NULL, 0,
		     CL_PRIO_NONE, payload, payload_len);
}

void cl_encode_rk(uint8_t *d, uint16_t flags, uint64_t topic_id, uint64_t offset, uint64_t time_ms,
		  const char *ev, size_t ev_len, const char *key, size_t key_len, const char *rkey,
		  size_t rkey_len, uint8_t prio, const void *payload, size_t payload_len)
{
	uint32_t total = cl_rec_size(ev_len, key_len + rkey_len, payload_len);
	put32(d, CL_MAGIC);
	put32(d + 4, total);
	memcpy(d + 12, &flags, 2);
	d[14] = (uint8_t)ev_len;
	d[15] = (uint8_t)key_len;
	put64(d + 16, topic_id);
	put64(d + 24, offset);
	put64(d + 32, time_ms);
	put32(d + 40, (uint32_t)payload_len);
	d[44] = (uint8_t)rkey_len;
	d[45] = prio;
	d[46] = d[47] = 0;
	if (ev_len)
		memcpy(d + CL_HDR, ev, ev_len);
	if (key_len)
		memcpy(d + CL_HDR + ev_len, key, key_len);
	if (rkey_len)
		memcpy(d + CL_HDR + ev_len + key_len, rkey, rkey_len);
	if (payload_len)
		memcpy(d + CL_HDR + ev_len + key_len + rkey_len, payload, payload_len);
	put32(d + 8, crc32c_extend(0, d + 12, total - 12));
}

int cl_decode(const uint8_t *buf, size_t avail, cl_rec *out)
{
	/* Length first: the recovery scan decodes inside an mmap of the segment, and reading a 4-byte
	 * magic from a 1..3-byte tail would go past the end of the file (and of a page-sized map). */
	if (avail < CL_HDR)
		return avail < 4 || get32(buf) == CL_MAGIC ? 1 : ENG_ECORRUPT;
	if (get32(buf) != CL_MAGIC)
		return ENG_ECORRUPT;
	uint32_t total = get32(buf + 4);
	uint8_t ev_len = buf[14], key_len = buf[15], rkey_len = buf[44];
	uint32_t plen = get32(buf + 40);
	if (total < CL_HDR || buf[45] > CL_PRIO_STORED_MAX || buf[46] || buf[47] ||
	    (uint64_t)CL_HDR + ev_len + key_len + rkey_len + plen != total)
		return ENG_ECORRUPT;
	if (total > avail)
		return 1;
	if (crc32c_extend(0, buf + 12, total - 12) != get32(buf + 8))
		return ENG_ECORRUPT;
	memcpy(&out->flags, buf + 12, 2);
	out->total = total;
	out->event_len = ev_len;
	out->key_len = key_len;
	out->topic_id = get64(buf + 16);
	out->offset = get64(buf + 24);
	out->time_ms = get64(buf + 32);
	out->payload_len = plen;
	out->event = (const char *)buf + CL_HDR;
	out->key = out->event + ev_len;
	out->rkey_len = rkey_len;
	out->rkey = out->key + key_len;
	out->payload = (const uint8_t *)out->rkey + rkey_len;
	out->prio = buf[45];
	return 0;
}

/* The I/O seam: every write and sync of the log goes through these two, so tests can fail them. */
static int io_pwrite(cl_log *log, int fd, const void *p, size_t len, uint64_t off)
{
	log->n_writes++;
	if (log->faults.fail_write_after && log->n_writes >= log->faults.fail_write_after) {
		/* A failing device often writes part of the buffer first: do so, as the worst case. */
		if (len > 1 && pwrite(fd, p, len / 2, (off_t)off) < 0) {
		}
		errno = log->faults.fail_errno ? log->faults.fail_errno : EIO;
		return -1;
	}
	while (len) {
		ssize_t w = pwrite(fd, p, len, (off_t)off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p = (const uint8_t *)p + w;
		len -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

static int io_sync(cl_log *log, int fd)
{
	log->n_syncs++;
	if (log->faults.fail_fsync_after && log->n_syncs >= log->faults.fail_fsync_after) {
		errno = log->faults.fail_errno ? log->faults.fail_errno : EIO;
		return -1;
	}
	return fdatasync(fd);
}

static int fail(cl_log *log, int err)
{
	if (!log->failed) /* written by the writer only; read by others through cl_failed() */
		__atomic_store_n(&log->failed, err == ENOSPC || err == EDQUOT ? ENG_EFULL : ENG_EFAILED,
				 __ATOMIC_RELEASE);
	return log->failed;
}

static void seg_name(char *out, size_t n, const char *dir, uint64_t base)
{
	snprintf(out, n, "%s/%020" PRIu64 ".log", dir, base);
}

/* Create the segment starting at @base and append it to the list. Caller holds rw exclusively
 * (or is single-threaded at open). */
static int seg_create(cl_log *log, uint64_t base)
{
	char path[4096];
	seg_name(path, sizeof path, log->dir, base);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return errno;
	/* The new file's name must survive a crash as well as its bytes. */
	if (fsync(log->dirfd) != 0) {
		int e = errno;
		close(fd);
		return e;
	}
	if (log->n == log->cap) {
		log->cap = log->cap ? log->cap * 2 : 16;
		log->segs = xrealloc(log->segs, log->cap * sizeof *log->segs);
	}
	log->segs[log->n++] = (seg){.base = base, .size = 0, .synced = 0, .fd = fd};
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* ---- Open and close ---------------------------------------------------------------------------- */

int cl_open(const char *dir, uint64_t segment_bytes, const cl_faults *faults, cl_log **out)
{
	int rc = 0;
	DIR *d = NULL;
	uint64_t *bases = NULL;
	size_t nb = 0, capb = 0;
	cl_log *log = xcalloc(1, sizeof *log);
	log->dir = xstrdup(dir);
	log->dirfd = -1;
	log->seg_bytes = segment_bytes;
	if (faults)
		log->faults = *faults;
	pthread_rwlock_init(&log->rw, NULL);

	if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
		rc = errno;
		goto out;
	}
	log->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (log->dirfd < 0) {
		rc = errno;
		goto out;
	}
	d = opendir(dir);
	if (!d) {
		rc = errno;
		goto out;
	}
	struct dirent *e;
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name);
		if (len != 24 || strcmp(e->d_name + 20, ".log") != 0)
			continue;
		char *end;
		uint64_t b = strtoull(e->d_name, &end, 10);
		if (end != e->d_name + 20)
			continue;
		if (nb == capb) {
			capb = capb ? capb * 2 : 16;
			bases = xrealloc(bases, capb * sizeof *bases);
		}
		bases[nb++] = b;
	}
	if (nb)
		qsort(bases, nb, sizeof *bases, cmp_u64);
	for (size_t i = 0; i < nb; i++) {
		char path[4096];
		seg_name(path, sizeof path, dir, bases[i]);
		int fd = open(path, O_RDWR | O_CLOEXEC);
		struct stat st;
		if (fd < 0 || fstat(fd, &st) != 0) {
			rc = errno;
			if (fd >= 0)
				close(fd);
			goto out;
		}
		if (log->n == log->cap) {
			log->cap = log->cap ? log->cap * 2 : 16;
			log->segs = xrealloc(log->segs, log->cap * sizeof *log->segs);
		}
		uint64_t sz = (uint64_t)st.st_size;
		log->segs[log->n++] = (seg){.base = bases[i], .size = sz, .synced = sz, .fd = fd};
	}
	if (log->n == 0 && (rc = seg_create(log, 0)) != 0)
		goto out;
	log->start = log->segs[0].base;
	seg *last = &log->segs[log->n - 1];
	log->end = last->base + last->size;
	log->buf_pos = log->end;
	log->first_unsynced = log->n - 1;
	log->buf_cap = 1 << 20;
	log->buf = xmalloc(log->buf_cap);
out:
	if (d)
		closedir(d);
	free(bases);
	if (rc) {
		cl_close(log);
		return rc;
	}
	*out = log;
	return 0;
}

static void free_log(cl_log *log)
{
	for (size_t i = 0; i < log->n; i++)
		close(log->segs[i].fd);
	if (log->dirfd >= 0)
		close(log->dirfd);
	pthread_rwlock_destroy(&log->rw);
	free(log->segs);
	free(log->buf);
	free(log->dir);
	free(log);
}

void cl_close(cl_log *log)
{
	if (!log)
		return;
	if (!log->failed) {
		cl_flush(log);
		cl_sync(log);
	}
	free_log(log);
}

void cl_crash_drop_unsynced(cl_log *log)
{
	if (!log)
		return;
	for (size_t i = 0; i < log->n; i++)
		if (ftruncate(log->segs[i].fd, (off_t)log->segs[i].synced) != 0) {
		}
	free_log(log);
}

/* ---- Recovery scan ----------------------------------------------------------------------------- */

/* Scan one mapped segment from @from_off, emitting whole records, holding back an open chain of
 * CL_F_MORE records until its last record is seen. Returns the in-segment offset after the last
 * record that may be kept, and *stop a callback's non-zero code. */
static uint64_t scan_segment(const uint8_t *m, uint64_t size, uint64_t from_off, uint64_t base,
			     int last, cl_scan_fn fn, void *ctx, int *stop)
{
	uint64_t off = from_off, chain = UINT64_MAX;
	while (off < size) {
		cl_rec r;
		if (cl_decode(m + off, size - off, &r) != 0)
			break; /* torn or corrupt: the end of what can be trusted */
		if (r.flags & CL_F_MORE) {
			if (chain == UINT64_MAX)
				chain = off;
			off += r.total;
			continue;
		}
		uint64_t first = chain == UINT64_MAX ? off : chain;
		for (uint64_t o = first; o <= off;) {
			cl_rec c;
			cl_decode(m + o, size - o, &c);
			if ((*stop = fn(ctx, base + o, &c)) != 0)
				return o;
			o += c.total;
		}
		chain = UINT64_MAX;
		off += r.total;
	}
	if (chain != UINT64_MAX) {
		/* An atomic append cut short, by the end of the log or by damage (which makes this
		 * segment the last): none of it survives. */
		if (last || off < size)
			return chain;
		/* A chain crossing into the next segment (a batch larger than a segment): keep it. */
		for (uint64_t o = chain; o < off;) {
			cl_rec c;
			cl_decode(m + o, size - o, &c);
			if ((*stop = fn(ctx, base + o, &c)) != 0)
				return o;
			o += c.total;
		}
	}
	return off;
}

int cl_scan(cl_log *log, uint64_t from, cl_scan_fn fn, void *ctx, uint64_t *truncated)
{
	uint64_t cut = 0;
	if (from < log->start)
		from = log->start;
	if (from > log->end)
		return ENG_ECORRUPT; /* the index knows more than the log: caller rebuilds */
	for (size_t i = 0; i < log->n; i++) {
		seg *s = &log->segs[i];
		if (s->base + s->size <= from && i + 1 < log->n)
			continue;
		uint64_t from_off = from > s->base ? from - s->base : 0;
		if (s->size == 0 || from_off >= s->size)
			continue;
		void *m = mmap(NULL, s->size, PROT_READ, MAP_SHARED, s->fd, 0);
		if (m == MAP_FAILED)
			return errno;
		int stop = 0;
		uint64_t keep = scan_segment(m, s->size, from_off, s->base, i + 1 == log->n, fn, ctx, &stop);
		munmap(m, s->size);
		if (stop)
			return stop;
		if (keep < s->size) {
			/* Anything after the last whole record is a torn write: cut it so new records
			 * follow the last good one and a reader never meets the garbage. */
			if (ftruncate(s->fd, (off_t)keep) != 0 || fdatasync(s->fd) != 0)
				return errno;
			cut += s->size - keep;
			s->size = s->synced = keep;
			/* Later segments were written after the damage, so nothing in them was
			 * acknowledged (a sync covers every segment up to the newest): keeping them
			 * would leave holes in their topics' offsets. This segment becomes the last. */
			for (size_t j = log->n; j-- > i + 1;) {
				char path[4096];
				seg_name(path, sizeof path, log->dir, log->segs[j].base);
				cut += log->segs[j].size;
				close(log->segs[j].fd);
				if (unlink(path) != 0)
					return errno;
			}
			if (log->n > i + 1) {
				log->n = i + 1;
				if (fsync(log->dirfd) != 0)
					return errno;
			}
			log->first_unsynced = log->n - 1;
			break;
		}
	}
	seg *last = &log->segs[log->n - 1];
	log->end = log->buf_pos = last->base + last->size;
	if (truncated)
		*truncated = cut;
	return 0;
}

/* ---- Writing ----------------------------------------------------------------------------------- */

static int roll(cl_log *log)
{
	int rc;
	if ((rc = cl_flush(log)) != 0)
		return rc;
	pthread_rwlock_wrlock(&log->rw);
	rc = seg_create(log, log->buf_pos);
	pthread_rwlock_unlock(&log->rw);
	return rc ? fail(log, rc) : 0;
}

int cl_add(cl_log *log, uint16_t flags, uint64_t topic_id, uint64_t offset, uint64_t time_ms,
	   const char *ev, size_t ev_len, const char *key, size_t key_len, const void *payload,
	   size_t payload_len, uint64_t *pos)
{
	return cl_add_rk(log, flags, topic_id, offset, time_ms, ev, ev_len, key, key_len, NULL, 0,
			 CL_PRIO_NONE, payload, payload_len, pos);
}

int cl_add_rk(cl_log *log, uint16_t flags, uint64_t topic_id, uint64_t offset, uint64_t time_ms,
	      const char *ev, size_t ev_len, const char *key, size_t key_len, const char *rkey,
	      size_t rkey_len, uint8_t prio, const void *payload, size_t payload_len, uint64_t *pos)
{
	int rc;
	if (log->failed)
		return log->failed;
	uint32_t size = cl_rec_size(ev_len, key_len + rkey_len, payload_len);
	seg *cur = &log->segs[log->n - 1];
	uint64_t wp = log->buf_pos + log->buf_len;
	if (wp > cur->base && wp - cur->base + size > log->seg_bytes && (rc = roll(log)) != 0)
		return rc;
	if (log->buf_len + size > log->buf_cap) {
		/* Large batches go out in pieces rather than growing the buffer without bound. */
		if (log->buf_len >= (8u << 20) && (rc = cl_flush(log)) != 0)
			return rc;
		while (log->buf_len + size > log->buf_cap)
			log->buf_cap *= 2;
		log->buf = xrealloc(log->buf, log->buf_cap);
	}
	cl_encode_rk(log->buf + log->buf_len, flags, topic_id, offset, time_ms, ev, ev_len, key, key_len,
		     rkey, rkey_len, prio, payload, payload_len);
	*pos = log->buf_pos + log->buf_len;
	log->buf_len += size;
	return 0;
}

int cl_reserve(cl_log *log, uint64_t bytes)
{
	if (log->failed)
		return log->failed;
	seg *cur = &log->segs[log->n - 1];
	uint64_t wp = log->buf_pos + log->buf_len;
	if (wp > cur->base && wp - cur->base + bytes > log->seg_bytes)
		return roll(log);
	return 0;
}

int cl_flush(cl_log *log)
{
	if (log->failed)
		return log->failed;
	if (!log->buf_len)
		return 0;
	seg *cur = &log->segs[log->n - 1];
	if (io_pwrite(log, cur->fd, log->buf, log->buf_len, log->buf_pos - cur->base) != 0)
		return fail(log, errno);
	cur->size += log->buf_len;
	log->buf_pos += log->buf_len;
	log->buf_len = 0;
	pthread_rwlock_wrlock(&log->rw);
	log->end = log->buf_pos;
	pthread_rwlock_unlock(&log->rw);
	return 0;
}

int cl_sync(cl_log *log)
{
	if (log->failed)
		return log->failed;
	for (size_t i = log->first_unsynced; i < log->n; i++) {
		seg *s = &log->segs[i];
		if (s->synced == s->size)
			continue;
		if (io_sync(log, s->fd) != 0)
			return fail(log, errno);
		s->synced = s->size;
	}
	log->first_unsynced = log->n - 1;
	return 0;
}

int cl_failed(const cl_log *log)
{
	return __atomic_load_n(&log->failed, __ATOMIC_ACQUIRE);
}

/* ---- Reading and retention --------------------------------------------------------------------- */

/* Index of the segment holding @pos, or -1. Caller holds rw. */
static long find_seg(const cl_log *log, uint64_t pos)
{
	size_t lo = 0, hi = log->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (log->segs[mid].base <= pos)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo == 0 ? -1 : (long)lo - 1;
}

int cl_read(cl_log *log, uint64_t pos, size_t len, void *buf)
{
	int rc = 0;
	pthread_rwlock_rdlock(&log->rw);
	long i = find_seg(log, pos);
	if (i < 0 || pos + len > log->end || pos < log->start) {
		rc = ENG_ENOTFOUND;
		goto out;
	}
	const seg *s = &log->segs[i];
	uint64_t off = pos - s->base;
	if (off + len > s->size) {
		rc = ENG_ECORRUPT;
		goto out;
	}
	size_t got = 0;
	while (got < len) {
		ssize_t r = pread(s->fd, (uint8_t *)buf + got, len - got, (off_t)(off + got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			rc = r < 0 ? errno : ENG_ECORRUPT;
			goto out;
		}
		got += (size_t)r;
	}
out:
	pthread_rwlock_unlock(&log->rw);
	return rc;
}

uint64_t cl_start(cl_log *log)
{
	pthread_rwlock_rdlock(&log->rw);
	uint64_t v = log->start;
	pthread_rwlock_unlock(&log->rw);
	return v;
}

uint64_t cl_end(cl_log *log)
{
	pthread_rwlock_rdlock(&log->rw);
	uint64_t v = log->end;
	pthread_rwlock_unlock(&log->rw);
	return v;
}

void cl_size(cl_log *log, uint64_t *bytes, uint64_t *segments)
{
	pthread_rwlock_rdlock(&log->rw);
	*bytes = log->end - log->start;
	*segments = log->n;
	pthread_rwlock_unlock(&log->rw);
}

int cl_delete_head(cl_log *log, uint64_t older_than_ms, uint64_t max_bytes, uint64_t limit,
		   int dry_run, uint64_t *new_start)
{
	int deleted = 0;
	pthread_rwlock_wrlock(&log->rw);
	for (size_t i = 0; dry_run && i + 1 < log->n; i++) {
		seg *s = &log->segs[i];
		struct stat st;
		if (fstat(s->fd, &st) != 0)
			break;
		uint64_t mtime_ms = (uint64_t)st.st_mtim.tv_sec * 1000 + (uint64_t)st.st_mtim.tv_nsec / 1000000;
		int too_old = mtime_ms < older_than_ms;
		int too_big = max_bytes && log->end - s->base > max_bytes;
		if ((!too_old && !too_big) || log->segs[i + 1].base > limit)
			break;
		deleted++;
	}
	if (dry_run) {
		*new_start = log->segs[deleted].base;
		pthread_rwlock_unlock(&log->rw);
		return deleted;
	}
	while (log->n > 1) {
		seg *s = &log->segs[0];
		struct stat st;
		if (fstat(s->fd, &st) != 0)
			break;
		uint64_t mtime_ms = (uint64_t)st.st_mtim.tv_sec * 1000 + (uint64_t)st.st_mtim.tv_nsec / 1000000;
		int too_old = mtime_ms < older_than_ms;
		int too_big = max_bytes && log->end - log->start > max_bytes;
		if ((!too_old && !too_big) || log->segs[1].base > limit)
			break;
		char path[4096];
		seg_name(path, sizeof path, log->dir, s->base);
		if (unlink(path) != 0)
			break;
		close(s->fd);
		memmove(log->segs, log->segs + 1, (log->n - 1) * sizeof *log->segs);
		log->n--;
		if (log->first_unsynced)
			log->first_unsynced--;
		log->start = log->segs[0].base;
		deleted++;
	}
	if (deleted)
		fsync(log->dirfd);
	*new_start = log->start;
	pthread_rwlock_unlock(&log->rw);
	return deleted;
}
