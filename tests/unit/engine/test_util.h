/*
 * test_util.h - shared helpers of the engine's unit tests: temporary directories, opening an
 * engine with test defaults, and synchronous appends (append, then wait on the notify fd).
 */
#ifndef LITEGATE_TEST_UTIL_H
#define LITEGATE_TEST_UTIL_H
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"

void eng__close_power_loss(eng_db *db);

static inline char *tu_tmpdir(void)
{
	char tmpl[] = "/tmp/litegate-test-XXXXXX";
	char *d = mkdtemp(tmpl);
	assert_non_null(d);
	return strdup(d);
}

static inline void tu_rmrf(const char *dir)
{
	assert_true(strlen(dir) < 1000);
	char cmd[1100];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

static const eng_parent tu_parents[] = {
	{.name = "chatbot"},
	{.name = "agent", .max_message_bytes = 64},
	{.name = "short", .idle_ttl_ms = 1000},
	{.name = "capped", .max_retained = 5},
	{.name = "dd", .dedup_window_ms = 300, .dedup_max_keys = 4},
};

static inline void tu_config(eng_config *cfg, const char *dir)
{
	eng_config_init(cfg);
	cfg->dir = dir;
	cfg->parents = tu_parents;
	cfg->n_parents = sizeof tu_parents / sizeof tu_parents[0];
	cfg->maintenance_ms = 3600 * 1000; /* tests call eng_maintain themselves */
}

static inline eng_db *tu_open(const char *dir)
{
	eng_config cfg;
	tu_config(&cfg, dir);
	eng_db *db = NULL;
	assert_int_equal(eng_open(&cfg, &db), 0);
	return db;
}

typedef struct tu_done {
	int finished;
	eng_append_result res;
} tu_done;

static inline void tu_on_done(void *ctx, const eng_append_result *res)
{
	tu_done *d = ctx;
	d->res = *res;
	d->finished = 1;
}

/* Wait until @d completed, polling the engine's notify fd as a host loop would. */
static inline void tu_wait(eng_db *db, tu_done *d)
{
	while (!d->finished) {
		struct pollfd p = {.fd = eng_notify_fd(db), .events = POLLIN};
		poll(&p, 1, 1000);
		eng_poll_completions(db);
	}
}

/* Append @n messages synchronously; returns the result code (enqueue or completion). */
static inline int tu_append_n(eng_db *db, const char *topic, const eng_msg_in *m, size_t n,
			      uint64_t expect, eng_append_result *out)
{
	tu_done d = {0};
	int rc = eng_append(db, topic, m, n, expect, tu_on_done, &d);
	if (rc)
		return rc;
	tu_wait(db, &d);
	if (out)
		*out = d.res;
	return d.res.rc;
}

static inline int tu_append(eng_db *db, const char *topic, const char *event, const char *data,
			    uint64_t *offset)
{
	eng_msg_in m = {.event = event, .data = data, .len = strlen(data)};
	eng_append_result r;
	int rc = tu_append_n(db, topic, &m, 1, ENG_NO_EXPECT, &r);
	if (!rc && offset)
		*offset = r.first_offset;
	return rc;
}

/* Read one message at @off and check its bytes. */
static inline void tu_expect_msg(eng_db *db, const char *topic, uint64_t off, const char *event,
				 const char *data)
{
	eng_read_result rr;
	assert_int_equal(eng_read(db, topic, off, 1, 1 << 20, &rr), 0);
	assert_int_equal(rr.n, 1);
	assert_int_equal(rr.msgs[0].offset, off);
	assert_string_equal(rr.msgs[0].event, event);
	assert_int_equal(rr.msgs[0].len, strlen(data));
	assert_memory_equal(rr.msgs[0].data, data, strlen(data));
	eng_read_free(&rr);
}
#endif
