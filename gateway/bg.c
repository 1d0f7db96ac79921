/*
 * bg.c - the helper thread for blocking engine calls (see bg.h).
 */
#include "bg.h"

#include <ev.h>
#include <pthread.h>

#include "gw.h"
#include "log.h"

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thread;
	int running, stop;
	struct gw_job *todo, *todo_tail; /* submitted, not yet worked on */
	struct gw_job *done, *done_tail; /* worked on, done callback not yet run */
	struct ev_loop *loop;
	ev_async wake;
} bg = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER };

static void
push(struct gw_job **head, struct gw_job **tail, struct gw_job *job)
{
	job->next = NULL;
	if (*tail)
		(*tail)->next = job;
	else
		*head = job;
	*tail = job;
}

static void *
worker(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&bg.mu);
	for (;;) {
		struct gw_job *job;

		while (!bg.todo && !bg.stop)
			pthread_cond_wait(&bg.cv, &bg.mu);
		if (!bg.todo)
			break;
		job = bg.todo;
		bg.todo = job->next;
		if (!bg.todo)
			bg.todo_tail = NULL;
		pthread_mutex_unlock(&bg.mu);
		job->work(job);
		pthread_mutex_lock(&bg.mu);
		push(&bg.done, &bg.done_tail, job);
		ev_async_send(bg.loop, &bg.wake);
	}
	pthread_mutex_unlock(&bg.mu);
	return NULL;
}

static void
run_done(void)
{
	struct gw_job *job;

	pthread_mutex_lock(&bg.mu);
	job = bg.done;
	bg.done = bg.done_tail = NULL;
	pthread_mutex_unlock(&bg.mu);
	while (job) {
		struct gw_job *next = job->next;

		job->done(job);
		job = next;
	}
}

static void
on_wake(struct ev_loop *loop, ev_async *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	run_done();
}

int
gw_bg_start(struct gw *gw)
{
	int rc;

	bg.loop = gw->loop;
	bg.stop = 0;
	ev_async_init(&bg.wake, on_wake);
	ev_async_start(bg.loop, &bg.wake);
	if ((rc = pthread_create(&bg.thread, NULL, worker, NULL)) != 0) {
		ev_async_stop(bg.loop, &bg.wake);
		return rc;
	}
	bg.running = 1;
	return 0;
}

void
gw_bg_submit(struct gw_job *job)
{
	pthread_mutex_lock(&bg.mu);
	push(&bg.todo, &bg.todo_tail, job);
	pthread_cond_signal(&bg.cv);
	pthread_mutex_unlock(&bg.mu);
}

void
gw_bg_stop(void)
{
	if (!bg.running)
		return;
	pthread_mutex_lock(&bg.mu);
	bg.stop = 1;
	pthread_cond_signal(&bg.cv);
	pthread_mutex_unlock(&bg.mu);
	pthread_join(bg.thread, NULL);
	bg.running = 0;
	ev_async_stop(bg.loop, &bg.wake);
	run_done();
}
