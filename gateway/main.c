/*
 * main.c - litegate: configuration, the libev loop that libwebsockets and the engine share,
 * signals, and the graceful shutdown. Main thread = the service thread.
 *
 * Why libev and a foreign loop: Debian's lws 4.1.6 defaults to poll(), which scans every fd per turn
 * (lws-performance.md lesson 1). With LWS_SERVER_OPTION_LIBEV and our own ev loop passed as a
 * foreign loop, lws adds its watchers to a loop we own, so we can add ours beside them: SIGTERM and
 * SIGINT (lws would otherwise only watch SIGINT, lesson 2), the heartbeat timer, the drain timer,
 * and the engine's notify fd.
 *
 * Why our own listening socket: stopping to accept at SIGTERM needs the listener closed while the
 * open connections go on. lws 4.1.6's lws_context_deprecate() does that but crashes (it reads the
 * listen wsi right after freeing it). So the vhost does not listen (CONTEXT_PORT_NO_LISTEN_SERVER);
 * we accept on our own ev_io and hand each socket to lws with lws_adopt_socket_vhost(), which is
 * what lws's listener does too. Shutdown then is ev_io_stop() and close().
 *
 * Why an fd watcher for the engine rather than lws_cancel_service(): the engine already exposes an
 * eventfd (eng_notify_fd) that it makes readable whenever completions or ready topics wait. Watching
 * it costs one read per wake-up; lws_cancel_service() writes lws's own pipe and then calls
 * EVENT_WAIT_CANCELLED once per protocol on each vhost. Both are thread-safe. The fallback (an engine
 * without a notify fd) wires eng_config.wake to lws_cancel_service() instead.
 */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <ev.h>
#include <malloc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "bg.h"
#include "conn.h"
#include "groups.h"
#include "pubrate.h"
#include "gw.h"
#include "log.h"
#include "tls.h"
#include "xalloc.h"

static struct gw gw_main;
static _Atomic(struct lws_context *) wake_ctx; /* read by the engine's writer thread */

static ev_io notify_w, accept_w;
static ev_timer accept_retry_w;
static int listen_fd = -1;
static ev_signal sigterm_w, sigint_w;
static ev_timer heartbeat_w, drain_w;
static ev_tstamp drain_deadline;

/* Runs on the engine's writer thread: only lws_cancel_service() is thread-safe in lws. */
static void
wake_by_cancel(void *ctx)
{
	struct lws_context *c = atomic_load(&wake_ctx);

	(void)ctx;
	if (c)
		lws_cancel_service(c);
}

static void
on_notify(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	gw_engine_notify(w->data);
}

static void
on_heartbeat(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	gw_streams_heartbeat(w->data);
	/* Lagging streams' send buffers (up to max_unsent_bytes each) and replay reads come and go
	 * in bursts; glibc keeps freed heap for reuse, so a burst would hold RSS for good (seen with
	 * bench/loadgen: 430 MB held, 71 MB in use). Hand it back at each heartbeat. */
	malloc_trim(0);
}

/*
 * lws 4.1.6 on libev keeps its timeouts (keep-alive idle, header hold, body idle) in one ev_timer
 * that it re-arms with ev_timer_set() + ev_timer_start(), which libev ignores while the timer is
 * still active: a timeout set for 2 s while the timer waits for a later one fires only then (a
 * kept-alive connection was never closed after keepalive_s). lws re-checks its due timeouts after
 * any event it services, so one wake-up a second makes every lws timeout fire within a second.
 */
static ev_timer lws_tick_w;

static void
on_lws_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct gw *gw = w->data;

	(void)loop;
	(void)revents;
	if (gw->ctx)
		lws_cancel_service(gw->ctx);
}

/* ---- Listening ------------------------------------------------------------------------------------ */

static int
open_listener(const char *host, int port)
{
	struct addrinfo hints, *res = NULL, *ai;
	char portstr[16];
	int fd = -1, one = 1, rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(portstr, sizeof(portstr), "%d", port);
	if ((rc = getaddrinfo(host, portstr, &hints, &res)) != 0) {
		LOG_ERR("listen %s:%d: %s", host, port, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (!bind(fd, ai->ai_addr, ai->ai_addrlen) && !listen(fd, 4096))
			break;
		rc = errno;
		close(fd);
		fd = -1;
		errno = rc;
	}
	if (fd < 0)
		LOG_ERR("listen %s:%d: %s", host, port, strerror(errno));
	freeaddrinfo(res);
	return fd;
}

static void
on_accept_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)w;
	(void)revents;
	if (listen_fd >= 0)
		ev_io_start(loop, &accept_w);
}

