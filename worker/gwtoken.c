/*
 * gwtoken.c - the bearer token the worker shows the gateway (gwtoken.h).
 */
#include "gwtoken.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "log.h"
#include "xalloc.h"

#define TOKEN_MAX 16384 /* far above any JWT the gateway accepts */

static struct {
	pthread_mutex_t mu;
	char *token;            /* current token, or NULL */
	char *file;             /* --token-file, or NULL */
	struct timespec mtime;  /* of the file when token was read */
	off_t size;
	time_t checked;         /* last stat of the file (at most one a second) */
} T = { .mu = PTHREAD_MUTEX_INITIALIZER };

/* Read a token file: one line, surrounding white space dropped. @return owned token or NULL. */
static char *
read_token(const char *path, struct stat *st, char *err, size_t errsz)
{
	char buf[TOKEN_MAX + 2];
	size_t n = 0, start = 0;
	FILE *f = fopen(path, "rb");
	char *tok = NULL;

	if (!f) {
		snprintf(err, errsz, "--token-file %s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fileno(f), st) == 0)
		n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	if (n > TOKEN_MAX) {
		snprintf(err, errsz, "--token-file %s: longer than %d bytes", path, TOKEN_MAX);
		return NULL;
	}
	while (n && strchr(" \t\r\n", buf[n - 1]))
		n--;
	while (start < n && strchr(" \t\r\n", buf[start]))
		start++;
	buf[n] = '\0';
	if (start == n || strpbrk(buf + start, " \t\r\n")) {
		snprintf(err, errsz, "--token-file %s: must hold one token", path);
		return NULL;
	}
	tok = xstrdup(buf + start);
	return tok;
}

int
wk_gwtoken_init(const char *file, char *err, size_t errsz)
{
	const char *env = getenv("LITEGATE_TOKEN");
	struct stat st;

	if (file) {
		if (!(T.token = read_token(file, &st, err, errsz)))
			return -1;
		T.file = xstrdup(file);
		T.mtime = st.st_mtim;
		T.size = st.st_size;
		T.checked = time(NULL);
	} else if (env && *env) {
		if (strpbrk(env, " \t\r\n")) {
			snprintf(err, errsz, "LITEGATE_TOKEN must hold one token");
			return -1;
		}
		T.token = xstrdup(env);
	}
	return 0;
}

/* A changed file is read again; a file that went bad keeps the last good token (logged). Locked. */
static void
refresh(void)
{
	time_t now = time(NULL);
	struct stat st;
	char err[256];
	char *tok;

	if (!T.file || now == T.checked)
		return;
	T.checked = now;
	if (stat(T.file, &st) || (st.st_mtim.tv_sec == T.mtime.tv_sec &&
				  st.st_mtim.tv_nsec == T.mtime.tv_nsec && st.st_size == T.size))
		return;
	if (!(tok = read_token(T.file, &st, err, sizeof(err)))) {
		LOG_WARN("%s; keeping the previous token", err);
		return;
	}
	free(T.token);
	T.token = tok;
	T.mtime = st.st_mtim;
	T.size = st.st_size;
	LOG_INFO("read a new gateway token from %s", T.file);
}

void
wk_gwtoken_apply(CURL *c)
{
	pthread_mutex_lock(&T.mu);
	refresh();
	if (T.token) {
		/* libcurl copies the string: the token may change under later requests. */
		curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BEARER);
		curl_easy_setopt(c, CURLOPT_XOAUTH2_BEARER, T.token);
	}
	pthread_mutex_unlock(&T.mu);
}

void
wk_gwtoken_cleanup(void)
{
	free(T.token);
	free(T.file);
	T.token = T.file = NULL;
}
