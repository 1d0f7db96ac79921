/*
 * pop_bench.c - the pull API's benchmark (issue 4): pop throughput and publish-to-pop wake-up
 * latency of a consumer group over many sessions, from several threads on blocking keep-alive
 * HTTP/1.1 connections (benchlib's client).
 *
 *   pop_bench [--bin build/gateway/litegate | --url http://127.0.0.1:PORT --server-pid PID]
 *             [--sessions 10000] [--per-session 20] [--poppers 8] [--batch 32]
 *             [--wake 2000] [--wake-rate 500] [--durability fsync] [--only throughput|wake]
 *
 * With --bin it starts its own gateway (durability as given, temporary data dir, removed at the
 * end); with --url it uses a running one (topics and the group carry a tag new to the run).
 *
 * 1. Setup: a group on parent "chatbot" (events ["prompt"], max_inflight_per_topic 1), then every
 *    session gets --per-session prompts in one JSON-array publish (8 publisher threads).
 * 2. Throughput: --poppers threads each loop pop {"max":--batch,"wait_ms":200} + one ack of every
 *    receipt it got, until all prompts are acknowledged. Reported: messages popped and acked per
 *    second (first pop to last ack), request latencies, the gateway's and our own CPU. Every
 *    prompt's data names its session and sequence number: a prompt popped twice, out of its
 *    session's order, or never is counted (and fails the run).
 * 3. Wake-up: the poppers park in long polls (wait_ms 1000) on the idle, drained group; 4
 *    publisher threads publish one prompt per request to random sessions, paced to --wake-rate in
 *    total; a prompt's latency is from just before its publish request is sent to the moment the
 *    pop that returns it has its whole reply (one monotonic clock, one process). It therefore
 *    includes the publish's own durable append (group commit, fsync under "fsync").
 *
 * The first output line is the exact command; load averages are printed at start and end.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "benchlib.h"

#define PUBLISHERS 8      /* setup's publisher threads */
#define WAKE_PUBLISHERS 4 /* wake-up's paced publisher threads */
#define MAX_POPPERS 256

static struct opts {
	const char *bin, *url, *durability, *only, *label;
	uint32_t sessions, per_session, poppers, batch, wake, msg_size;
	double wake_rate, timeout_s;
	int server_pid, overlap_ack, redis_port;
} o = {
	.durability = "fsync", .label = "litegate", .sessions = 10000, .per_session = 20, .poppers = 8,
	.batch = 32, .wake = 2000, .msg_size = 32, .wake_rate = 500, .timeout_s = 300,
};

static struct {
	url base;
	char tag[16], group[64];
	char tmp[64];
	pid_t child;
	/* throughput */
	_Atomic uint64_t popped, acked, dup, reord, bad, errors, empty_pops;
	_Atomic uint32_t *next_seq; /* per session: the sequence number expected next */
	_Atomic uint8_t *seen;      /* per prompt */
	uint64_t total;
	/* wake-up */
	_Atomic uint64_t *sent_ns;  /* per wake-up prompt, 0 until sent */
	_Atomic uint64_t *pubdone_ns, *popdone_ns; /* its publish reply in, the pop reply that had it */
	_Atomic uint64_t wake_got, wake_dup, wake_stray;
	_Atomic int stop;
} g;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: pop_bench [--bin LITEGATE | --url http://127.0.0.1:PORT [--server-pid PID]] [options]\n"
		"  --bin PATH          start this litegate (temporary data dir, --durability) and stop it after\n"
		"  --url URL           use a running gateway instead\n"
		"  --server-pid PID    with --url: sample this process's CPU\n"
		"  --durability D      fsync | interval | none, for --bin (fsync)\n"
		"  --sessions N        sessions (lite topics chatbot/<tag>-<n>) (10000)\n"
		"  --per-session N     prompts per session for the throughput run (20)\n"
		"  --poppers N         concurrent popper threads, one connection each (8)\n"
		"  --batch N           pop max, and receipts per ack (32)\n"
		"  --wake N            wake-up samples (2000)\n"
		"  --wake-rate R       wake-up publishes per second, in total (500)\n"
		"  --msg-size B        bytes of data per prompt (32)\n"
		"  --overlap-ack       send each ack on a second connection and read its reply after the next\n"
		"                      pop (the popper does not wait for the offsets' fsync before popping again)\n"
		"  --redis-port P      instead: the same throughput loop on Redis Streams (one stream, one\n"
		"                      consumer group, XREADGROUP COUNT --batch + XACK) at 127.0.0.1:P\n"
		"  --only throughput|wake\n"
		"  --label NAME        label of the RESULT lines (litegate)\n");
}

/* ---- The gateway under test ---- */

static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
	socklen_t l = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || getsockname(fd, (struct sockaddr *)&a, &l))
		die("free port: %s", strerror(errno));
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static void start_gateway(void)
{
	char cfg[128], log[128], conf[1024], u[64];
	int port = free_port();

	snprintf(g.tmp, sizeof g.tmp, "/tmp/pop-bench-XXXXXX");
	if (!mkdtemp(g.tmp))
		die("mkdtemp: %s", strerror(errno));
	snprintf(cfg, sizeof cfg, "%s/c.json", g.tmp);
	snprintf(log, sizeof log, "%s/litegate.log", g.tmp);
	snprintf(conf, sizeof conf,
		 "{\"listen\":\"127.0.0.1:%d\",\"data_dir\":\"%s/data\",\"static_root\":null,"
		 "\"log_level\":\"warn\",\"durability\":\"%s\",\"parents\":[{\"name\":\"chatbot\"}]}\n",
		 port, g.tmp, o.durability);
	FILE *f = fopen(cfg, "w");
	if (!f || fputs(conf, f) < 0 || fclose(f))
		die("writing %s", cfg);
	printf("# gateway config: %s", conf);
	fflush(stdout); /* the child must not print our buffer again */
	g.child = fork();
	if (g.child < 0)
		die("fork: %s", strerror(errno));
	if (!g.child) {
		FILE *lf = freopen(log, "w", stdout);
		(void)lf;
		dup2(1, 2);
		execl(o.bin, o.bin, "--config", cfg, (char *)NULL);
		_exit(127);
	}
	o.server_pid = (int)g.child;
	snprintf(u, sizeof u, "http://127.0.0.1:%d/", port);
	if (parse_url(u, &g.base))
		die("url %s", u);
	hclient c = {.fd = -1};
	for (int i = 0; i < 200; i++) {
		if (!hc_open(&c, &g.base) && hc_call(&c, "GET", "/healthz", NULL, NULL, 0) == 200) {
			hc_free(&c);
			printf("# gateway: %s --config %s (pid %d)\n", o.bin, cfg, (int)g.child);
			return;
		}
		hc_close(&c);
		usleep(50000);
	}
	hc_free(&c);
	die("the gateway did not answer /healthz (see %s)", log);
}