static void
on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	struct gw *gw = w->data;
	int one = 1;

	(void)revents;
	/* Bounded, so a connection storm cannot starve the connections already open. */
	for (int i = 0; i < 64; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(listen_fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				/* Out of descriptors: pause accepting instead of spinning on a ready socket. */
				LOG_WARN("accept: %s; pausing for 100 ms", strerror(errno));
				ev_io_stop(loop, &accept_w);
				ev_timer_set(&accept_retry_w, 0.1, 0);
				ev_timer_start(loop, &accept_retry_w);
			}
			return;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		/* conn.c: connection limits, then the first request's head, then lws adopts it. */
		gw_conn_accept(gw, fd, (struct sockaddr *)&ss, sl);
	}
}

static void
stop_listening(struct gw *gw)
{
	if (listen_fd < 0)
		return;
	ev_io_stop(gw->loop, &accept_w);
	ev_timer_stop(gw->loop, &accept_retry_w);
	close(listen_fd);
	listen_fd = -1;
	gw_conn_shutdown(gw); /* connections not handed to lws yet */
}

/* The end: close every connection (their CLOSED callbacks still see the engine), then the engine
 * (which finishes queued appends), then leave the loop. */
static void
finish(struct gw *gw)
{
	struct lws_context *ctx = gw->ctx;

	if (gw->state == GW_STOPPED)
		return;
	stop_listening(gw);
	ev_timer_stop(gw->loop, &drain_w);
	ev_timer_stop(gw->loop, &heartbeat_w);
	ev_timer_stop(gw->loop, &lws_tick_w);
	ev_signal_stop(gw->loop, &sigterm_w);
	ev_signal_stop(gw->loop, &sigint_w);
	if (ev_is_active(&notify_w))
		ev_io_stop(gw->loop, &notify_w);
	gw->state = GW_STOPPED;
	atomic_store(&wake_ctx, NULL);
	gw->ctx = NULL;
	lws_context_destroy(ctx);
	gw_bg_stop(); /* after the connections (their jobs are detached), before the engine */
	LOG_INFO("connections closed; closing the engine");
	gw_groups_close(gw);
	eng_close(gw->db);
	gw->db = NULL;
	ev_break(gw->loop, EVBREAK_ALL);
}

static void
on_drain(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct gw *gw = w->data;

	(void)revents;
	gw_engine_notify(gw);
	if (gw->inflight == 0 && gw->streams.next == &gw->streams) {
		LOG_INFO("drained");
		finish(gw);
	} else if (ev_now(loop) >= drain_deadline) {
		LOG_WARN("shutdown grace over with %zu publishes unanswered", gw->inflight);
		finish(gw);
	}
}

static void
on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct gw *gw = w->data;

	(void)revents;
	if (gw->state != GW_RUNNING) {
		/* A second signal: stop waiting. */
		finish(gw);
		return;
	}
	LOG_INFO("signal %d: shutting down (in-flight publishes: %zu, streams open: %llu)", w->signum,
		 gw->inflight, (unsigned long long)(gw->m.sse_open + gw->m.ws_open));
	gw->state = GW_DRAINING;
	/* Stop accepting; open connections carry on. */
	stop_listening(gw);
	gw_pubs_shutdown(gw);
	gw_streams_close_all(gw);
	gw_groups_drain(gw);
	drain_deadline = ev_now(loop) + gw->cfg->shutdown_grace_s;
	ev_timer_init(&drain_w, on_drain, 0.005, 0.010);
	drain_w.data = gw;
	ev_timer_start(loop, &drain_w);
}

static void
raise_nofile(uint32_t want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return;
	/* lws sizes its fd table from fd_limit_per_thread; the kernel limit must allow as many. */
	if (rl.rlim_cur < (rlim_t)want + 64) {
		rl.rlim_cur = (rlim_t)want + 64;
		if (rl.rlim_cur > rl.rlim_max)
			rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl))
			LOG_WARN("setrlimit(RLIMIT_NOFILE): %s", strerror(errno));
	}
}

