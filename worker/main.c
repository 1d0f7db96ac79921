/*
 * main.c - litegate-worker: options, the session slots that pop prompts and answer them, and the
 * graceful shutdown.
 *
 * Threads: main (setup, then joins), one signal thread (sigtimedwait; every other thread blocks
 * SIGINT and SIGTERM), and --concurrency slot threads. A slot pops one prompt at a time through the
 * pull API (pull.c), answers it as a turn (turn.c, which adds its own watcher and upstream threads),
 * then acknowledges it; the gateway's max_inflight_per_topic = 1 keeps one session's prompts in
 * order across slots and workers.
 *
 * Shutdown: the first SIGINT/SIGTERM stops popping (a waiting pop is cut at once) and gives the
 * turns in progress --grace-ms to finish; turns still running then, or at a second signal, stop
 * without an end message and their prompts are handed back (nack) for another worker, which
 * resumes the demo model's answer where it stopped. Exit status 0.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "demo_model.h"
#include "gwtoken.h"
#include "history.h"
#include "http.h"
#include "log.h"
#include "pull.h"
#include "turn.h"
#include "xalloc.h"

#define POP_WAIT_MS 20000
#define NOAPI_RETRY_MS 5000
#define DOWN_RETRY_MS 1000

struct opts {
	const char *gateway;
	const char *group;
	const char *parent;
	unsigned concurrency;
	const char *model; /* NULL: not given */
	double tokens_per_second;
	uint64_t seed;
	const char *upstream;
	const char *api_key_env;
	const char *token_file; /* --token-file: the gateway's bearer token */
	unsigned invisible_ms;
	unsigned max_deliveries;
	unsigned grace_ms;
	size_t context_bytes;
	const char *answer;     /* --answer TOPIC@OFFSET */
	const char *demo_print; /* --demo-print TEXT */
};

/* A session slot: one prompt at a time. */
struct slot {
	unsigned idx;
	pthread_t thr;
	pthread_mutex_t mu;   /* guards turn, read by the signal thread */
	struct wk_turn *turn; /* the turn in progress, or NULL */
};

static struct opts o = {
	.gateway = "http://127.0.0.1:8080",
	.group = "workers",
	.parent = "chatbot",
	.concurrency = 1,
	.tokens_per_second = 20,
	.invisible_ms = 120000,
	.max_deliveries = 5,
	.grace_ms = 5000,
	.context_bytes = 32768,
};
static char *gateway;                /* o.gateway without a trailing slash */
static struct wk_turn_cfg turn_cfg;
static struct slot *slots;
static unsigned n_slots;
static struct wk_stop drain_stop;    /* fired by the first signal: no more pops */
static atomic_int hard_stop;         /* grace over: abort the turns in progress */
static atomic_int exiting;           /* main is done: the signal thread returns */

/* ---- Options ------------------------------------------------------------------------------------ */

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: litegate-worker [--gateway URL] [--group NAME] [--concurrency N]\n"
		"                       [--model demo|NAME] [--tokens-per-second N] [--seed N]\n"
		"                       [--upstream URL] [--api-key-env VAR]\n"
		"  --gateway URL          the litegate gateway (default http://127.0.0.1:8080)\n"
		"  --group NAME           the consumer group to pop prompts in (default workers)\n"
		"  --parent NAME          the parent whose topics are sessions (default chatbot)\n"
		"  --concurrency N        sessions answered at once (default 1)\n"
		"  --model demo|NAME      demo: the built-in deterministic model (default); with\n"
		"                         --upstream, the model name sent upstream\n"
		"  --tokens-per-second N  demo pacing (default 20; 0 = unpaced)\n"
		"  --seed N               demo seed (default 0)\n"
		"  --upstream URL         an OpenAI-compatible server (base URL or .../chat/completions)\n"
		"  --api-key-env VAR      send $VAR as the upstream's Bearer token\n"
		"  --token-file FILE      a JWT for a gateway with auth.mode \"jwt\" (needs consume\n"
		"                         on the group, publish and subscribe on the sessions, admin\n"
		"                         to create the group); read again when the file changes.\n"
		"                         Without it, $LITEGATE_TOKEN if set\n"
		"  --invisible-ms N       group setting: redeliver a prompt unacknowledged this long\n"
		"                         (default 120000)\n"
		"  --max-deliveries N     group setting (default 5)\n"
		"  --grace-ms N           at SIGINT/SIGTERM, time turns get to finish (default 5000)\n"
		"  --context-bytes N      upstream: earlier conversation sent, at most (default 32768)\n"
		"  --answer TOPIC@OFFSET  answer that one prompt without the pull API, then exit\n"
		"  --demo-print TEXT      print the demo model's answer to TEXT (with --seed) and exit\n"
		"  --log-level LEVEL      error, warn, info (default) or debug\n");
}