static void stop_gateway(void)
{
	if (g.child > 0) {
		kill(g.child, SIGTERM);
		waitpid(g.child, NULL, 0);
		g.child = 0;
	}
	if (g.tmp[0]) {
		pid_t p = fork();
		if (!p) {
			execlp("rm", "rm", "-rf", g.tmp, (char *)NULL);
			_exit(127);
		}
		if (p > 0)
			waitpid(p, NULL, 0);
		g.tmp[0] = 0;
	}
}

static void client_init(hclient *c)
{
	memset(c, 0, sizeof *c);
	c->fd = -1;
	if (hc_open(c, &g.base))
		die("connect %s: %s", g.base.hostport, strerror(errno));
}

static void client_free(hclient *c)
{
	hc_free(c);
}

/* ---- Prompts ---- */

/* {"event":"prompt","data":"<kind>.<session>.<seq>.xxx"} padded to --msg-size bytes of data. */
static size_t put_prompt(char *out, size_t cap, char kind, uint32_t s, uint32_t q)
{
	char data[256];
	int n = snprintf(data, sizeof data, "%c.%u.%u.", kind, s, q);
	while ((uint32_t)n < o.msg_size && n < (int)sizeof data - 1)
		data[n++] = 'x';
	data[n] = 0;
	return (size_t)snprintf(out, cap, "{\"event\":\"prompt\",\"data\":\"%s\"}", data);
}

static void session_path(char *out, size_t cap, uint32_t s)
{
	snprintf(out, cap, "/v1/topics/chatbot/%s-%u/messages", g.tag, s);
}

/* ---- Setup ---- */

static void put_group(void)
{
	hclient c;
	char path[128], body[256];
	client_init(&c);
	snprintf(path, sizeof path, "/v1/groups/%s", g.group);
	snprintf(body, sizeof body,
		 "{\"parent\":\"chatbot\",\"events\":[\"prompt\"],\"max_inflight_per_topic\":1,"
		 "\"invisible_ms\":60000}");
	int st = hc_call(&c, "PUT", path, "application/json", body, strlen(body));
	if (st != 200 && st != 201)
		die("PUT %s: %d %s", path, st, c.body ? c.body : "");
	client_free(&c);
}

static void *fill_thread(void *arg)
{
	uint32_t k = (uint32_t)(uintptr_t)arg;
	size_t cap = (size_t)o.per_session * (o.msg_size + 64) + 16, len;
	char *body = xcalloc(1, cap), path[128];
	hclient c;
	client_init(&c);
	for (uint32_t s = k; s < o.sessions; s += PUBLISHERS) {
		len = 0;
		body[len++] = '[';
		for (uint32_t q = 0; q < o.per_session; q++) {
			if (q)
				body[len++] = ',';
			len += put_prompt(body + len, cap - len, 'p', s, q);
		}
		body[len++] = ']';
		session_path(path, sizeof path, s);
		int st = hc_call(&c, "POST", path, "application/json", body, len);
		if (st != 200)
			die("publish to session %u: %d %s", s, st, c.body ? c.body : "");
	}
	client_free(&c);
	free(body);
	return NULL;
}

static void fill(void)
{
	pthread_t t[PUBLISHERS];
	uint64_t t0 = now_ns();
	for (uintptr_t k = 0; k < PUBLISHERS; k++)
		pthread_create(&t[k], NULL, fill_thread, (void *)k);
	for (int k = 0; k < PUBLISHERS; k++)
		pthread_join(t[k], NULL);
	double dt = (double)(now_ns() - t0) / 1e9;
	printf("setup       %" PRIu64 " prompts to %u sessions (one %u-prompt JSON array each, %d connections) in %.2f s: %.0f msg/s\n",
	       g.total, o.sessions, o.per_session, PUBLISHERS, dt, (double)g.total / dt);
}

/* ---- Pop replies ---- */

typedef struct popped {
	char kind;
	uint32_t s, q;
	const char *receipt;
	size_t rlen;
} popped;

/*
 * The messages of a pop reply, in order: data (our "<kind>.<s>.<q>.") and receipt. A scan, not a
 * JSON parser: the gateway writes these members in a fixed order, and our data has no quotes.
 * @return how many (at most cap); -1 when the reply is not what we expect.
 */
static int parse_pop(const char *b, popped *out, int cap)
{
	int n = 0;
	const char *p = b;
	if (strncmp(b, "{\"messages\":[", 13))
		return -1;
	while ((p = strstr(p, "\"data\":\"")) != NULL) {
		if (n == cap)
			return -1;
		popped *m = &out[n];
		char *e;
		p += 8;
		m->kind = *p;
		if (p[1] != '.')
			return -1;
		m->s = (uint32_t)strtoul(p + 2, &e, 10);
		if (*e != '.')
			return -1;
		m->q = (uint32_t)strtoul(e + 1, &e, 10);
		p = strstr(e, "\"receipt\":\"");
		if (!p)
			return -1;
		p += 11;
		const char *q = strchr(p, '"');
		if (!q)
			return -1;
		m->receipt = p;
		m->rlen = (size_t)(q - p);
		p = q;
		n++;
	}
	return n;
}