static const struct lws_protocol_vhost_options mime_mjs = { NULL, NULL, ".mjs", "text/javascript; charset=utf-8" };
static const struct lws_protocol_vhost_options mime_js = { &mime_mjs, NULL, ".js", "text/javascript; charset=utf-8" };
static const struct lws_protocol_vhost_options mime_css = { &mime_js, NULL, ".css", "text/css; charset=utf-8" };
static const struct lws_protocol_vhost_options mime_html = { &mime_css, NULL, ".html", "text/html; charset=utf-8" };
static const struct lws_protocol_vhost_options mime_map = { &mime_html, NULL, ".map", "application/json" };
static const struct lws_protocol_vhost_options mime_webp = { &mime_map, NULL, ".webp", "image/webp" };

/*
 * gw-static: lws serves the files itself (lws_callback_http_dummy). The one thing of ours is the
 * end of each file's transaction: conn.c must learn it (as from gw-http and the "litegate"
 * protocol), or on a kept-alive connection the next request, often the page's EventSource, is
 * never read.
 */
static int
static_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	if (reason == LWS_CALLBACK_HTTP_DROP_PROTOCOL)
		gw_conn_http_dropped(wsi, in);
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static int
run(struct gw *gw, const struct gw_config *cfg)
{
	struct lws_protocols protocols[4];
	struct lws_http_mount mounts[4];
	struct lws_context_creation_info info;
	void *foreign[1];
	char *root = NULL;
	eng_config ec;
	eng_parent *parents;
	int rc, fd, n = 0;

	/* ---- Engine ---- */
	parents = xcalloc(cfg->n_parents, sizeof(*parents));
	for (size_t i = 0; i < cfg->n_parents; i++) {
		parents[i].name = cfg->parents[i].name;
		parents[i].max_message_bytes = cfg->parents[i].max_message_bytes;
		parents[i].idle_ttl_ms = cfg->parents[i].idle_ttl_s * 1000;
		parents[i].max_retained = cfg->parents[i].max_retained;
		parents[i].priority = cfg->parents[i].priority;
		parents[i].dedup_window_ms = cfg->parents[i].dedup_window_s * 1000;
		parents[i].dedup_max_keys = cfg->parents[i].dedup_max_keys;
	}
	eng_config_init(&ec);
	ec.dir = cfg->data_dir;
	ec.durability = cfg->durability;
	ec.interval_ms = cfg->fsync_interval_ms;
	ec.segment_bytes = cfg->segment_bytes;
	ec.retention_ms = cfg->retention_s * 1000;
	ec.log_max_bytes = cfg->log_max_bytes;
	ec.queue_max_bytes = cfg->queue_max_bytes;
	ec.ready_max = cfg->ready_max;
	ec.parents = parents;
	ec.n_parents = cfg->n_parents;
	ec.fail_write_after = cfg->fail_write_after;
	ec.fail_fsync_after = cfg->fail_fsync_after;
	ec.fail_errno = (int)cfg->fail_errno;
	ec.log = gw_log_engine;
	ec.wake = wake_by_cancel; /* a no-op until the fallback arms wake_ctx */
	rc = eng_open(&ec, &gw->db);
	free(parents);
	if (rc) {
		LOG_ERR("cannot open the engine in %s: %s", cfg->data_dir, eng_strerror(rc));
		return 1;
	}
	if (gw_groups_open(gw)) { /* consumer groups: definitions, markers, subscriptions */
		eng_close(gw->db);
		gw->db = NULL;
		return 1;
	}

	/* ---- lws on our libev loop ---- */
	memset(protocols, 0, sizeof(protocols));
	/* [0] takes WebSocket upgrades that name no subprotocol, and plain static-file requests. */
	protocols[0].name = "litegate";
	protocols[0].callback = gw_ws_callback;
	protocols[0].per_session_data_size = gw_ws_pss_size();
	protocols[0].rx_buffer_size = 65536;
	protocols[0].user = gw;
	protocols[0].tx_packet_size = cfg->max_unsent_bytes;
	protocols[1].name = "gw-http";
	protocols[1].callback = gw_http_callback;
	protocols[1].per_session_data_size = gw_http_pss_size();
	protocols[1].user = gw;
	/* One send() per coalesced write: lws otherwise splits at about 4 KiB (lesson 4). */
	protocols[1].tx_packet_size = cfg->max_unsent_bytes;
	/*
	 * [2] serves the static files. lws 4.1.6 sends a file in pieces of up to tx_packet_size and,
	 * on an HTTP/2 stream, each piece as one DATA frame whatever the peer's frame size: with h2
	 * on, pieces of 16384 bytes (tls.h). Without h2, 0 keeps lws's 64 KiB pieces.
	 */
	protocols[2].name = "gw-static";
	protocols[2].callback = static_callback;
	protocols[2].tx_packet_size = cfg->tls_cert && cfg->tls_http2 ? GW_H2_STATIC_PACKET : 0;

	memset(mounts, 0, sizeof(mounts));
	{
		static const struct {
			const char *point;
			unsigned char len;
		} api[] = { { "/v1", 3 }, { "/healthz", 8 }, { "/metrics", 8 } };

		for (n = 0; n < 3; n++) {
			mounts[n].mountpoint = api[n].point;
			mounts[n].mountpoint_len = api[n].len;
			mounts[n].origin = "gw-http";
			mounts[n].protocol = "gw-http";
			mounts[n].origin_protocol = LWSMPRO_CALLBACK;
			mounts[n].mount_next = &mounts[n + 1];
		}
	}
	mounts[2].mount_next = NULL;
	if (cfg->static_root) {
		struct stat st;

		root = realpath(cfg->static_root, NULL);
		if (!root || stat(root, &st) || !S_ISDIR(st.st_mode)) {
			LOG_WARN("static_root %s is not a directory: nothing is served at /",
				 cfg->static_root);
		} else {
			mounts[3].mountpoint = "/";
			mounts[3].mountpoint_len = 1;
			mounts[3].origin = root;
			mounts[3].def = "index.html";
			mounts[3].origin_protocol = LWSMPRO_FILE;
			mounts[3].protocol = "gw-static";
			mounts[3].extra_mimetypes = &mime_webp;
			mounts[2].mount_next = &mounts[3];
			LOG_INFO("serving %s at /", root);
		}
	}

	raise_nofile(cfg->max_fds);
	foreign[0] = gw->loop;
	memset(&info, 0, sizeof(info)); /* 4.1.6 has no lws_context_info_defaults() */
	info.options = LWS_SERVER_OPTION_LIBEV | LWS_SERVER_OPTION_VALIDATE_UTF8;
	if (cfg->security_headers)
		info.options |= LWS_SERVER_OPTION_HTTP_HEADERS_SECURITY_BEST_PRACTICES_ENFORCE;
	info.foreign_loops = foreign;
	info.port = CONTEXT_PORT_NO_LISTEN_SERVER; /* we listen ourselves (see the top of this file) */
	info.protocols = protocols;
	info.mounts = mounts;
	info.vhost_name = "litegate";
	info.server_string = "litegate";
	info.keepalive_timeout = (int)cfg->keepalive_s;
	info.timeout_secs = cfg->body_timeout_s;
	info.fd_limit_per_thread = cfg->max_fds;
	info.max_http_header_pool = (unsigned short)(cfg->max_header_pool > 65535 ? 65535 : cfg->max_header_pool);
	info.pt_serv_buf_size = 65536; /* one read takes up to 64 KiB of a streamed body */
	gw_tls_setup(cfg, &info); /* tls.c: HTTPS/WSS when configured */
	/* conn.c and conn_tls.c check every HTTP/1 head before lws reads it, and time it out with a
	 * JSON 408; lws's own buffer and timeout are a backstop that must not act first (its clock for
	 * a TLS head starts after the handshake, ours at the accept). */
	info.max_http_header_data2 = gw_conn_lws_header_bytes(cfg);
	info.timeout_secs_ah_idle = cfg->header_timeout_s + 1;
	listen_fd = open_listener(cfg->listen_host, cfg->listen_port);
	if (listen_fd >= 0)
		gw->ctx = lws_create_context(&info);
	if (gw->ctx)
		gw->vhost = lws_get_vhost_by_name(gw->ctx, "litegate");
	if (!gw->vhost) {
		if (listen_fd >= 0)
			LOG_ERR("cannot create the libwebsockets context");
		if (gw->ctx)
			lws_context_destroy(gw->ctx);
		gw->ctx = NULL;
		if (listen_fd >= 0)
			close(listen_fd);
		listen_fd = -1;
		eng_close(gw->db);
		gw->db = NULL;
		free(root);
		return 1;
	}
	ev_io_init(&accept_w, on_accept, listen_fd, EV_READ);
	accept_w.data = gw;
	ev_io_start(gw->loop, &accept_w);
	ev_timer_init(&accept_retry_w, on_accept_retry, 0.1, 0);

	/* ---- Our watchers and the helper thread ---- */
	if ((rc = gw_bg_start(gw)) != 0) {
		LOG_ERR("cannot start the helper thread: %s", strerror(rc));
		stop_listening(gw);
		lws_context_destroy(gw->ctx);
		gw->ctx = NULL;
		eng_close(gw->db);
		gw->db = NULL;
		free(root);
		return 1;
	}
	fd = eng_notify_fd(gw->db);
	if (fd >= 0) {
		ev_io_init(&notify_w, on_notify, fd, EV_READ);
		notify_w.data = gw;
		ev_io_start(gw->loop, &notify_w);
	} else {
		gw->notify_via_cancel = 1;
		atomic_store(&wake_ctx, gw->ctx);
	}
	ev_signal_init(&sigterm_w, on_signal, SIGTERM);
	sigterm_w.data = gw;
	ev_signal_start(gw->loop, &sigterm_w);
	ev_signal_init(&sigint_w, on_signal, SIGINT);
	sigint_w.data = gw;
	ev_signal_start(gw->loop, &sigint_w);
	ev_timer_init(&heartbeat_w, on_heartbeat, cfg->heartbeat_s, cfg->heartbeat_s);
	heartbeat_w.data = gw;
	ev_timer_start(gw->loop, &heartbeat_w);
	ev_timer_init(&lws_tick_w, on_lws_tick, 1.0, 1.0);
	lws_tick_w.data = gw;
	ev_timer_start(gw->loop, &lws_tick_w);
	/* Anything the engine posted before the watcher existed (recovery) is picked up now. */
	gw_engine_notify(gw);

	LOG_INFO("litegate %s listening on %s:%d, data in %s (durability %s), config %s", GW_VERSION,
		 cfg->listen_host, cfg->listen_port, cfg->data_dir,
		 cfg->durability == ENG_DURABLE_FSYNC ? "fsync"
		 : cfg->durability == ENG_DURABLE_INTERVAL ? "interval" : "none",
		 cfg->source);
	ev_run(gw->loop, 0);
	free(root);
	LOG_INFO("stopped");
	return 0;
}

