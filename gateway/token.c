/*
 * token.c - `litegate token`: sign an HS256 token for development and tests (docs/security.md).
 *
 * The secret (and its kid, and the audience) come from the config's first auth.hs256_secrets entry
 * unless given on the command line, so `litegate token --config conf/dev.json --admin` mints a
 * token the gateway started with that config accepts. Production tokens come
 * from the application's own identity service; this command is for people and test scripts.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "auth.h"
#include "config.h"
#include "jwt.h"
#include "xalloc.h"

static void
usage(FILE *out)
{
	fprintf(out,
		"usage: litegate token [--config FILE] [--secret S | --secret-file F] [--kid KID]\n"
		"                      [--ttl SECONDS] [--sub SUB] [--aud AUD] [--nbf SECONDS]\n"
		"                      [--publish PATTERN]... [--subscribe PATTERN]...\n"
		"                      [--consume GROUP]... [--metrics] [--admin]\n"
		"\n"
		"Prints an HS256 JWT for auth.mode \"jwt\". Without --secret, the first entry of the\n"
		"config's auth.hs256_secrets (and its kid) signs it, and auth.audience becomes its aud.\n"
		"Patterns: chatbot/abc, chatbot/* (any id), * (everything). --ttl defaults to 3600.\n"
		"--nbf sets nbf to now plus SECONDS (negative for the past); --ttl 0 or less mints an\n"
		"expired token (for tests).\n");
}

static int
read_secret_file(const char *path, char **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char buf[4096];
	size_t n;

	if (!f) {
		fprintf(stderr, "litegate token: %s: %s\n", path, strerror(errno));
		return -1;
	}
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--; /* a trailing newline is the editor's, not the secret's */
	*out = xstrndup(buf, n);
	*len = n;
	return 0;
}

static void
add_list(json_t *lg, const char *name, const char *v)
{
	json_t *a = json_object_get(lg, name);

	if (!a) {
		a = json_array();
		json_object_set_new(lg, name, a);
	}
	json_array_append_new(a, json_string(v));
}

int
gw_token_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },   { "secret", required_argument, NULL, 's' },
		{ "secret-file", required_argument, NULL, 'f' }, { "kid", required_argument, NULL, 'k' },
		{ "ttl", required_argument, NULL, 't' },      { "sub", required_argument, NULL, 'u' },
		{ "aud", required_argument, NULL, 'a' },      { "nbf", required_argument, NULL, 'n' },
		{ "publish", required_argument, NULL, 'P' },  { "subscribe", required_argument, NULL, 'S' },
		{ "consume", required_argument, NULL, 'C' },  { "admin", no_argument, NULL, 'A' },
		{ "metrics", no_argument, NULL, 'M' },        { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config = NULL, *kid = NULL, *aud = NULL, *sub = NULL;
	char *secret = NULL, *payload = NULL, *tok = NULL;
	size_t secret_len = 0;
	long long ttl = 3600, nbf = 0;
	int has_nbf = 0, c, rc = 2;
	json_t *claims = json_object(), *lg = json_object();
	struct gw_config cfg;
	struct stat st;
	char *end;

	memset(&cfg, 0, sizeof(cfg));
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': config = optarg; break;
		case 's':
			free(secret);
			secret = xstrdup(optarg);
			secret_len = strlen(optarg);
			break;
		case 'f':
			free(secret);
			secret = NULL;
			if (read_secret_file(optarg, &secret, &secret_len))
				goto out;
			break;
		case 'k': kid = optarg; break;
		case 'u': sub = optarg; break;
		case 'a': aud = optarg; break;
		case 't':
		case 'n':
			errno = 0;
			if (c == 't')
				ttl = strtoll(optarg, &end, 10);
			else
				nbf = strtoll(optarg, &end, 10);
			if (errno || *end || end == optarg) {
				fprintf(stderr, "litegate token: --%s: must be a number of seconds\n",
					c == 't' ? "ttl" : "nbf");
				goto out;
			}
			has_nbf |= c == 'n';
			break;
		case 'P': add_list(lg, "publish", optarg); break;
		case 'S': add_list(lg, "subscribe", optarg); break;
		case 'C': add_list(lg, "consume", optarg); break;
		case 'A': json_object_set_new(lg, "admin", json_true()); break;
		case 'M': json_object_set_new(lg, "metrics", json_true()); break;
		case 'h':
			usage(stdout);
			rc = 0;
			goto out;
		default:
			fprintf(stderr, "litegate token: %s: unknown or incomplete flag (see --help)\n",
				argv[optind - 1]);
			goto out;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "litegate token: %s: unexpected argument (see --help)\n", argv[optind]);
		goto out;
	}
	if (!secret) {
		/* The config's first HS256 secret, as the gateway would read it. */
		char *cargv[] = { "litegate", "--config", (char *)config, NULL };

		if (!config && stat(GW_DEFAULT_CONFIG, &st) == 0)
			cargv[2] = GW_DEFAULT_CONFIG;
		if (!cargv[2]) {
			fprintf(stderr, "litegate token: give --secret, --secret-file or --config\n");
			goto out;
		}
		if (gw_config_from_args(3, cargv, &cfg) != GW_CFG_RUN)
			goto out; /* the message is printed */
		for (size_t i = 0; i < cfg.n_auth_keys && !secret; i++) {
			if (!cfg.auth_keys[i].secret)
				continue;
			secret = xmalloc(cfg.auth_keys[i].secret_len + 1);
			memcpy(secret, cfg.auth_keys[i].secret, cfg.auth_keys[i].secret_len);
			secret_len = cfg.auth_keys[i].secret_len;
			if (!kid && cfg.auth_keys[i].kid)
				kid = cfg.auth_keys[i].kid;
		}
		if (!aud)
			aud = cfg.auth_audience;
		if (!secret) {
			fprintf(stderr, "litegate token: config %s has no auth.hs256_secrets\n", cargv[2]);
			goto out;
		}
	}
	if (secret_len < GW_JWT_MIN_SECRET) {
		fprintf(stderr, "litegate token: the secret needs at least %d bytes\n", GW_JWT_MIN_SECRET);
		goto out;
	}
	{
		long long now = (long long)time(NULL);

		json_object_set_new(claims, "iat", json_integer(now));
		json_object_set_new(claims, "exp", json_integer(now + ttl));
		if (has_nbf)
			json_object_set_new(claims, "nbf", json_integer(now + nbf));
	}
	if (sub)
		json_object_set_new(claims, "sub", json_string(sub));
	if (aud)
		json_object_set_new(claims, "aud", json_string(aud));
	json_object_set(claims, "litegate", lg);
	payload = json_dumps(claims, JSON_COMPACT);
	if (!payload || !(tok = gw_jwt_sign_hs256(kid, payload, secret, secret_len))) {
		fprintf(stderr, "litegate token: signing failed\n");
		rc = 1;
		goto out;
	}
	printf("%s\n", tok);
	rc = 0;
out:
	if (secret) {
		memset(secret, 0, secret_len);
		free(secret);
	}
	free(payload);
	free(tok);
	json_decref(lg);
	json_decref(claims);
	if (cfg.source)
		gw_config_free(&cfg);
	return rc;
}