/* {"receipts":["r1","r2",...]} */
static size_t put_ack(char **buf, size_t *cap, const popped *m, int n)
{
	size_t len = 0;
	buf_put(buf, &len, cap, "{\"receipts\":[", 13);
	for (int i = 0; i < n; i++) {
		if (i)
			buf_put(buf, &len, cap, ",", 1);
		buf_put(buf, &len, cap, "\"", 1);
		buf_put(buf, &len, cap, m[i].receipt, m[i].rlen);
		buf_put(buf, &len, cap, "\"", 1);
	}
	buf_put(buf, &len, cap, "]}", 2);
	return len;
}

static int ack_count(const char *body)
{
	const char *p = strstr(body, "\"acked\":");
	return p ? atoi(p + 8) : -1;
}

/* ---- Throughput ---- */

typedef struct popper {
	pthread_t t;
	uint32_t id;
	hist pop, ack;
	uint64_t pops, msgs;
	uint64_t t_first, t_last;
} popper;

static void check_prompt(const popped *m)
{
	if (m->kind != 'p' || m->s >= o.sessions || m->q >= o.per_session) {
		g.bad++;
		return;
	}
	if (atomic_exchange(&g.seen[(uint64_t)m->s * o.per_session + m->q], 1)) {
		g.dup++;
		return;
	}
	/* max_inflight_per_topic 1: a session's next prompt goes out only after this one's ack */
	uint32_t want = atomic_load_explicit(&g.next_seq[m->s], memory_order_relaxed);
	if (m->q != want)
		g.reord++;
	atomic_store_explicit(&g.next_seq[m->s], m->q + 1, memory_order_relaxed);
}

/* The reply to an ack of @p n receipts sent at @p t_sent. */
static void ack_done(popper *pp, hclient *c, int st, int n, uint64_t t_sent)
{
	uint64_t now = now_ns();
	int k = st == 200 ? ack_count(c->body) : -1;
	if (k != n) {
		g.errors++;
		fprintf(stderr, "pop_bench: ack: %d %.200s\n", st, c->body ? c->body : "");
	}
	if (k > 0)
		g.acked += (uint64_t)k;
	h_add(&pp->ack, now - t_sent);
	pp->msgs += (uint64_t)n;
	pp->t_last = now;
}

/*
 * pop, then ack what came, in a loop. With --overlap-ack the ack goes out on a second connection
 * and its reply is collected after the next pop: the popper does not wait for the offsets' fsync
 * before asking for more (at most one ack of its own outstanding).
 */
static void *throughput_thread(void *arg)
{
	popper *pp = arg;
	popped *ms = xcalloc(o.batch, sizeof *ms);
	char path_pop[128], path_ack[128], req[96], *ack = NULL;
	size_t ack_cap = 0;
	hclient c, ca;
	uint64_t deadline = now_ns() + (uint64_t)(o.timeout_s * 1e9), t_ack = 0;
	int pending = 0; /* receipts in the outstanding ack (--overlap-ack) */

	client_init(&c);
	client_init(&ca);
	snprintf(path_pop, sizeof path_pop, "/v1/groups/%s/pop", g.group);
	snprintf(path_ack, sizeof path_ack, "/v1/groups/%s/ack", g.group);
	int rl = snprintf(req, sizeof req, "{\"max\":%u,\"wait_ms\":200}", o.batch);
	while ((o.overlap_ack ? g.popped : g.acked) < g.total && now_ns() < deadline && !g.stop) {
		uint64_t t1 = now_ns();
		int st = hc_call(&c, "POST", path_pop, "application/json", req, (size_t)rl);
		uint64_t t2 = now_ns();
		int n = st == 200 ? parse_pop(c.body, ms, (int)o.batch) : -1;
		if (n < 0) {
			g.errors++;
			fprintf(stderr, "pop_bench: pop: %d %.200s\n", st, c.body ? c.body : "");
			usleep(100000);
			continue;
		}
		h_add(&pp->pop, t2 - t1);
		pp->pops++;
		if (pending) {
			ack_done(pp, &ca, hc_recv(&ca), pending, t_ack);
			pending = 0;
		}
		if (!n) {
			g.empty_pops++;
			continue;
		}
		if (!pp->t_first)
			pp->t_first = t1;
		for (int i = 0; i < n; i++)
			check_prompt(&ms[i]);
		g.popped += (uint64_t)n;
		size_t al = put_ack(&ack, &ack_cap, ms, n);
		t_ack = now_ns();
		if (o.overlap_ack) {
			if (hc_send(&ca, "POST", path_ack, "application/json", ack, al))
				ack_done(pp, &ca, -1, n, t_ack);
			else
				pending = n;
		} else {
			st = hc_call(&c, "POST", path_ack, "application/json", ack, al);
			ack_done(pp, &c, st, n, t_ack);
		}
	}
	if (pending)
		ack_done(pp, &ca, hc_recv(&ca), pending, t_ack);
	client_free(&c);
	client_free(&ca);
	free(ms);
	free(ack);
	return NULL;
}

/* ---- Per-thread CPU of the gateway (its service thread is the one that matters) ---- */

#define MAX_TASKS 64

typedef struct tasks {
	int n;
	int tid[MAX_TASKS];
	uint64_t ticks[MAX_TASKS];
} tasks;

static void tasks_sample(tasks *t, int pid)
{
	char path[320], buf[1024];
	t->n = 0;
	snprintf(path, sizeof path, "/proc/%d/task", pid);
	DIR *d = pid > 0 ? opendir(path) : NULL;
	for (struct dirent *e; d && (e = readdir(d)) && t->n < MAX_TASKS;) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof path, "/proc/%d/task/%s/stat", pid, e->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		size_t k = fread(buf, 1, sizeof buf - 1, f);
		fclose(f);
		buf[k] = 0;
		char *p = strrchr(buf, ')');
		unsigned long ut, st;
		for (int i = 0; p && i < 12; i++)
			p = strchr(p + 1, ' ');
		if (p && sscanf(p + 1, "%lu %lu", &ut, &st) == 2) {
			t->tid[t->n] = atoi(e->d_name);
			t->ticks[t->n++] = ut + st;
		}
	}
	if (d)
		closedir(d);
}