static int
parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!*s || *s == '-' || *s == '+' || *s == ' ')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return -1;
	*out = (uint64_t)v;
	return 0;
}

static int
parse_opts(int argc, char **argv)
{
	enum {
		O_GATEWAY = 256, O_GROUP, O_PARENT, O_CONC, O_MODEL, O_TPS, O_SEED, O_UPSTREAM, O_KEYENV,
		O_INVIS, O_MAXDEL, O_GRACE, O_CTX, O_ANSWER, O_DEMOPRINT, O_LOGLEVEL, O_HELP, O_TOKENFILE,
	};
	static const struct option longopts[] = {
		{ "gateway", required_argument, NULL, O_GATEWAY },
		{ "group", required_argument, NULL, O_GROUP },
		{ "parent", required_argument, NULL, O_PARENT },
		{ "concurrency", required_argument, NULL, O_CONC },
		{ "model", required_argument, NULL, O_MODEL },
		{ "tokens-per-second", required_argument, NULL, O_TPS },
		{ "seed", required_argument, NULL, O_SEED },
		{ "upstream", required_argument, NULL, O_UPSTREAM },
		{ "api-key-env", required_argument, NULL, O_KEYENV },
		{ "token-file", required_argument, NULL, O_TOKENFILE },
		{ "invisible-ms", required_argument, NULL, O_INVIS },
		{ "max-deliveries", required_argument, NULL, O_MAXDEL },
		{ "grace-ms", required_argument, NULL, O_GRACE },
		{ "context-bytes", required_argument, NULL, O_CTX },
		{ "answer", required_argument, NULL, O_ANSWER },
		{ "demo-print", required_argument, NULL, O_DEMOPRINT },
		{ "log-level", required_argument, NULL, O_LOGLEVEL },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	uint64_t v;
	char *end;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case O_GATEWAY:
			o.gateway = optarg;
			break;
		case O_GROUP:
			o.group = optarg;
			break;
		case O_PARENT:
			o.parent = optarg;
			break;
		case O_CONC:
			if (parse_u64(optarg, 1024, &v) || v < 1)
				goto bad;
			o.concurrency = (unsigned)v;
			break;
		case O_MODEL:
			o.model = optarg;
			break;
		case O_TPS:
			errno = 0;
			o.tokens_per_second = strtod(optarg, &end);
			if (errno || *end || !(o.tokens_per_second >= 0 && o.tokens_per_second <= 1e6))
				goto bad;
			break;
		case O_SEED:
			if (parse_u64(optarg, UINT64_MAX, &o.seed))
				goto bad;
			break;
		case O_UPSTREAM:
			o.upstream = optarg;
			break;
		case O_KEYENV:
			o.api_key_env = optarg;
			break;
		case O_TOKENFILE:
			o.token_file = optarg;
			break;
		case O_INVIS:
			if (parse_u64(optarg, 86400000, &v) || v < 1000)
				goto bad;
			o.invisible_ms = (unsigned)v;
			break;
		case O_MAXDEL:
			if (parse_u64(optarg, 1000, &v) || v < 1)
				goto bad;
			o.max_deliveries = (unsigned)v;
			break;
		case O_GRACE:
			if (parse_u64(optarg, 3600000, &v))
				goto bad;
			o.grace_ms = (unsigned)v;
			break;
		case O_CTX:
			if (parse_u64(optarg, 64u << 20, &v))
				goto bad;
			o.context_bytes = (size_t)v;
			break;
		case O_ANSWER:
			o.answer = optarg;
			break;
		case O_DEMOPRINT:
			o.demo_print = optarg;
			break;
		case O_LOGLEVEL:
			if (wk_log_level_parse(optarg, &wk_log_level))
				goto bad;
			break;
		case O_HELP:
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "litegate-worker: unexpected argument %s\n", argv[optind]);
		return -1;
	}
	if (!o.upstream && o.model && strcmp(o.model, "demo")) {
		fprintf(stderr, "litegate-worker: --model %s needs --upstream (only \"demo\" is built in)\n",
			o.model);
		return -1;
	}
	if (o.upstream && strncmp(o.upstream, "http://", 7) && strncmp(o.upstream, "https://", 8)) {
		fprintf(stderr, "litegate-worker: --upstream must be an http:// or https:// URL\n");
		return -1;
	}
	if (strncmp(o.gateway, "http://", 7) && strncmp(o.gateway, "https://", 8)) {
		fprintf(stderr, "litegate-worker: --gateway must be an http:// or https:// URL\n");
		return -1;
	}
	if (!wk_pull_group_name_ok(o.group)) {
		fprintf(stderr, "litegate-worker: --group must be 1 to 64 of [A-Za-z0-9_.:-], not "
				"starting with '.'\n");
		return -1;
	}
	return 0;
