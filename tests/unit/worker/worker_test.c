/*
 * worker_test.c - litegate-worker's pure parts: the demo model (worker/demo_model.c), the SSE
 * parser (worker/sse.c), the chat context built from a topic's events (worker/history.c) and the
 * NDJSON publish line (worker/turn.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "demo_model.h"
#include "history.h"
#include "sse.h"
#include "turn.h"

/* The demo answers to "How do durable logs work?" for seeds 0 and 42. */
#define GOLDEN_0 \
	"Good question about durable. " \
	"A simple way to picture durable is as a stream of small pieces that arrive in order. " \
	"If something looks wrong, check work first, since it is the usual suspect. " \
	"It helps to write down what you expect from durable before you measure it. " \
	"Nothing here needs special tools; patience with logs goes a long way. " \
	"That is the gist of it."
#define GOLDEN_42 \
	"Let us look at durable step by step. " \
	"In short, durable depends on how logs is set up. " \
	"Most people start with logs and only later think about work. " \
	"A simple way to picture durable is as a stream of small pieces that arrive in order. " \
	"If something looks wrong, check work first, since it is the usual suspect. " \
	"That is the gist of it."

/* ---- Demo model --------------------------------------------------------------------------------- */

static char *
joined(const struct wk_demo_answer *a)
{
	char *s = calloc(1, a->len + 1);

	for (size_t i = 0; i < a->n_tokens; i++) {
		size_t n;
		const char *t = wk_demo_token(a, i, &n);

		strncat(s, t, n);
	}
	return s;
}

static void
test_demo_golden(void **state)
{
	struct wk_demo_answer a;
	char *s;

	(void)state;
	/* The exact text is the contract the integration and browser tests rely on: if this changes,
	 * tests/integration/test_worker.py's port must change with it. */
	wk_demo_generate("How do durable logs work?", 25, 0, &a);
	assert_string_equal(a.text, GOLDEN_0);
	s = joined(&a);
	assert_string_equal(s, a.text);
	free(s);
	wk_demo_answer_free(&a);

	wk_demo_generate("How do durable logs work?", 25, 42, &a);
	assert_string_equal(a.text, GOLDEN_42);
	wk_demo_answer_free(&a);
}

static void
test_demo_deterministic(void **state)
{
	struct wk_demo_answer a, b, c;

	(void)state;
	wk_demo_generate("Tell me about streaming tokens", 30, 7, &a);
	wk_demo_generate("Tell me about streaming tokens", 30, 7, &b);
	assert_string_equal(a.text, b.text);
	assert_int_equal(a.n_tokens, b.n_tokens);
	/* Other seeds give other answers (these two are known to differ). */
	wk_demo_generate("Tell me about streaming tokens", 30, 8, &c);
	assert_string_not_equal(a.text, c.text);
	/* The prompt's keywords are in the answer. */
	assert_non_null(strstr(a.text, "streaming"));
	wk_demo_answer_free(&a);
	wk_demo_answer_free(&b);
	wk_demo_answer_free(&c);
}

static void
test_demo_tokens(void **state)
{
	static const char *const prompts[] = { "", "x", "Ünïcödé wörds everywhere, ÄÖÜ!",
					       "  many    spaces  between   words  ", "a\nb\tc" };

	(void)state;
	for (size_t p = 0; p < sizeof(prompts) / sizeof(prompts[0]); p++) {
		for (uint64_t seed = 0; seed < 50; seed++) {
			struct wk_demo_answer a;
			char *s;

			wk_demo_generate(prompts[p], strlen(prompts[p]), seed, &a);
			assert_true(a.n_tokens >= 10);
			assert_int_equal(a.len, strlen(a.text));
			/* Every token is non-empty; every one but the first starts with its space. */
			for (size_t i = 0; i < a.n_tokens; i++) {
				size_t n;
				const char *t = wk_demo_token(&a, i, &n);

				assert_true(n > 0);
				assert_true(i == 0 ? t[0] != ' ' : t[0] == ' ');
				assert_null(memchr(t + 1, ' ', n - 1));
			}
			/* It ends with a period and does not start with a lowercase ASCII letter
			 * (a keyword opening it is capitalized; non-ASCII ones stay as written). */
			assert_true(a.text[a.len - 1] == '.');
			assert_false(a.text[0] >= 'a' && a.text[0] <= 'z');
			s = joined(&a);
			assert_string_equal(s, a.text);
			free(s);
			wk_demo_answer_free(&a);
		}
	}
}