/* "service thread 61.2%, next 24.0%": the two busiest threads between a and b over dt seconds. */
static void tasks_report(const tasks *a, const tasks *b, double dt, int pid, char *out, size_t cap)
{
	double top[2] = {0, 0};
	double hz = (double)sysconf(_SC_CLK_TCK), main_pct = 0;
	for (int i = 0; i < b->n; i++) {
		uint64_t before = 0;
		for (int j = 0; j < a->n; j++)
			if (a->tid[j] == b->tid[i])
				before = a->ticks[j];
		double pct = (double)(b->ticks[i] - before) / hz / dt * 100.0;
		if (b->tid[i] == pid)
			main_pct = pct;
		else if (pct > top[0]) {
			top[1] = top[0];
			top[0] = pct;
		} else if (pct > top[1])
			top[1] = pct;
	}
	snprintf(out, cap, "service thread %.1f, busiest other threads %.1f and %.1f", main_pct, top[0], top[1]);
}

typedef struct tresult {
	double rate, dt, cpu, self_cpu;
	uint64_t acked;
} tresult;

static tresult throughput(void)
{
	popper *pp = xcalloc(o.poppers, sizeof *pp);
	sample a, b;
	hist pop = {0}, ack = {0};
	uint64_t t_first = UINT64_MAX, t_last = 0, pops = 0;
	tresult r = {0};
	char la[128];

	g.total = (uint64_t)o.sessions * o.per_session;
	g.seen = xcalloc(g.total, 1);
	g.next_seq = xcalloc(o.sessions, sizeof *g.next_seq);
	fill();
	tasks ta, tb;
	char per_thread[160];
	tasks_sample(&ta, o.server_pid);
	take_sample(&a, o.server_pid);
	for (uint32_t i = 0; i < o.poppers; i++) {
		pp[i].id = i;
		pthread_create(&pp[i].t, NULL, throughput_thread, &pp[i]);
	}
	for (uint32_t i = 0; i < o.poppers; i++) {
		pthread_join(pp[i].t, NULL);
		h_merge(&pop, &pp[i].pop);
		h_merge(&ack, &pp[i].ack);
		pops += pp[i].pops;
		if (pp[i].t_first && pp[i].t_first < t_first)
			t_first = pp[i].t_first;
		if (pp[i].t_last > t_last)
			t_last = pp[i].t_last;
	}
	take_sample(&b, o.server_pid);
	tasks_sample(&tb, o.server_pid);
	tasks_report(&ta, &tb, (double)(b.t - a.t) / 1e9, o.server_pid, per_thread, sizeof per_thread);
	r.acked = g.acked;
	r.dt = t_last > t_first ? (double)(t_last - t_first) / 1e9 : 0;
	r.rate = r.dt > 0 ? (double)g.acked / r.dt : 0;
	r.cpu = cpu_pct(&a, &b);
	r.self_cpu = self_cpu_pct(&a, &b);
	uint64_t lost = 0;
	for (uint64_t i = 0; i < g.total; i++)
		lost += !g.seen[i];
	printf("throughput  %" PRIu64 " of %" PRIu64 " prompts popped and acked by %u poppers (pop max %u + one ack each%s) in %.2f s: %.0f msg/s\n",
	       r.acked, g.total, o.poppers, o.batch, o.overlap_ack ? ", acks overlapped with the next pop" : "", r.dt,
	       r.rate);
	printf("            %" PRIu64 " pops (%" PRIu64 " empty), %.1f messages per non-empty pop; never popped %" PRIu64 ", popped twice %" PRIu64 ", out of session order %" PRIu64 ", unexpected %" PRIu64 ", errors %" PRIu64 "\n",
	       pops, (uint64_t)g.empty_pops, pops > g.empty_pops ? (double)g.popped / (double)(pops - g.empty_pops) : 0,
	       lost, (uint64_t)g.dup, (uint64_t)g.reord, (uint64_t)g.bad, (uint64_t)g.errors);
	printf("            pop request us: p50 %" PRIu64 " p99 %" PRIu64 " max %" PRIu64 "; ack request (answered once the offsets are stored) us: p50 %" PRIu64 " p99 %" PRIu64 " max %" PRIu64 "\n",
	       h_q(&pop, .5) / 1000, h_q(&pop, .99) / 1000, pop.max / 1000, h_q(&ack, .5) / 1000,
	       h_q(&ack, .99) / 1000, ack.max / 1000);
	printf("            CPU over the run, %% of one core: gateway %.1f (%s), pop_bench %.1f; load average now %s\n",
	       r.cpu, per_thread, r.self_cpu, (loadavg(la, sizeof la), la));
	printf("RESULT label=%s kind=throughput%s rate=%.0f acked=%" PRIu64 " total=%" PRIu64 " lost=%" PRIu64 " dup=%" PRIu64 " reord=%" PRIu64 " err=%" PRIu64 " pop_p50_us=%" PRIu64 " pop_p99_us=%" PRIu64 " ack_p50_us=%" PRIu64 " ack_p99_us=%" PRIu64 " server_cpu=%.1f tool_cpu=%.1f\n",
	       o.label, o.overlap_ack ? "_overlap" : "", r.rate, r.acked, g.total, lost, (uint64_t)g.dup, (uint64_t)g.reord, (uint64_t)g.errors,
	       h_q(&pop, .5) / 1000, h_q(&pop, .99) / 1000, h_q(&ack, .5) / 1000, h_q(&ack, .99) / 1000, r.cpu,
	       r.self_cpu);
	fflush(stdout);
	free(pp);
	return r;
}

/* ---- Redis Streams consumer groups, the same loop (--redis-port) ---- */

