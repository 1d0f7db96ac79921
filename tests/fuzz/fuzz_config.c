/*
 * fuzz_config.c - libFuzzer target for the config file loader (gateway/config.c, jansson): the
 * text of a config file applied on top of the defaults, as --config does.
 *
 * Input: the file's bytes. Invariants checked:
 *  - a refused file gives a non-empty message naming the problem;
 *  - an accepted one leaves a config the server can run with: listen host and port, a data dir,
 *    one or more distinct parents whose names the engine accepts, origins without CR, LF or space,
 *    and no zero where the server divides by, loops on or sizes a buffer by the value;
 *  - applying the same text again on top of the result gives the same outcome (same message when
 *    refused, the same config when accepted): every replaced string and array is freed and
 *    rebuilt, so this also runs the replace paths under LeakSanitizer.
 */
#include <string.h>

#include <engine.h>

#include "buf.h"
#include "config.h"
#include "fuzz.h"
#include "names.h"

static void
check_valid(const struct gw_config *c)
{
	FUZZ_CHECK(c->listen_host && c->listen_host[0]);
	FUZZ_CHECK(c->listen_port >= 1 && c->listen_port <= 65535);
	FUZZ_CHECK(c->data_dir && c->data_dir[0]);
	FUZZ_CHECK(!c->static_root || c->static_root[0]);
	FUZZ_CHECK(c->log_level >= 0 && c->log_level <= 3);
	FUZZ_CHECK(c->durability == ENG_DURABLE_FSYNC || c->durability == ENG_DURABLE_INTERVAL ||
		   c->durability == ENG_DURABLE_NONE);
	FUZZ_CHECK(c->n_parents >= 1 && c->parents);
	for (size_t i = 0; i < c->n_parents; i++) {
		const struct gw_parent_conf *p = &c->parents[i];

		FUZZ_CHECK(p->name && names_parent_check(p->name, strlen(p->name)) == 0);
		FUZZ_CHECK(gw_config_parent(c, p->name, strlen(p->name)) == p); /* distinct */
		FUZZ_CHECK(p->max_message_bytes >= 1 && p->max_message_bytes <= 16u << 20);
		FUZZ_CHECK(p->idle_ttl_s >= 1 && p->priority <= 9);
	}
	for (size_t i = 0; i < c->n_cors_origins; i++)
		FUZZ_CHECK(c->cors_origins[i] && c->cors_origins[i][0] &&
			   !strpbrk(c->cors_origins[i], "\r\n "));
	FUZZ_CHECK(c->fsync_interval_ms && c->heartbeat_s && c->segment_bytes && c->retention_s);
	FUZZ_CHECK(c->queue_max_bytes && c->max_unsent_bytes && c->max_body_bytes);
	FUZZ_CHECK(c->max_line_bytes);
	FUZZ_CHECK(c->max_batch && c->max_ws_message_bytes && c->max_ws_topics && c->history_max);
	FUZZ_CHECK(c->history_max_bytes && c->max_fds && c->max_header_pool);
	FUZZ_CHECK(c->keepalive_s && c->body_timeout_s && c->stall_timeout_s);
}

/* Every field as text, to compare two configs. */
static void
dump(const struct gw_config *c, struct gw_buf *b)
{
	gw_buf_printf(b, "%s|%d|%s|%s|%d|%d|%u|%llu|%llu|%llu|%llu|", c->listen_host,
		      c->listen_port, c->data_dir, c->static_root ? c->static_root : "(null)",
		      c->log_level, (int)c->durability, c->fsync_interval_ms,
		      (unsigned long long)c->segment_bytes, (unsigned long long)c->retention_s,
		      (unsigned long long)c->log_max_bytes, (unsigned long long)c->queue_max_bytes);
	for (size_t i = 0; i < c->n_parents; i++)
		gw_buf_printf(b, "%s,%u,%llu,%llu,%u;", c->parents[i].name,
			      c->parents[i].max_message_bytes,
			      (unsigned long long)c->parents[i].idle_ttl_s,
			      (unsigned long long)c->parents[i].max_retained,
			      c->parents[i].priority);
	for (size_t i = 0; i < c->n_cors_origins; i++)
		gw_buf_printf(b, "%s;", c->cors_origins[i]);
	gw_buf_printf(b, "|%d|%u|%u|%zu|%zu|%zu|%zu|%zu|%zu|%zu|%zu|%u|%u|%u|%u|%u|%u|%llu|%llu|%u",
		      c->security_headers, c->heartbeat_s, c->sse_retry_ms, c->max_unsent_bytes,
		      c->max_body_bytes, c->max_line_bytes, c->max_batch, c->max_ws_message_bytes,
		      c->max_ws_topics, c->history_max, c->history_max_bytes, c->max_fds,
		      c->max_header_pool, c->keepalive_s, c->body_timeout_s, c->stall_timeout_s,
		      c->shutdown_grace_s, (unsigned long long)c->fail_write_after,
		      (unsigned long long)c->fail_fsync_after, c->fail_errno);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gw_config cfg;
	char err[512], err2[512];
	int rc, rc2;
	struct gw_buf d1, d2;

	gw_config_defaults(&cfg);
	err[0] = '\0';
	rc = gw_config_apply_json(&cfg, (const char *)data, size, err, sizeof(err));
	FUZZ_CHECK(rc == 0 || rc == -1);
	if (rc)
		FUZZ_CHECK(err[0] && strnlen(err, sizeof(err)) < sizeof(err));
	else
		check_valid(&cfg);

	gw_buf_init(&d1, 0);
	gw_buf_init(&d2, 0);
	dump(&cfg, &d1);
	err2[0] = '\0';
	rc2 = gw_config_apply_json(&cfg, (const char *)data, size, err2, sizeof(err2));
	FUZZ_CHECK(rc2 == rc);
	if (rc) {
		FUZZ_CHECK(!strcmp(err, err2));
	} else {
		dump(&cfg, &d2);
		FUZZ_CHECK(d1.len == d2.len &&
			   fuzz_mem_eq(gw_buf_data(&d1), gw_buf_data(&d2), d1.len));
	}
	gw_buf_free(&d1);
	gw_buf_free(&d2);
	gw_config_free(&cfg);
	return 0;
}
