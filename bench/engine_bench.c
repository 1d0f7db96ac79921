/*
 * engine_bench.c - figures for the storage engine, through its public header only.
 *
 *   engine_bench [--dir DIR] [--messages N] [--topics N] [--create N] [--only NAME]
 *
 * Prints, for the machine it runs on: appends/s of 32-byte messages spread over --topics lite
 * topics for each durability policy; append-to-completion latency p50/p99 under fsync (at
 * saturation and at a paced 20,000/s); lite topics created per second; reads/s tailing 1,000
 * topics; recovery (index rebuilt from the log) in MB/s; RSS per idle lite topic after --create.
 * The host side is one thread, as in the gateway: it queues appends and polls completions.
 */
#define _GNU_SOURCE
#include "engine.h"

#include <malloc.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static long rss_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb;
}

static const eng_parent parents[] = {{.name = "chatbot"}};

static eng_db *open_db(const char *dir, enum eng_durability d, uint32_t idle_ms)
{
	eng_config cfg;
	eng_config_init(&cfg);
	cfg.dir = dir;
	cfg.durability = d;
	cfg.interval_ms = 10;
	cfg.parents = parents;
	cfg.n_parents = 1;
	cfg.topic_cache_idle_ms = idle_ms;
	eng_db *db;
	int rc = eng_open(&cfg, &db);
	if (rc) {
		fprintf(stderr, "eng_open %s: %s\n", dir, eng_strerror(rc));
		exit(1);
	}
	return db;
}

/* ---- Appends with a window of requests in flight ------------------------------------------------ */

typedef struct load {
	uint64_t *lat_ns;   /* per completed append (when sampling latency) */
	size_t n_lat, done, failed;
	uint64_t *sent_at;  /* per slot */
} load;

typedef struct slot {
	load *l;
	uint64_t sent;
} slot;

static void on_done(void *ctx, const eng_append_result *res)
{
	slot *s = ctx;
	load *l = s->l;
	if (res->rc)
		l->failed++;
	if (l->lat_ns)
		l->lat_ns[l->n_lat++] = now_ns() - s->sent;
	l->done++;
	free(s);
}

static void wait_some(eng_db *db, int timeout_ms)
{
	struct pollfd p = {.fd = eng_notify_fd(db), .events = POLLIN};
	poll(&p, 1, timeout_ms);
	eng_poll_completions(db);
}

/* Append @total 32-byte messages round-robin over @topics topics, keeping @window in flight;
 * with @rate > 0, paced to that many per second. Returns seconds taken. */