/*
 * A RESP client just big enough for XADD, XGROUP, XREADGROUP and XACK on one blocking connection.
 * The reply is walked, not stored: the ids of an XREADGROUP reply are the bulk strings at depth 4
 * (reply / stream / entries / entry / id), and a count of the rest is kept.
 */
typedef struct rconn {
	int fd;
	char *in;
	size_t off, len, cap;
	char *out;
	size_t out_len, out_cap;
	char ids[1024][48];
	int n_ids;
	long long integer;
} rconn;

static void r_open(rconn *r, int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(0x7f000001)};
	int one = 1;
	memset(r, 0, sizeof *r);
	r->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (r->fd < 0 || connect(r->fd, (struct sockaddr *)&a, sizeof a))
		die("redis 127.0.0.1:%d: %s", port, strerror(errno));
	setsockopt(r->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	r->cap = 1 << 20;
	r->in = xcalloc(1, r->cap);
}

static void r_close(rconn *r)
{
	close(r->fd);
	free(r->in);
	free(r->out);
}

/* Queue one command (argv of n strings). */
static void r_cmd(rconn *r, int n, const char *const *argv)
{
	char h[32];
	int k = snprintf(h, sizeof h, "*%d\r\n", n);
	buf_put(&r->out, &r->out_len, &r->out_cap, h, (size_t)k);
	for (int i = 0; i < n; i++) {
		size_t l = strlen(argv[i]);
		k = snprintf(h, sizeof h, "$%zu\r\n", l);
		buf_put(&r->out, &r->out_len, &r->out_cap, h, (size_t)k);
		buf_put(&r->out, &r->out_len, &r->out_cap, argv[i], l);
		buf_put(&r->out, &r->out_len, &r->out_cap, "\r\n", 2);
	}
}

static void r_flush(rconn *r)
{
	for (size_t o_ = 0; o_ < r->out_len;) {
		ssize_t k = send(r->fd, r->out + o_, r->out_len - o_, MSG_NOSIGNAL);
		if (k <= 0)
			die("redis send: %s", strerror(errno));
		o_ += (size_t)k;
	}
	r->out_len = 0;
}

/* Read until @p k unparsed bytes are buffered. */
static void r_need(rconn *r, size_t k)
{
	if (r->off) {
		memmove(r->in, r->in + r->off, r->len - r->off);
		r->len -= r->off;
		r->off = 0;
	}
	while (r->len < k) {
		if (r->len == r->cap) {
			r->cap *= 2;
			r->in = xrealloc(r->in, r->cap);
		}
		ssize_t got = recv(r->fd, r->in + r->len, r->cap - r->len, 0);
		if (got <= 0)
			die("redis recv: %s", got ? strerror(errno) : "closed");
		r->len += (size_t)got;
	}
}

/* The next CRLF-terminated line (without CRLF), reading more as needed. */
static char *r_line(rconn *r, size_t *ll)
{
	for (;;) {
		char *nl = r->len > r->off ? memmem(r->in + r->off, r->len - r->off, "\r\n", 2) : NULL;
		if (nl) {
			char *l = r->in + r->off;
			*ll = (size_t)(nl - l);
			r->off += *ll + 2;
			return l;
		}
		if (r->off) {
			memmove(r->in, r->in + r->off, r->len - r->off);
			r->len -= r->off;
			r->off = 0;
		}
		if (r->len == r->cap) {
			r->cap *= 2;
			r->in = xrealloc(r->in, r->cap);
		}
		ssize_t k = recv(r->fd, r->in + r->len, r->cap - r->len, 0);
		if (k <= 0)
			die("redis recv: %s", k ? strerror(errno) : "closed");
		r->len += (size_t)k;
	}
}

/* Walk one reply; bulk strings at depth 4 are ids. */
static void r_walk(rconn *r, int depth)
{
	size_t ll;
	char *l = r_line(r, &ll);
	long long n = strtoll(l + 1, NULL, 10);
	switch (l[0]) {
	case '-':
		die("redis: %.*s", (int)ll, l);
	case ':':
		r->integer = n;
		return;
	case '+':
		return;
	case '*':
		for (long long i = 0; i < n; i++)
			r_walk(r, depth + 1);
		return;
	case '$':
		if (n < 0)
			return;
		r_need(r, (size_t)n + 2); /* the bulk and its CRLF */
		if (depth == 4 && r->n_ids < 1024 && n < 48) {
			memcpy(r->ids[r->n_ids], r->in + r->off, (size_t)n);
			r->ids[r->n_ids++][n] = 0;
		}
		r->off += (size_t)n + 2;
		return;
	default:
		die("redis: unexpected reply %.*s", (int)ll, l);
	}
}

static void r_reply(rconn *r)
{
	r->n_ids = 0;
	r_walk(r, 0);
}

static const char *r_stream = "popbench";

static void redis_fill(int port)
{
	rconn r;
	char data[256];
	r_open(&r, port);
	const char *del[] = {"DEL", r_stream};
	r_cmd(&r, 2, del);
	r_flush(&r);
	r_reply(&r);
	uint64_t t0 = now_ns(), pending = 0;
	for (uint32_t q = 0; q < o.per_session; q++) {
		for (uint32_t s = 0; s < o.sessions; s++) {
			int n = snprintf(data, sizeof data, "p.%u.%u.", s, q);
			while ((uint32_t)n < o.msg_size)
				data[n++] = 'x';
			data[n] = 0;
			const char *a[] = {"XADD", r_stream, "*", "data", data};
			r_cmd(&r, 5, a);
			if (++pending == 1000) {
				r_flush(&r);
				for (; pending; pending--)
					r_reply(&r);
			}
		}
	}
	r_flush(&r);
	for (; pending; pending--)
		r_reply(&r);
	const char *grp[] = {"XGROUP", "CREATE", r_stream, "g", "0"};
	r_cmd(&r, 5, grp);
	r_flush(&r);
	r_reply(&r);
	double dt = (double)(now_ns() - t0) / 1e9;
	printf("setup       %" PRIu64 " entries XADDed to one stream (pipelined 1000, one connection) in %.2f s\n", g.total, dt);
	r_close(&r);
}