static void
test_demo_utf8_kept_whole(void **state)
{
	struct wk_demo_answer a;
	json_t *j;

	(void)state;
	wk_demo_generate("Ünïcödé wörds", strlen("Ünïcödé wörds"), 3, &a);
	/* The keywords are whole UTF-8 words; the text stays valid UTF-8 (jansson checks). */
	assert_non_null(strstr(a.text, "Ünïcödé") ? strstr(a.text, "Ünïcödé") : strstr(a.text, "ünïcödé"));
	j = json_stringn(a.text, a.len);
	assert_non_null(j);
	json_decref(j);
	wk_demo_answer_free(&a);
}

/* ---- SSE parser --------------------------------------------------------------------------------- */

struct seen {
	char ev[16][64];
	char data[16][256];
	char id[16][32];
	int n;
};

static int
collect(void *ctx, const struct wk_sse_event *ev)
{
	struct seen *s = ctx;

	snprintf(s->ev[s->n], sizeof(s->ev[0]), "%s", ev->event);
	snprintf(s->data[s->n], sizeof(s->data[0]), "%s", ev->data);
	snprintf(s->id[s->n], sizeof(s->id[0]), "%s", ev->id);
	s->n++;
	return 0;
}

static void
feed_bytewise(const char *text, struct seen *out)
{
	struct wk_sse p;

	wk_sse_init(&p, 1024);
	for (size_t i = 0; text[i]; i++)
		assert_int_equal(wk_sse_feed(&p, text + i, 1, collect, out), 0);
	wk_sse_free(&p);
}

static void
test_sse_fields(void **state)
{
	static const char stream[] = ": heartbeat\n"
				     "retry: 500\n\n"
				     "id: 7\nevent: token\ndata: \"a\"\n\n"
				     "id: 8\r\nevent: cancel\r\ndata: {\"prompt_offset\":3}\r\n\r\n"
				     "data: line1\rdata: line2\r\r"
				     "data:nospace\n\n"
				     "id:\nevent: reset\ndata: {}\n\n";
	struct seen a = { 0 }, b = { 0 };
	struct wk_sse p;

	(void)state;
	/* Whole, and one byte at a time (CRLF split across feeds), give the same events. */
	wk_sse_init(&p, 1024);
	assert_int_equal(wk_sse_feed(&p, stream, strlen(stream), collect, &a), 0);
	wk_sse_free(&p);
	feed_bytewise(stream, &b);
	assert_int_equal(a.n, 5);
	assert_int_equal(b.n, 5);
	for (int i = 0; i < a.n; i++) {
		assert_string_equal(a.ev[i], b.ev[i]);
		assert_string_equal(a.data[i], b.data[i]);
		assert_string_equal(a.id[i], b.id[i]);
	}
	assert_string_equal(a.ev[0], "token");
	assert_string_equal(a.data[0], "\"a\"");
	assert_string_equal(a.id[0], "7");
	assert_string_equal(a.ev[1], "cancel");
	assert_string_equal(a.data[1], "{\"prompt_offset\":3}");
	assert_string_equal(a.id[1], "8");
	assert_string_equal(a.ev[2], "message");
	assert_string_equal(a.data[2], "line1\nline2");
	assert_string_equal(a.id[2], "8"); /* the last id persists */
	assert_string_equal(a.data[3], "nospace");
	assert_string_equal(a.ev[4], "reset");
	assert_string_equal(a.id[4], "");
}

static void
test_sse_openai_chunks(void **state)
{
	static const char stream[] =
		"data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n"
		"data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n"
		"data: [DONE]\n\n";
	struct seen a = { 0 };

	(void)state;
	feed_bytewise(stream, &a);
	assert_int_equal(a.n, 3);
	assert_string_equal(a.data[2], "[DONE]");
}

static int
stop_at_first(void *ctx, const struct wk_sse_event *ev)
{
	(void)ev;
	++*(int *)ctx;
	return 9;
}

static void
test_sse_limits_and_stop(void **state)
{
	struct wk_sse p;
	char big[200];
	int calls = 0;

	(void)state;
	memset(big, 'x', sizeof(big));
	wk_sse_init(&p, 100);
	assert_int_equal(wk_sse_feed(&p, "data: ", 6, collect, NULL), 0);
	assert_int_equal(wk_sse_feed(&p, big, sizeof(big), collect, NULL), -1);
	wk_sse_free(&p);

	wk_sse_init(&p, 100);
	assert_int_equal(wk_sse_feed(&p, "data: a\n\ndata: b\n\n", 18, stop_at_first, &calls), 9);
	assert_int_equal(calls, 1);
	wk_sse_free(&p);
}

/* ---- Context ------------------------------------------------------------------------------------ */

static void
add(struct wk_ctx *c, const char *event, const char *data_json)
{
	json_t *d = json_loads(data_json, JSON_DECODE_ANY, NULL);

	assert_non_null(d);
	wk_ctx_add(c, event, d);
	json_decref(d);
}