int
main(int argc, char **argv)
{
	struct gw_config cfg;
	struct gw *gw = &gw_main;
	int rc;

	if (argc > 1 && !strcmp(argv[1], "token"))
		return gw_token_main(argc - 1, argv + 1); /* token.c: sign a development token */
	rc = gw_config_from_args(argc, argv, &cfg);
	if (rc == GW_CFG_EXIT0)
		return 0;
	if (rc != GW_CFG_RUN)
		return 2;
	gw_log_setup(cfg.log_level);
	signal(SIGPIPE, SIG_IGN); /* a peer that vanished is an EPIPE from send(), not a death */
	{
		char err[512];

		/* Keys are part of the config: an unreadable or unfit one is a bad config (exit 2). */
		if (gw_tls_check(&cfg, err, sizeof(err)) || gw_auth_open(&cfg, err, sizeof(err))) {
			fprintf(stderr, "litegate: config %s: %s\n", cfg.source, err);
			gw_config_free(&cfg);
			return 2;
		}
	}

	memset(gw, 0, sizeof(*gw));
	gw->cfg = &cfg;
	gw->streams.next = gw->streams.prev = &gw->streams;
	for (size_t i = 0; i < cfg.n_cors_origins; i++)
		if (!strcmp(cfg.cors_origins[i], "*"))
			gw->cors_any = 1;
	gw->loop = ev_default_loop(EVFLAG_AUTO);
	if (!gw->loop) {
		LOG_ERR("cannot create the event loop");
		gw_config_free(&cfg);
		return 1;
	}
	rc = run(gw, &cfg);
	gw_groups_free(gw);
	gw_limits_free();
	free(gw->htab);
	ev_loop_destroy(gw->loop);
	gw_auth_close();
	gw_conn_free();
	gw_config_free(&cfg);
	return rc;
}