static void *redis_thread(void *arg)
{
	popper *pp = arg;
	rconn r;
	char consumer[32], count[16];
	snprintf(consumer, sizeof consumer, "c%u", pp->id);
	snprintf(count, sizeof count, "%u", o.batch);
	r_open(&r, o.redis_port);
	const char **ack = xcalloc(3 + o.batch, sizeof *ack);
	while (g.acked < g.total && !g.stop) {
		const char *rd[] = {"XREADGROUP", "GROUP", "g", consumer, "COUNT", count, "BLOCK", "200",
				    "STREAMS", r_stream, ">"};
		uint64_t t1 = now_ns();
		r_cmd(&r, 11, rd);
		r_flush(&r);
		r_reply(&r);
		uint64_t t2 = now_ns();
		h_add(&pp->pop, t2 - t1);
		pp->pops++;
		int n = r.n_ids;
		if (!n) {
			g.empty_pops++;
			continue;
		}
		if (!pp->t_first)
			pp->t_first = t1;
		g.popped += (uint64_t)n;
		ack[0] = "XACK";
		ack[1] = r_stream;
		ack[2] = "g";
		for (int i = 0; i < n; i++)
			ack[3 + i] = r.ids[i];
		r_cmd(&r, 3 + n, ack);
		r_flush(&r);
		r.n_ids = 0;
		r_walk(&r, 0);
		uint64_t t3 = now_ns();
		if (r.integer != n)
			g.errors++;
		g.acked += (uint64_t)r.integer;
		h_add(&pp->ack, t3 - t2);
		pp->msgs += (uint64_t)n;
		pp->t_last = t3;
	}
	free(ack);
	r_close(&r);
	return NULL;
}

static tresult redis_throughput(void)
{
	popper *pp = xcalloc(o.poppers, sizeof *pp);
	hist pop = {0}, ack = {0};
	uint64_t t_first = UINT64_MAX, t_last = 0;
	sample a, b;
	tresult r = {0};

	g.total = (uint64_t)o.sessions * o.per_session;
	redis_fill(o.redis_port);
	take_sample(&a, o.server_pid);
	for (uint32_t i = 0; i < o.poppers; i++) {
		pp[i].id = i;
		pthread_create(&pp[i].t, NULL, redis_thread, &pp[i]);
	}
	for (uint32_t i = 0; i < o.poppers; i++) {
		pthread_join(pp[i].t, NULL);
		h_merge(&pop, &pp[i].pop);
		h_merge(&ack, &pp[i].ack);
		if (pp[i].t_first && pp[i].t_first < t_first)
			t_first = pp[i].t_first;
		if (pp[i].t_last > t_last)
			t_last = pp[i].t_last;
	}
	take_sample(&b, o.server_pid);
	r.acked = g.acked;
	r.dt = t_last > t_first ? (double)(t_last - t_first) / 1e9 : 0;
	r.rate = r.dt > 0 ? (double)g.acked / r.dt : 0;
	r.cpu = cpu_pct(&a, &b);
	r.self_cpu = self_cpu_pct(&a, &b);
	printf("throughput  %" PRIu64 " of %" PRIu64 " entries read and acked by %u consumers (XREADGROUP COUNT %u + one XACK each) in %.2f s: %.0f msg/s\n",
	       r.acked, g.total, o.poppers, o.batch, r.dt, r.rate);
	printf("            XREADGROUP us: p50 %" PRIu64 " p99 %" PRIu64 "; XACK us: p50 %" PRIu64 " p99 %" PRIu64 "; errors %" PRIu64 "\n",
	       h_q(&pop, .5) / 1000, h_q(&pop, .99) / 1000, h_q(&ack, .5) / 1000, h_q(&ack, .99) / 1000,
	       (uint64_t)g.errors);
	printf("            CPU over the run, %% of one core: redis-server %.1f, pop_bench %.1f\n", r.cpu, r.self_cpu);
	printf("RESULT label=%s kind=throughput rate=%.0f acked=%" PRIu64 " total=%" PRIu64 " err=%" PRIu64 " pop_p50_us=%" PRIu64 " pop_p99_us=%" PRIu64 " ack_p50_us=%" PRIu64 " ack_p99_us=%" PRIu64 " server_cpu=%.1f tool_cpu=%.1f\n",
	       o.label, r.rate, r.acked, g.total, (uint64_t)g.errors, h_q(&pop, .5) / 1000, h_q(&pop, .99) / 1000,
	       h_q(&ack, .5) / 1000, h_q(&ack, .99) / 1000, r.cpu, r.self_cpu);
	fflush(stdout);
	free(pp);
	return r;
}

/* ---- Wake-up latency ---- */

typedef struct waiter {
	pthread_t t;
	hist lat;
} waiter;

static void *wake_popper(void *arg)
{
	waiter *w = arg;
	popped *ms = xcalloc(o.batch, sizeof *ms);
	char path_pop[128], path_ack[128], req[96], *ack = NULL;
	size_t ack_cap = 0;
	hclient c;

	client_init(&c);
	snprintf(path_pop, sizeof path_pop, "/v1/groups/%s/pop", g.group);
	snprintf(path_ack, sizeof path_ack, "/v1/groups/%s/ack", g.group);
	int rl = snprintf(req, sizeof req, "{\"max\":%u,\"wait_ms\":1000}", o.batch);
	while (!g.stop) {
		int st = hc_call(&c, "POST", path_pop, "application/json", req, (size_t)rl);
		uint64_t now = now_ns();
		int n = st == 200 ? parse_pop(c.body, ms, (int)o.batch) : -1;
		if (n < 0) {
			g.errors++;
			fprintf(stderr, "pop_bench: pop: %d %.200s\n", st, c.body ? c.body : "");
			usleep(100000);
			continue;
		}
		for (int i = 0; i < n; i++) {
			uint64_t sent = ms[i].kind == 'w' && ms[i].q < o.wake ? g.sent_ns[ms[i].q] : 0;
			if (!sent) {
				g.wake_stray++;
				continue;
			}
			h_add(&w->lat, now > sent ? now - sent : 0);
			g.popdone_ns[ms[i].q] = now;
			g.wake_got++;
		}
		if (n) {
			size_t al = put_ack(&ack, &ack_cap, ms, n);
			if (hc_call(&c, "POST", path_ack, "application/json", ack, al) != 200)
				g.errors++;
		}
	}
	client_free(&c);
	free(ms);
	free(ack);
	return NULL;
}