static double run_appends(eng_db *db, size_t total, size_t topics, size_t window, double rate, load *l)
{
	char payload[33];
	memset(payload, 'x', 32);
	payload[32] = 0;
	uint64_t t0 = now_ns();
	size_t sent = 0;
	unsigned seed = 12345;
	while (l->done < total) {
		while (sent < total && sent - l->done < window) {
			if (rate > 0 && (double)(now_ns() - t0) / 1e9 * rate < (double)sent)
				break;
			char topic[48];
			snprintf(topic, sizeof topic, "chatbot/s%06u", (unsigned)(rand_r(&seed) % topics));
			eng_msg_in m = {"token", payload, 32, NULL};
			slot *s = malloc(sizeof *s);
			s->l = l;
			s->sent = now_ns();
			int rc = eng_append(db, topic, &m, 1, ENG_NO_EXPECT, on_done, s);
			if (rc == ENG_EBUSY) {
				free(s);
				break;
			}
			if (rc) {
				fprintf(stderr, "append: %s\n", eng_strerror(rc));
				exit(1);
			}
			sent++;
		}
		wait_some(db, rate > 0 ? 0 : 100);
		if (rate > 0 && sent < total) {
			struct timespec ts = {0, 20000};
			nanosleep(&ts, NULL);
		}
	}
	return (double)(now_ns() - t0) / 1e9;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void pct(load *l, double *p50, double *p99)
{
	qsort(l->lat_ns, l->n_lat, sizeof *l->lat_ns, cmp_u64);
	*p50 = (double)l->lat_ns[l->n_lat / 2] / 1e3;
	*p99 = (double)l->lat_ns[l->n_lat * 99 / 100] / 1e3;
}

static void fresh_dir(char *out, size_t n, const char *base, const char *name)
{
	snprintf(out, n, "%s/%s", base, name);
	char cmd[2200];
	snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", out, out);
	if (system(cmd) != 0)
		exit(1);
}

static void dir_size_mb(const char *dir, double *mb)
{
	char cmd[2200];
	snprintf(cmd, sizeof cmd, "du -sb '%s/log' | cut -f1", dir);
	FILE *p = popen(cmd, "r");
	unsigned long long b = 0;
	if (p && fscanf(p, "%llu", &b) != 1)
		b = 0;
	if (p)
		pclose(p);
	*mb = (double)b / 1e6;
}

int main(int argc, char **argv)
{
	const char *base = "/tmp/litegate-bench";
	size_t messages = 2000000, topics = 100000, create = 1000000;
	const char *only = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			base = argv[++i];
		else if (!strcmp(argv[i], "--messages") && i + 1 < argc)
			messages = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--topics") && i + 1 < argc)
			topics = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--create") && i + 1 < argc)
			create = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--only") && i + 1 < argc)
			only = argv[++i];
		else {
			fprintf(stderr, "usage: %s [--dir DIR] [--messages N] [--topics N] [--create N] "
					"[--only appends|latency|create|tail|recovery]\n", argv[0]);
			return 2;
		}
	}
	char dir[1024];
	printf("# engine_bench --dir %s --messages %zu --topics %zu --create %zu\n", base, messages,
	       topics, create);
	printf("%-58s %14s\n", "figure", "value");

	if (!only || !strcmp(only, "appends")) {
		/* The asked-for spread, and 1,000 topics: the difference is the per-topic cost. */
		const char *names[] = {"fsync", "interval", "none"};
		enum eng_durability pol[] = {ENG_DURABLE_FSYNC, ENG_DURABLE_INTERVAL, ENG_DURABLE_NONE};
		size_t spreads[2] = {topics, 1000};
		for (int sp = 0; sp < (topics == 1000 ? 1 : 2); sp++)
			for (int p = 0; p < 3; p++) {
				fresh_dir(dir, sizeof dir, base, names[p]);
				eng_db *db = open_db(dir, pol[p], 10000);
				load l = {0};
				l.lat_ns = p == 0 ? malloc(messages * sizeof *l.lat_ns) : NULL;
				double s = run_appends(db, messages, spreads[sp], 65536, 0, &l);
				eng_stats st;
				eng_stats_get(db, &st);
				printf("appends/s, 32 B over %7zu topics, %-8s %14.0f  (%.0f msgs/batch, %llu failed)\n",
				       spreads[sp], names[p], (double)messages / s,
				       (double)st.appended_msgs / (double)(st.batches ? st.batches : 1),
				       (unsigned long long)l.failed);
				if (p == 0) {
					double p50, p99;
					pct(&l, &p50, &p99);
					printf("  fsync append->completion, 64k in flight, p50/p99 us %9.0f / %.0f\n", p50, p99);
					free(l.lat_ns);
				}
				eng_close(db);
			}
	}
	if (!only || !strcmp(only, "latency")) {
		fresh_dir(dir, sizeof dir, base, "latency");
		eng_db *db = open_db(dir, ENG_DURABLE_FSYNC, 10000);
		size_t n = 200000;
		/* Create the topics first (unpaced): the figure is the steady state, not creation. */
		load warm = {0};
		run_appends(db, topics * 3, topics, 65536, 0, &warm);
		load l = {0};
		l.lat_ns = malloc(n * sizeof *l.lat_ns);
		run_appends(db, n, topics, 65536, 20000, &l);
		double p50, p99;
		pct(&l, &p50, &p99);
		printf("fsync append->completion at 20,000/s, p50/p99 us %16.0f / %.0f\n", p50, p99);
		free(l.lat_ns);
		eng_close(db);
	}
	if (!only || !strcmp(only, "create")) {
		fresh_dir(dir, sizeof dir, base, "create");
		eng_db *db = open_db(dir, ENG_DURABLE_FSYNC, 1000);
		long rss0 = rss_kb();
		load l = {0};
		/* Each message to a new topic: topics == messages, in order, so every one is a creation. */
		char payload[33];
		memset(payload, 'c', 32);
		uint64_t t0 = now_ns();
		size_t sent = 0;
		while (l.done < create) {
			while (sent < create && sent - l.done < 65536) {
				char topic[48];
				snprintf(topic, sizeof topic, "chatbot/c%07zu", sent);
				eng_msg_in m = {"token", payload, 32, NULL};
				slot *s = malloc(sizeof *s);
				s->l = &l;
				int rc = eng_append(db, topic, &m, 1, ENG_NO_EXPECT, on_done, s);
				if (rc) {
					free(s);
					break;
				}
				sent++;
			}
			wait_some(db, 100);
		}
		double s = (double)(now_ns() - t0) / 1e9;
		printf("lite topics created/s (fsync)                  %16.0f  (%zu in %.2f s)\n",
		       (double)create / s, create, s);
		/* Wait for the writer to evict the now idle topics (idle 1 s, checked each second). */
		eng_stats st;
		for (int i = 0; i < 200; i++) { /* the sweep visits every topic within ~5 s */
			eng_stats_get(db, &st);
			if (!st.cached_topics)
				break;
			usleep(100000);
		}
		/* The gateway hands freed heap back at each heartbeat (malloc_trim); do the same, so the
		 * figure is memory held, not memory glibc keeps for reuse. */
		malloc_trim(0);
		long rss1 = rss_kb();
		printf("RSS per idle lite topic, bytes                 %16.1f  (RSS %ld -> %ld kB, %llu cached)\n",
		       (double)(rss1 - rss0) * 1024.0 / (double)create, rss0, rss1,
		       (unsigned long long)st.cached_topics);
		eng_close(db);
	}
	if (!only || !strcmp(only, "tail")) {
		fresh_dir(dir, sizeof dir, base, "tail");
		eng_db *db = open_db(dir, ENG_DURABLE_NONE, 10000);
		load l = {0};
		size_t per = 200;
		run_appends(db, 1000 * per, 1000, 65536, 0, &l);
		/* Each of 1,000 tailing readers reads the 16 messages after its position, round robin. */
		uint64_t *pos = calloc(1000, sizeof *pos);
		size_t reads = 0, msgs = 0;
		uint64_t t0 = now_ns();
		while (msgs < 1000 * per) {
			for (int t = 0; t < 1000; t++) {
				char topic[48];
				snprintf(topic, sizeof topic, "chatbot/s%06d", t);
				eng_read_result rr;
				if (eng_read(db, topic, pos[t], 16, 1 << 20, &rr) != 0)
					continue;
				pos[t] = rr.next;
				msgs += rr.n;
				reads++;
				eng_read_free(&rr);
			}
		}
		double s = (double)(now_ns() - t0) / 1e9;
		printf("reads/s tailing 1,000 topics (16 per read)     %16.0f  (%.0f messages/s)\n",
		       (double)reads / s, (double)msgs / s);
		free(pos);
		eng_close(db);
	}
	if (!only || !strcmp(only, "recovery")) {
		fresh_dir(dir, sizeof dir, base, "recovery");
		eng_db *db = open_db(dir, ENG_DURABLE_NONE, 10000);
		load l = {0};
		run_appends(db, messages, topics, 65536, 0, &l);
		eng_close(db);
		char cmd[2200];
		snprintf(cmd, sizeof cmd, "rm -rf '%s/index'", dir);
		if (system(cmd) != 0)
			return 1;
		uint64_t t0 = now_ns();
		db = open_db(dir, ENG_DURABLE_NONE, 10000);
		double s = (double)(now_ns() - t0) / 1e9;
		eng_stats st;
		eng_stats_get(db, &st);
		double mb;
		dir_size_mb(dir, &mb);
		printf("index rebuilt from the log, MB/s               %16.1f  (%.1f MB, %.2f s, %llu topics)\n",
		       (double)st.recovered_bytes / 1e6 / s, mb, s, (unsigned long long)st.topics);
		eng_close(db);
	}
	char cmd[2200];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
	return system(cmd) == 0 ? 0 : 1;
}
