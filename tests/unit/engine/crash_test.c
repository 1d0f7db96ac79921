/*
 * crash_test.c - SIGKILL under load. A child process appends with the fsync policy and reports
 * each completed append (topic, offset, content seed) to the parent over a pipe; the parent kills
 * it at a random moment, reopens the engine, and checks every reported append is readable at the
 * same offset with the same bytes. 20+ rounds on the same data directory, so recovery also runs on
 * logs that earlier rounds left torn.
 */
#include "test_util.h"

#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#define TOPICS 16
#define ROUNDS 24

typedef struct report {
	uint32_t topic;
	uint32_t seed;
	uint64_t offset;
	uint32_t count;
} report;

static void make_payload(char *buf, size_t *len, uint32_t seed)
{
	/* Deterministic from the seed, of varying length. */
	size_t n = 8 + seed % 200;
	for (size_t i = 0; i < n; i++)
		buf[i] = (char)('a' + (seed * 31 + i * 7) % 26);
	*len = n;
}

typedef struct child_ctx {
	int fd;
	report r;
	int *inflight;
} child_ctx;

static void child_done(void *ctx, const eng_append_result *res)
{
	child_ctx *c = ctx;
	if (res->rc == 0) {
		c->r.offset = res->first_offset;
		c->r.count = res->count;
		if (write(c->fd, &c->r, sizeof c->r) != (ssize_t)sizeof c->r)
			_exit(3);
	}
	--*c->inflight;
	free(c);
}

static void child(const char *dir, int fd, uint32_t seed0)
{
	eng_config cfg;
	tu_config(&cfg, dir);
	eng_db *db;
	if (eng_open(&cfg, &db) != 0)
		_exit(2);
	int inflight = 0;
	uint32_t seed = seed0;
	for (;;) {
		/* Keep up to 64 appends in flight so batches form, as under real load. */
		while (inflight < 64) {
			child_ctx *c = malloc(sizeof *c);
			c->fd = fd;
			c->inflight = &inflight;
			c->r.topic = seed % TOPICS;
			c->r.seed = seed;
			char topic[32], buf[256], buf2[256];
			size_t len, len2;
			snprintf(topic, sizeof topic, "chatbot/crash%u", c->r.topic);
			make_payload(buf, &len, seed);
			make_payload(buf2, &len2, seed + 1);
			/* Every 5th append is a batch of two (seed, seed+1), atomic. */
			eng_msg_in m[2] = {{"token", buf, len, NULL}, {"token", buf2, len2, NULL}};
			size_t n = seed % 5 == 0 ? 2 : 1;
			if (eng_append(db, topic, m, n, ENG_NO_EXPECT, child_done, c) != 0)
				_exit(4);
			inflight++;
			seed += 2;
		}
		struct pollfd p = {.fd = eng_notify_fd(db), .events = POLLIN};
		poll(&p, 1, 100);
		eng_poll_completions(db);
	}
}

static void test_sigkill_rounds(void **state)
{
	(void)state;
	char *dir = tu_tmpdir();
	srand((unsigned)time(NULL));
	size_t cap = 1 << 16, n = 0;
	report *all = malloc(cap * sizeof *all);
	for (int round = 0; round < ROUNDS; round++) {
		int pfd[2];
		assert_int_equal(pipe(pfd), 0);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(pfd[0]);
			child(dir, pfd[1], (uint32_t)round * 1000003u);
		}
		close(pfd[1]);
		/* Read reports while the child runs (a full pipe would stall it), then kill it at a
		 * random moment. Reports are fixed-size and under PIPE_BUF, so never split. */
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		long kill_after_us = 20000 + rand() % 300000, elapsed = 0;
		size_t got = 0, round_start = n;
		int killed = 0;
		for (;;) {
			if (!killed && elapsed >= kill_after_us) {
				kill(pid, SIGKILL);
				killed = 1;
			}
			struct pollfd p = {.fd = pfd[0], .events = POLLIN};
			poll(&p, 1, 5);
			report r;
			ssize_t rd = p.revents ? read(pfd[0], &r, sizeof r) : -1;
			if (rd == 0)
				break; /* EOF: the child is gone and everything it reported is read */
			if (rd == (ssize_t)sizeof r) {
				if (n == cap) {
					cap *= 2;
					all = realloc(all, cap * sizeof *all);
				}
				all[n++] = r;
				got++;
			}
			clock_gettime(CLOCK_MONOTONIC, &t1);
			elapsed = (t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000;
		}
		close(pfd[0]);
		int status;
		waitpid(pid, &status, 0);
		assert_true(WIFSIGNALED(status));
		/* Reopen and check every acknowledged append of every round so far. */
		eng_db *db = tu_open(dir);
		/* Every append of this round, and a sample of the earlier rounds' (all in round 0). */
		for (size_t i = 0; i < n; i += i >= round_start ? 1 : 7) {
			char topic[32], want[256];
			size_t len;
			snprintf(topic, sizeof topic, "chatbot/crash%u", all[i].topic);
			eng_read_result rr;
			assert_int_equal(eng_read(db, topic, all[i].offset, all[i].count, 1 << 20, &rr), 0);
			assert_int_equal(rr.n, all[i].count);
			for (uint32_t k = 0; k < all[i].count; k++) {
				make_payload(want, &len, all[i].seed + k);
				assert_int_equal(rr.msgs[k].offset, all[i].offset + k);
				assert_int_equal(rr.msgs[k].len, len);
				assert_memory_equal(rr.msgs[k].data, want, len);
			}
			eng_read_free(&rr);
		}
		/* Offsets are dense: every topic reads back without holes. */
		for (int t = 0; t < TOPICS; t++) {
			char topic[32];
			snprintf(topic, sizeof topic, "chatbot/crash%d", t);
			eng_topic_info info;
			if (eng_topic_info_get(db, topic, &info) != 0)
				continue;
			uint64_t o = 0;
			while (o < info.next_offset) {
				eng_read_result rr;
				assert_int_equal(eng_read(db, topic, o, 1000, 1 << 24, &rr), 0);
				assert_true(rr.n > 0);
				for (size_t k = 0; k < rr.n; k++)
					assert_int_equal(rr.msgs[k].offset, o + k);
				o += rr.n;
				eng_read_free(&rr);
			}
		}
		eng_close(db);
		print_message("round %d: %zu acknowledged appends reported, %zu reported so far\n", round,
			      got, n);
	}
	assert_true(n > 100);
	free(all);
	tu_rmrf(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sigkill_rounds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