typedef struct wpub {
	pthread_t t;
	uint32_t k;
	uint64_t t0;
	hist reply;
	unsigned seed;
} wpub;

static void *wake_publisher(void *arg)
{
	wpub *p = arg;
	char body[512], path[128];
	hclient c;

	client_init(&c);
	for (uint32_t i = p->k; i < o.wake && !g.stop; i += WAKE_PUBLISHERS) {
		uint64_t due = p->t0 + (uint64_t)((double)i / o.wake_rate * 1e9), now = now_ns();
		if (due > now) {
			struct timespec ts = {(time_t)((due - now) / NS), (long)((due - now) % NS)};
			nanosleep(&ts, NULL);
		}
		uint32_t s = (uint32_t)rand_r(&p->seed) % o.sessions;
		size_t len = put_prompt(body, sizeof body, 'w', s, i);
		session_path(path, sizeof path, s);
		uint64_t t1 = now_ns();
		g.sent_ns[i] = t1;
		int st = hc_call(&c, "POST", path, "application/json", body, len);
		g.pubdone_ns[i] = now_ns();
		h_add(&p->reply, g.pubdone_ns[i] - t1);
		if (st != 200) {
			g.errors++;
			fprintf(stderr, "pop_bench: wake-up publish: %d %.200s\n", st, c.body ? c.body : "");
		}
	}
	client_free(&c);
	return NULL;
}

static void wake(void)
{
	waiter *w = xcalloc(o.poppers, sizeof *w);
	wpub pb[WAKE_PUBLISHERS];
	hist lat = {0}, reply = {0};
	sample a, b;

	g.sent_ns = xcalloc(o.wake, sizeof *g.sent_ns);
	g.pubdone_ns = xcalloc(o.wake, sizeof *g.pubdone_ns);
	g.popdone_ns = xcalloc(o.wake, sizeof *g.popdone_ns);
	g.stop = 0;
	for (uint32_t i = 0; i < o.poppers; i++)
		pthread_create(&w[i].t, NULL, wake_popper, &w[i]);
	usleep(500000); /* every popper parked */
	take_sample(&a, o.server_pid);
	uint64_t t0 = now_ns();
	for (uint32_t k = 0; k < WAKE_PUBLISHERS; k++) {
		pb[k] = (wpub){.k = k, .t0 = t0, .seed = 7919u * (k + 1)};
		pthread_create(&pb[k].t, NULL, wake_publisher, &pb[k]);
	}
	for (uint32_t k = 0; k < WAKE_PUBLISHERS; k++) {
		pthread_join(pb[k].t, NULL);
		h_merge(&reply, &pb[k].reply);
	}
	uint64_t until = now_ns() + 5 * NS;
	while (g.wake_got < o.wake && now_ns() < until)
		usleep(10000);
	take_sample(&b, o.server_pid);
	g.stop = 1; /* the pollers come back within wait_ms */
	for (uint32_t i = 0; i < o.poppers; i++) {
		pthread_join(w[i].t, NULL);
		h_merge(&lat, &w[i].lat);
	}
	/* The gateway's own part: how long after the publish's reply (its append durable and
	 * visible) the pop's reply came; a pop reply can also come first (both wait on the same
	 * commit, then race on the host's loop). */
	hist after = {0};
	uint64_t pop_first = 0;
	for (uint32_t i = 0; i < o.wake; i++) {
		uint64_t pub = g.pubdone_ns[i], pop = g.popdone_ns[i];
		if (!pub || !pop)
			continue;
		if (pop < pub)
			pop_first++;
		h_add(&after, pop > pub ? pop - pub : 0);
	}
	double dt = (double)(b.t - t0) / 1e9;
	printf("wake-up     %" PRIu64 " of %u prompts, one per publish request to random sessions of the drained group, %.0f/s paced (%d publisher connections), %u poppers parked in long polls\n",
	       lat.n, o.wake, o.wake_rate, WAKE_PUBLISHERS, o.poppers);
	printf("            publish request sent -> pop reply in, us: p50 %" PRIu64 " p90 %" PRIu64 " p99 %" PRIu64 " p99.9 %" PRIu64 " max %" PRIu64 "\n",
	       h_q(&lat, .5) / 1000, h_q(&lat, .9) / 1000, h_q(&lat, .99) / 1000, h_q(&lat, .999) / 1000,
	       lat.max / 1000);
	printf("            (of which the publish's own reply, i.e. its durable append, us: p50 %" PRIu64 " p99 %" PRIu64 "); stray %" PRIu64 ", errors %" PRIu64 "\n",
	       h_q(&reply, .5) / 1000, h_q(&reply, .99) / 1000, (uint64_t)g.wake_stray, (uint64_t)g.errors);
	printf("            pop reply in after the publish reply in, us (0 when the pop's came first, %" PRIu64 " of %" PRIu64 "): p50 %" PRIu64 " p90 %" PRIu64 " p99 %" PRIu64 " max %" PRIu64 "\n",
	       pop_first, after.n, h_q(&after, .5) / 1000, h_q(&after, .9) / 1000, h_q(&after, .99) / 1000,
	       after.max / 1000);
	printf("            CPU over %.1f s, %% of one core: gateway %.1f, pop_bench %.1f\n", dt, cpu_pct(&a, &b),
	       self_cpu_pct(&a, &b));
	printf("RESULT label=%s kind=wake n=%" PRIu64 " rate=%.0f p50_us=%" PRIu64 " p90_us=%" PRIu64 " p99_us=%" PRIu64 " p999_us=%" PRIu64 " max_us=%" PRIu64 " pub_p50_us=%" PRIu64 " pub_p99_us=%" PRIu64 " after_pub_p50_us=%" PRIu64 " after_pub_p99_us=%" PRIu64 " pop_first=%" PRIu64 " err=%" PRIu64 "\n",
	       o.label, lat.n, o.wake_rate, h_q(&lat, .5) / 1000, h_q(&lat, .9) / 1000, h_q(&lat, .99) / 1000,
	       h_q(&lat, .999) / 1000, lat.max / 1000, h_q(&reply, .5) / 1000, h_q(&reply, .99) / 1000,
	       h_q(&after, .5) / 1000, h_q(&after, .99) / 1000, pop_first, (uint64_t)g.errors);
	fflush(stdout);
	free(w);
}