bad:
	fprintf(stderr, "litegate-worker: bad value for --%s: %s\n", longopts[c - O_GATEWAY].name,
		optarg);
	return -1;
}

/* ---- Signals ------------------------------------------------------------------------------------ */

static void
abort_turns(void)
{
	for (unsigned i = 0; i < n_slots; i++) {
		pthread_mutex_lock(&slots[i].mu);
		if (slots[i].turn)
			wk_turn_abort(slots[i].turn);
		pthread_mutex_unlock(&slots[i].mu);
	}
}

static void *
signal_main(void *arg)
{
	sigset_t set;
	uint64_t grace_end = 0;
	int signals = 0;

	(void)arg;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	while (!atomic_load(&exiting)) {
		struct timespec ts = { 0, 50 * 1000000L };
		int sig = sigtimedwait(&set, NULL, &ts);

		if (sig == SIGINT || sig == SIGTERM) {
			if (++signals == 1) {
				LOG_INFO("%s: finishing the turns in progress (up to %u ms), popping no more",
					 sig == SIGINT ? "SIGINT" : "SIGTERM", o.grace_ms);
				grace_end = wk_mono_ns() + (uint64_t)o.grace_ms * 1000000u;
				wk_stop_fire(&drain_stop);
			} else if (!atomic_load(&hard_stop)) {
				LOG_INFO("second signal: stopping the turns in progress now");
				atomic_store(&hard_stop, 1);
			}
		}
		if (signals && !atomic_load(&hard_stop) && wk_mono_ns() >= grace_end) {
			LOG_INFO("grace over: stopping the turns in progress");
			atomic_store(&hard_stop, 1);
		}
		/* Every tick while stopping: a slot may have registered a turn just now. */
		if (atomic_load(&hard_stop))
			abort_turns();
	}
	return NULL;
}

/* ---- Turns -------------------------------------------------------------------------------------- */

/* Answer one prompt in @p s. */
static enum wk_turn_result
answer(struct slot *s, const char *topic, uint64_t off, json_t *data)
{
	char *text = wk_prompt_text(data);
	struct wk_turn *t = wk_turn_new(&turn_cfg, topic, off, text);
	enum wk_turn_result res;

	free(text);
	pthread_mutex_lock(&s->mu);
	s->turn = t;
	pthread_mutex_unlock(&s->mu);
	if (atomic_load(&hard_stop))
		wk_turn_abort(t);
	res = wk_turn_run(t);
	pthread_mutex_lock(&s->mu);
	s->turn = NULL;
	pthread_mutex_unlock(&s->mu);
	wk_turn_free(t);
	return res;
}