static void
test_context_turns(void **state)
{
	struct wk_ctx c;
	json_t *m;
	char *s;

	(void)state;
	wk_ctx_init(&c);
	add(&c, "prompt", "{\"text\":\"Hi\"}");
	add(&c, "token", "\"Hel\"");
	add(&c, "token", "\"lo\"");
	add(&c, "end", "{\"reason\":\"done\"}");
	add(&c, "prompt", "\"bare string prompt\"");
	add(&c, "token", "\"Part\"");
	add(&c, "cancel", "{\"prompt_offset\":4}");
	add(&c, "end", "{\"reason\":\"cancelled\"}");
	add(&c, "prompt", "{\"text\":\"no answer\"}"); /* a turn that never got an answer */
	m = wk_ctx_finish(&c, "Now?", 1 << 20);
	s = json_dumps(m, JSON_COMPACT);
	assert_string_equal(s, "[{\"role\":\"user\",\"content\":\"Hi\"},"
			       "{\"role\":\"assistant\",\"content\":\"Hello\"},"
			       "{\"role\":\"user\",\"content\":\"bare string prompt\"},"
			       "{\"role\":\"assistant\",\"content\":\"Part\"},"
			       "{\"role\":\"user\",\"content\":\"no answer\"},"
			       "{\"role\":\"user\",\"content\":\"Now?\"}]");
	free(s);
	json_decref(m);
	wk_ctx_free(&c);
}

static void
test_context_budget(void **state)
{
	struct wk_ctx c;
	json_t *m;
	char *s;

	(void)state;
	wk_ctx_init(&c);
	add(&c, "prompt", "{\"text\":\"0123456789\"}");
	add(&c, "token", "\"abcdefghij\"");
	add(&c, "end", "{}");
	add(&c, "prompt", "{\"text\":\"second\"}");
	add(&c, "token", "\"answer\"");
	/* 12 + 6 + 6 fit in 20? No: 3 (Now) + 6 + 6 = 15 fits, the 10-byte one does not; the kept part
	 * must start with a user message, so the lone assistant reply is dropped too. */
	m = wk_ctx_finish(&c, "Now", 20);
	s = json_dumps(m, JSON_COMPACT);
	assert_string_equal(s, "[{\"role\":\"user\",\"content\":\"second\"},"
			       "{\"role\":\"assistant\",\"content\":\"answer\"},"
			       "{\"role\":\"user\",\"content\":\"Now\"}]");
	free(s);
	json_decref(m);
	wk_ctx_free(&c);

	/* A prompt larger than the budget still goes, alone. */
	wk_ctx_init(&c);
	add(&c, "prompt", "{\"text\":\"old\"}");
	m = wk_ctx_finish(&c, "a very long prompt", 4);
	assert_int_equal(json_array_size(m), 1);
	json_decref(m);
	wk_ctx_free(&c);
}

static void
test_prompt_text(void **state)
{
	json_t *d;
	char *s;

	(void)state;
	d = json_loads("{\"text\":\"hi \\u00e9\"}", 0, NULL);
	s = wk_prompt_text(d);
	assert_string_equal(s, "hi \xc3\xa9");
	free(s);
	json_decref(d);
	d = json_loads("{\"other\":1}", 0, NULL);
	s = wk_prompt_text(d);
	assert_string_equal(s, "{\"other\":1}");
	free(s);
	json_decref(d);
}

/* ---- Publish lines ------------------------------------------------------------------------------ */

static void
test_ndjson_line(void **state)
{
	struct wk_buf b = { 0 };

	(void)state;
	/* docs/api.md: a message is {"event","data","id"}. */
	assert_string_equal(wk_turn_key_member(), "id");
	wk_turn_line(&b, "token", json_string(" say \"hi\"\n"), "12-3");
	assert_string_equal(b.p, "{\"event\":\"token\",\"data\":\" say \\\"hi\\\"\\n\",\"id\":\"12-3\"}\n");
	wk_buf_reset(&b);
	wk_turn_line(&b, "end", json_pack("{s:s}", "reason", "done"), "12-end");
	assert_string_equal(b.p, "{\"event\":\"end\",\"data\":{\"reason\":\"done\"},\"id\":\"12-end\"}\n");
	wk_buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_demo_golden),
		cmocka_unit_test(test_demo_deterministic),
		cmocka_unit_test(test_demo_tokens),
		cmocka_unit_test(test_demo_utf8_kept_whole),
		cmocka_unit_test(test_sse_fields),
		cmocka_unit_test(test_sse_openai_chunks),
		cmocka_unit_test(test_sse_limits_and_stop),
		cmocka_unit_test(test_context_turns),
		cmocka_unit_test(test_context_budget),
		cmocka_unit_test(test_prompt_text),
		cmocka_unit_test(test_ndjson_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