static void on_alarm(int sig)
{
	static const char m[] = "pop_bench: hard time limit reached, giving up\n";
	(void)sig;
	if (write(2, m, sizeof m - 1) < 0) {
	}
	if (g.child > 0)
		kill(g.child, SIGTERM);
	_exit(3);
}

int main(int argc, char **argv)
{
	enum { O_BIN = 256, O_URL, O_PID, O_DUR, O_SESS, O_PER, O_POP, O_BATCH, O_WAKE, O_WRATE, O_SIZE,
	       O_ONLY, O_LABEL, O_OVERLAP, O_REDIS, O_HELP };
	static const struct option lo[] = {
		{"bin", 1, 0, O_BIN}, {"url", 1, 0, O_URL}, {"server-pid", 1, 0, O_PID},
		{"durability", 1, 0, O_DUR}, {"sessions", 1, 0, O_SESS}, {"per-session", 1, 0, O_PER},
		{"poppers", 1, 0, O_POP}, {"batch", 1, 0, O_BATCH}, {"wake", 1, 0, O_WAKE},
		{"wake-rate", 1, 0, O_WRATE}, {"msg-size", 1, 0, O_SIZE}, {"only", 1, 0, O_ONLY},
		{"label", 1, 0, O_LABEL}, {"overlap-ack", 0, 0, O_OVERLAP},
		{"redis-port", 1, 0, O_REDIS}, {"help", 0, 0, O_HELP}, {0, 0, 0, 0},
	};
	char la[128];
	int c;

	bench_prog = "pop_bench";
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case O_BIN: o.bin = optarg; break;
		case O_URL: o.url = optarg; break;
		case O_PID: o.server_pid = atoi(optarg); break;
		case O_DUR: o.durability = optarg; break;
		case O_SESS: o.sessions = (uint32_t)strtoul(optarg, NULL, 10); break;
		case O_PER: o.per_session = (uint32_t)strtoul(optarg, NULL, 10); break;
		case O_POP: o.poppers = (uint32_t)strtoul(optarg, NULL, 10); break;
		case O_BATCH: o.batch = (uint32_t)strtoul(optarg, NULL, 10); break;
		case O_WAKE: o.wake = (uint32_t)strtoul(optarg, NULL, 10); break;
		case O_WRATE: o.wake_rate = atof(optarg); break;
		case O_SIZE: o.msg_size = (uint32_t)strtoul(optarg, NULL, 10); break;
		case O_ONLY: o.only = optarg; break;
		case O_LABEL: o.label = optarg; break;
		case O_OVERLAP: o.overlap_ack = 1; break;
		case O_REDIS: o.redis_port = atoi(optarg); break;
		case O_HELP: usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!o.redis_port && !o.bin == !o.url)
		die("give --bin (start a gateway) or --url (use a running one)");
	if (!o.sessions || !o.per_session || !o.poppers || o.poppers > MAX_POPPERS || !o.batch ||
	    o.batch > 1000 || o.wake_rate <= 0 || o.msg_size > 200)
		die("bad option values (--help)");
	if (o.only && strcmp(o.only, "throughput") && strcmp(o.only, "wake"))
		die("--only throughput|wake");

	printf("# command:");
	for (int i = 0; i < argc; i++)
		printf(" %s", argv[i]);
	printf("\n");
	loadavg(la, sizeof la);
	printf("# load average at start: %s\n", la);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGALRM, on_alarm);
	alarm((unsigned)(o.timeout_s + 120));

	if (o.redis_port) {
		tresult r = redis_throughput();
		loadavg(la, sizeof la);
		printf("# load average at end: %s\n", la);
		return r.acked != g.total || g.errors;
	}
	uint64_t t = now_ns();
	snprintf(g.tag, sizeof g.tag, "pb%06x", (unsigned)((t / 1000) ^ ((uint64_t)getpid() << 8)) & 0xffffffu);
	snprintf(g.group, sizeof g.group, "bench-%s", g.tag);
	if (o.bin) {
		start_gateway();
	} else {
		char u[600];
		snprintf(u, sizeof u, "%s%s", o.url, strchr(o.url + 7, '/') ? "" : "/");
		if (parse_url(u, &g.base))
			die("--url: http://127.x.x.x:PORT");
	}
	put_group();
	printf("# group %s on parent chatbot (events [\"prompt\"], max_inflight_per_topic 1), sessions chatbot/%s-0..%u\n",
	       g.group, g.tag, o.sessions - 1);
	fflush(stdout);

	int fail = 0;
	if (!o.only || !strcmp(o.only, "throughput")) {
		tresult r = throughput();
		fail |= r.acked != g.total || g.dup || g.reord || g.bad || g.errors;
	}
	if (!o.only || !strcmp(o.only, "wake")) {
		wake();
		fail |= g.wake_got != o.wake || g.errors;
	}
	loadavg(la, sizeof la);
	printf("# load average at end: %s\n", la);
	stop_gateway();
	return fail ? 1 : 0;
}