static void
settle(const struct wk_pull_msg *m, int ack)
{
	const char *r = m->receipt;
	/* Not under drain_stop: settling is what a clean shutdown is for. */
	int rc = ack ? wk_pull_ack(gateway, o.group, &r, 1, NULL)
		     : wk_pull_nack(gateway, o.group, &r, 1, NULL);

	if (rc)
		LOG_WARN("%s %s@%" PRIu64 ": %s (it will be redelivered after invisible_ms)",
			 ack ? "ack" : "nack", m->topic ? m->topic : "?", m->offset, wk_strerror(rc));
}

static void
handle(struct slot *s, const struct wk_pull_msg *m)
{
	enum wk_turn_result res;

	if (m->bad) {
		LOG_WARN("a popped message with malformed members; acknowledging it away");
		settle(m, 1);
		return;
	}
	if (strcmp(m->event, "prompt")) {
		/* A cancel is acted on by the turn's watcher while the turn runs; popped later, it is
		 * a Stop that came too late, or for a turn already over. */
		LOG_DEBUG("%s@%" PRIu64 ": %s popped, nothing to do", m->topic, m->offset, m->event);
		settle(m, 1);
		return;
	}
	LOG_INFO("%s@%" PRIu64 ": prompt (delivery %u) in slot %u", m->topic, m->offset, m->delivery,
		 s->idx);
	res = answer(s, m->topic, m->offset, m->data);
	settle(m, res == WK_TURN_ENDED);
}

static void *
slot_main(void *arg)
{
	struct slot *s = arg;
	int quiet = 0;

	while (!wk_stop_fired(&drain_stop)) {
		struct wk_pull_msg *msgs = NULL;
		size_t n = 0;
		int rc = wk_pull_pop(gateway, o.group, 1, POP_WAIT_MS, &drain_stop, &msgs, &n);

		if (rc == WK_ESTOPPED)
			break;
		if (rc) {
			if (!quiet++)
				LOG_WARN("pop: %s; retrying", wk_strerror(rc));
			wk_sleep_ms(rc == WK_ENOAPI ? NOAPI_RETRY_MS : DOWN_RETRY_MS, &drain_stop);
			continue;
		}
		quiet = 0;
		for (size_t i = 0; i < n; i++)
			handle(s, &msgs[i]);
		wk_pull_msgs_free(msgs, n);
	}
	return NULL;
}

/* Create the group, waiting for the gateway (and its pull API) as long as it takes. */
static int
group_setup(void)
{
	static const char *const events[] = { "prompt", "cancel" };
	const struct wk_group_def def = {
		.parent = o.parent,
		.events = events,
		.n_events = 2,
		.max_inflight_per_topic = 1,
		.invisible_ms = o.invisible_ms,
		.max_deliveries = o.max_deliveries,
	};
	int last = WK_OK;

	for (;;) {
		int rc = wk_pull_group_put(gateway, o.group, &def, &drain_stop);

		if (rc == WK_OK) {
			LOG_INFO("group %s on %s ready (parent %s, prompts and cancels)", o.group, gateway,
				 o.parent);
			return 0;
		}
		if (rc == WK_ESTOPPED)
			return -1;
		if (rc != last) {
			if (rc == WK_ENOAPI)
				LOG_WARN("%s has no pull API yet (PUT /v1/groups/%s: 404); retrying every "
					 "%u s",
					 gateway, o.group, NOAPI_RETRY_MS / 1000);
			else
				LOG_WARN("group %s on %s: %s; retrying", o.group, gateway, wk_strerror(rc));
		}
		last = rc;
		if (wk_sleep_ms(rc == WK_ENOAPI ? NOAPI_RETRY_MS : DOWN_RETRY_MS, &drain_stop))
			return -1;
	}
}

/* --answer TOPIC@OFFSET: one turn, no pull API. @return the exit status. */
static int
answer_one(struct slot *s)
{
	const char *at = strrchr(o.answer, '@');
	char *topic, *event = NULL;
	json_t *data = NULL;
	uint64_t off;
	int rc;

	if (!at || at == o.answer || parse_u64(at + 1, UINT64_MAX, &off)) {
		fprintf(stderr, "litegate-worker: --answer wants TOPIC@OFFSET, e.g. chatbot/s1@0\n");
		return 2;
	}
	topic = xstrndup(o.answer, (size_t)(at - o.answer));
	rc = wk_history_get(gateway, topic, off, &drain_stop, &event, &data);
	if (rc) {
		LOG_ERR("%s@%" PRIu64 ": %s", topic, off,
			rc == WK_ENOAPI ? "no such message" : wk_strerror(rc));
		free(topic);
		return 1;
	}
	if (strcmp(event, "prompt")) {
		LOG_ERR("%s@%" PRIu64 " is a %s message, not a prompt", topic, off, event);
		rc = 1;
	} else {
		switch (answer(s, topic, off, data)) {
		case WK_TURN_ENDED:
			rc = 0;
			break;
		case WK_TURN_ABORTED:
			rc = 3;
			break;
		default:
			rc = 1;
		}
	}
	free(event);
	json_decref(data);
	free(topic);
	return rc;
}

int
main(int argc, char **argv)
{
	pthread_t sig_thr;
	sigset_t set;
	char *api_key = NULL;
	size_t n;
	int status = 0;

	if (parse_opts(argc, argv))
		return 2;
	if (o.demo_print) {
		struct wk_demo_answer a;

		wk_demo_generate(o.demo_print, strlen(o.demo_print), o.seed, &a);
		printf("%s\n", a.text);
		wk_demo_answer_free(&a);
		return 0;
	}
	if (o.api_key_env) {
		const char *k = getenv(o.api_key_env);

		if (!k || !*k) {
			fprintf(stderr, "litegate-worker: --api-key-env %s: the variable is not set\n",
				o.api_key_env);
			return 2;
		}
		api_key = xstrdup(k);
	}
	{
		char err[300];

		if (wk_gwtoken_init(o.token_file, err, sizeof(err))) {
			fprintf(stderr, "litegate-worker: %s\n", err);
			return 2;
		}
	}
	n = strlen(o.gateway);
	while (n && o.gateway[n - 1] == '/')
		n--;
	gateway = xstrndup(o.gateway, n);
	turn_cfg.gateway = gateway;
	turn_cfg.demo = !o.upstream;
	turn_cfg.tokens_per_second = o.tokens_per_second;
	turn_cfg.seed = o.seed;
	turn_cfg.upstream.url = o.upstream;
	turn_cfg.upstream.model = o.model;
	turn_cfg.upstream.api_key = api_key;
	turn_cfg.context_bytes = o.context_bytes;
	turn_cfg.reply_timeout_ms = 10000;

	/* Signals go to the signal thread only; libcurl and OpenSSL must not die of SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (wk_http_global_init()) {
		fprintf(stderr, "litegate-worker: curl_global_init failed\n");
		return 1;
	}
	wk_stop_init(&drain_stop);
	n_slots = o.answer ? 1 : o.concurrency;
	slots = xcalloc(n_slots, sizeof(*slots));
	for (unsigned i = 0; i < n_slots; i++) {
		slots[i].idx = i;
		pthread_mutex_init(&slots[i].mu, NULL);
	}
	if (pthread_create(&sig_thr, NULL, signal_main, NULL))
		xalloc_oom(0);

	if (o.answer) {
		status = answer_one(&slots[0]);
	} else {
		LOG_INFO("litegate-worker: %s model, %u session(s) at once, gateway %s, group %s",
			 o.upstream ? "upstream" : "demo", o.concurrency, gateway, o.group);
		if (group_setup() == 0) {
			for (unsigned i = 0; i < n_slots; i++)
				if (pthread_create(&slots[i].thr, NULL, slot_main, &slots[i]))
					xalloc_oom(0);
			for (unsigned i = 0; i < n_slots; i++)
				pthread_join(slots[i].thr, NULL);
		}
		LOG_INFO("stopped");
	}

	atomic_store(&exiting, 1);
	pthread_join(sig_thr, NULL);
	for (unsigned i = 0; i < n_slots; i++)
		pthread_mutex_destroy(&slots[i].mu);
	free(slots);
	wk_stop_destroy(&drain_stop);
	free(gateway);
	free(api_key);
	wk_http_global_cleanup();
	wk_gwtoken_cleanup();
	return status;
}
