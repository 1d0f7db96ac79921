/*
 * jwt.c - compact JWS parsing and HS256 / RS256 / ES256 verification with OpenSSL 3 (see jwt.h).
 *
 * Layout: base64url, then the key set, then parsing (header, claims, the litegate claim), then
 * verification and claim checks, then signing (for `litegate token`) and scope patterns.
 */
#include "jwt.h"

#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "xalloc.h"

static int
fail(char *err, size_t errsz, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int
fail(char *err, size_t errsz, const char *fmt, ...)
{
	va_list ap;

	if (err && errsz) {
		va_start(ap, fmt);
		vsnprintf(err, errsz, fmt, ap);
		va_end(ap);
	}
	ERR_clear_error(); /* OpenSSL's per-thread error queue would otherwise grow with every refusal */
	return -1;
}

/* ---- base64url (RFC 4648 section 5, no padding) -------------------------------------------------- */

static const char b64url_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int
b64url_val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/* Strict decode: the alphabet only, no '=', and the unused low bits of the last symbol zero, so
 * every byte string has exactly one accepted encoding. @return 0 or -1 (bad input or no room). */
static int
b64url_decode(const char *s, size_t n, unsigned char *out, size_t cap, size_t *outlen)
{
	uint32_t acc = 0;
	size_t o = 0;
	int bits = 0;

	if (n % 4 == 1 || n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0) > cap)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int v = b64url_val((unsigned char)s[i]);

		if (v < 0)
			return -1;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if (acc != 0)
		return -1; /* stray bits: a second spelling of the same bytes */
	*outlen = o;
	return 0;
}

static size_t
b64url_encode(const unsigned char *in, size_t n, char *out)
{
	size_t o = 0, i = 0;

	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];

		out[o++] = b64url_chars[v >> 18];
		out[o++] = b64url_chars[(v >> 12) & 63];
		out[o++] = b64url_chars[(v >> 6) & 63];
		out[o++] = b64url_chars[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;

		out[o++] = b64url_chars[v >> 18];
		out[o++] = b64url_chars[(v >> 12) & 63];
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;

		out[o++] = b64url_chars[v >> 18];
		out[o++] = b64url_chars[(v >> 12) & 63];
		out[o++] = b64url_chars[(v >> 6) & 63];
	}
	out[o] = '\0';
	return o;
}

/* ---- Keys ------------------------------------------------------------------------------------------ */

struct jwt_key {
	enum gw_jwt_alg alg;           /* the only alg this key verifies */
	char kid[GW_JWT_KID_MAX + 1];  /* "" = none */
	unsigned char *secret;         /* HS256 */
	size_t secret_len;
	EVP_PKEY *pkey;                /* RS256, ES256 */
};

struct gw_jwt_keys {
	struct jwt_key keys[GW_JWT_MAX_KEYS];
	size_t n;
};

struct gw_jwt_keys *
gw_jwt_keys_new(void)
{
	return xcalloc(1, sizeof(struct gw_jwt_keys));
}

void
gw_jwt_keys_free(struct gw_jwt_keys *ks)
{
	if (!ks)
		return;
	for (size_t i = 0; i < ks->n; i++) {
		if (ks->keys[i].secret) {
			OPENSSL_cleanse(ks->keys[i].secret, ks->keys[i].secret_len);
			free(ks->keys[i].secret);
		}
		EVP_PKEY_free(ks->keys[i].pkey);
	}
	free(ks);
}

size_t
gw_jwt_keys_count(const struct gw_jwt_keys *ks)
{
	return ks ? ks->n : 0;
}

static struct jwt_key *
key_slot(struct gw_jwt_keys *ks, const char *kid, char *err, size_t errsz)
{
	struct jwt_key *k;

	if (ks->n == GW_JWT_MAX_KEYS) {
		fail(err, errsz, "more than %d keys", GW_JWT_MAX_KEYS);
		return NULL;
	}
	if (kid && strlen(kid) > GW_JWT_KID_MAX) {
		fail(err, errsz, "kid longer than %d bytes", GW_JWT_KID_MAX);
		return NULL;
	}
	k = &ks->keys[ks->n];
	memset(k, 0, sizeof(*k));
	if (kid)
		strcpy(k->kid, kid);
	return k;
}

int
gw_jwt_keys_add_secret(struct gw_jwt_keys *ks, const char *kid, const void *secret, size_t len,
		       char *err, size_t errsz)
{
	struct jwt_key *k;

	if (len < GW_JWT_MIN_SECRET)
		return fail(err, errsz, "an HS256 secret needs at least %d bytes", GW_JWT_MIN_SECRET);
	if (!(k = key_slot(ks, kid, err, errsz)))
		return -1;
	k->alg = GW_JWT_HS256;
	k->secret = xmalloc(len);
	memcpy(k->secret, secret, len);
	k->secret_len = len;
	ks->n++;
	return 0;
}

int
gw_jwt_keys_add_pem(struct gw_jwt_keys *ks, const char *kid, const char *pem, size_t len, char *err,
		    size_t errsz)
{
	struct jwt_key *k;
	EVP_PKEY *pkey = NULL;
	BIO *bio;
	char group[64];

	if (len > 1024 * 1024)
		return fail(err, errsz, "PEM text larger than 1 MiB");
	if (!(k = key_slot(ks, kid, err, errsz)))
		return -1;
	if (!(bio = BIO_new_mem_buf(pem, (int)len)))
		return fail(err, errsz, "out of memory");
	pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	if (!pkey) {
		X509 *x;

		ERR_clear_error();
		(void)BIO_reset(bio);
		if ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
			pkey = X509_get_pubkey(x);
			X509_free(x);
		}
	}
	BIO_free(bio);
	if (!pkey)
		return fail(err, errsz, "not a PEM public key (BEGIN PUBLIC KEY) or certificate");
	if (EVP_PKEY_is_a(pkey, "RSA")) {
		if (EVP_PKEY_get_bits(pkey) < 2048) {
			EVP_PKEY_free(pkey);
			return fail(err, errsz, "RSA keys need 2048 bits or more");
		}
		k->alg = GW_JWT_RS256;
	} else if (EVP_PKEY_is_a(pkey, "EC")) {
		if (!EVP_PKEY_get_group_name(pkey, group, sizeof(group), NULL) ||
		    (strcmp(group, SN_X9_62_prime256v1) && strcmp(group, "P-256"))) {
			EVP_PKEY_free(pkey);
			return fail(err, errsz, "EC keys must be on P-256 (ES256)");
		}
		k->alg = GW_JWT_ES256;
	} else {
		EVP_PKEY_free(pkey);
		return fail(err, errsz, "only RSA (RS256) and EC P-256 (ES256) public keys are supported");
	}
	k->pkey = pkey;
	ks->n++;
	return 0;
}

/* ---- Parsing ------------------------------------------------------------------------------------- */

static void
strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void
gw_scope_free(struct gw_scope *s)
{
	strv_free(s->publish, s->n_publish);
	strv_free(s->subscribe, s->n_subscribe);
	strv_free(s->consume, s->n_consume);
	memset(s, 0, sizeof(*s));
}

static char **
strv_copy(char *const *v, size_t n)
{
	char **out = n ? xcalloc(n, sizeof(char *)) : NULL;

	for (size_t i = 0; i < n; i++)
		out[i] = xstrdup(v[i]);
	return out;
}

void
gw_scope_copy(struct gw_scope *dst, const struct gw_scope *src)
{
	dst->publish = strv_copy(src->publish, src->n_publish);
	dst->n_publish = src->n_publish;
	dst->subscribe = strv_copy(src->subscribe, src->n_subscribe);
	dst->n_subscribe = src->n_subscribe;
	dst->consume = strv_copy(src->consume, src->n_consume);
	dst->n_consume = src->n_consume;
	dst->metrics = src->metrics;
	dst->admin = src->admin;
}

void
gw_jwt_free(struct gw_jwt *jwt)
{
	free(jwt->sub);
	strv_free(jwt->aud, jwt->n_aud);
	gw_scope_free(&jwt->scope);
	memset(jwt, 0, sizeof(*jwt));
}

/* Printable ASCII only: what we keep from a token may end up in a log line or a header. */
static int
printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return 0;
	return 1;
}

/* A pattern: "*", or name bytes ([A-Za-z0-9_.:/-]) with at most one '*', at the end. */
static int
pattern_ok(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > GW_JWT_PATTERN_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '*' && i == n - 1)
			continue;
		if (!(isalnum(c) || c == '_' || c == '.' || c == ':' || c == '-' || c == '/'))
			return 0;
	}
	return 1;
}

static int
load_patterns(json_t *v, const char *what, char ***out, size_t *n, char *err, size_t errsz)
{
	size_t i, cnt;
	json_t *it;

	if (!v)
		return 0;
	if (!json_is_array(v))
		return fail(err, errsz, "litegate.%s must be an array of patterns", what);
	cnt = json_array_size(v);
	if (cnt > GW_JWT_MAX_PATTERNS)
		return fail(err, errsz, "litegate.%s has more than %d patterns", what, GW_JWT_MAX_PATTERNS);
	*out = cnt ? xcalloc(cnt, sizeof(char *)) : NULL;
	json_array_foreach(v, i, it) {
		const char *s = json_string_value(it);

		if (!s || !pattern_ok(s))
			return fail(err, errsz, "litegate.%s[%zu] is not a pattern like chatbot/abc or chatbot/*",
				    what, i);
		(*out)[i] = xstrdup(s);
		*n = i + 1;
	}
	return 0;
}

static int
load_scope(json_t *lg, struct gw_scope *s, char *err, size_t errsz)
{
	json_t *admin, *metrics;

	if (!lg)
		return 0;
	if (!json_is_object(lg))
		return fail(err, errsz, "the litegate claim must be an object");
	if (load_patterns(json_object_get(lg, "publish"), "publish", &s->publish, &s->n_publish, err,
			  errsz) ||
	    load_patterns(json_object_get(lg, "subscribe"), "subscribe", &s->subscribe,
			  &s->n_subscribe, err, errsz) ||
	    load_patterns(json_object_get(lg, "consume"), "consume", &s->consume, &s->n_consume, err,
			  errsz))
		return -1;
	admin = json_object_get(lg, "admin");
	if (admin && !json_is_boolean(admin))
		return fail(err, errsz, "litegate.admin must be true or false");
	s->admin = json_is_true(admin);
	metrics = json_object_get(lg, "metrics");
	if (metrics && !json_is_boolean(metrics))
		return fail(err, errsz, "litegate.metrics must be true or false");
	s->metrics = json_is_true(metrics);
	return 0;
}

/* A NumericDate: any JSON number, floored to whole seconds, within +-2^53. */
static int
numeric_date(json_t *v, int64_t *out)
{
	double d;

	if (!json_is_number(v))
		return -1;
	d = json_number_value(v);
	if (!isfinite(d) || d > 9007199254740992.0 || d < -9007199254740992.0)
		return -1;
	*out = (int64_t)floor(d);
	return 0;
}

static json_t *
decode_json(const char *s, size_t n, unsigned char *scratch, size_t cap)
{
	size_t len;

	if (b64url_decode(s, n, scratch, cap, &len))
		return NULL;
	/* Duplicate members are refused: two readers of one token must not see two meanings. */
	return json_loadb((const char *)scratch, len, JSON_REJECT_DUPLICATES, NULL);
}

static enum gw_jwt_alg
alg_of(const char *s)
{
	if (!strcmp(s, "HS256"))
		return GW_JWT_HS256;
	if (!strcmp(s, "RS256"))
		return GW_JWT_RS256;
	if (!strcmp(s, "ES256"))
		return GW_JWT_ES256;
	return GW_JWT_ALG_NONE;
}

static int
parse_header(json_t *h, struct gw_jwt *out, char *err, size_t errsz)
{
	const char *alg, *kid, *typ;
	json_t *v;

	if (!json_is_object(h))
		return fail(err, errsz, "the header is not a JSON object");
	if (!(alg = json_string_value(json_object_get(h, "alg"))))
		return fail(err, errsz, "the header has no alg");
	if (!strcasecmp(alg, "none"))
		return fail(err, errsz, "unsigned tokens (alg none) are not accepted");
	if ((out->alg = alg_of(alg)) == GW_JWT_ALG_NONE)
		return fail(err, errsz, "unsupported alg: only HS256, RS256 and ES256");
	if (json_object_get(h, "crit"))
		return fail(err, errsz, "critical header extensions are not supported");
	if ((v = json_object_get(h, "kid"))) {
		if (!(kid = json_string_value(v)) || strlen(kid) > GW_JWT_KID_MAX || !printable(kid))
			return fail(err, errsz, "kid must be a printable string of at most %d bytes",
				    GW_JWT_KID_MAX);
		strcpy(out->kid, kid);
	}
	if ((v = json_object_get(h, "typ"))) {
		if (!(typ = json_string_value(v)) ||
		    (strcasecmp(typ, "JWT") && strcasecmp(typ, "at+jwt") &&
		     strcasecmp(typ, "application/jwt") && strcasecmp(typ, "application/at+jwt")))
			return fail(err, errsz, "typ must be JWT");
	}
	return 0;
}

static int
parse_claims(json_t *c, struct gw_jwt *out, char *err, size_t errsz)
{
	json_t *v;

	if (!json_is_object(c))
		return fail(err, errsz, "the payload is not a JSON object");
	if (!(v = json_object_get(c, "exp")))
		return fail(err, errsz, "the token has no exp");
	if (numeric_date(v, &out->exp))
		return fail(err, errsz, "exp must be a number of seconds");
	if ((v = json_object_get(c, "nbf"))) {
		if (numeric_date(v, &out->nbf))
			return fail(err, errsz, "nbf must be a number of seconds");
		out->has_nbf = 1;
	}
	if ((v = json_object_get(c, "sub"))) {
		const char *s = json_string_value(v);

		if (!s || strlen(s) > 256)
			return fail(err, errsz, "sub must be a string of at most 256 bytes");
		out->sub = xstrdup(s);
	}
	if ((v = json_object_get(c, "aud"))) {
		if (json_is_string(v)) {
			out->aud = xcalloc(1, sizeof(char *));
			out->aud[0] = xstrdup(json_string_value(v));
			out->n_aud = 1;
		} else if (json_is_array(v) && json_array_size(v) <= GW_JWT_MAX_PATTERNS) {
			size_t i;
			json_t *a;

			out->aud = xcalloc(json_array_size(v) + 1, sizeof(char *));
			json_array_foreach(v, i, a) {
				if (!json_is_string(a))
					return fail(err, errsz, "aud must be a string or an array of strings");
				out->aud[i] = xstrdup(json_string_value(a));
				out->n_aud = i + 1;
			}
		} else {
			return fail(err, errsz, "aud must be a string or an array of strings");
		}
	}
	return load_scope(json_object_get(c, "litegate"), &out->scope, err, errsz);
}

int
gw_jwt_parse(const char *tok, size_t len, struct gw_jwt *out, char *err, size_t errsz)
{
	const char *d1, *d2;
	unsigned char *scratch;
	struct gw_jwt j;
	json_t *h = NULL, *c = NULL;
	int rc = -1;

	memset(&j, 0, sizeof(j));
	if (len == 0)
		return fail(err, errsz, "empty token");
	if (len > GW_JWT_MAX_LEN)
		return fail(err, errsz, "token longer than %d bytes", GW_JWT_MAX_LEN);
	if (!(d1 = memchr(tok, '.', len)) || !(d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok))))
		return fail(err, errsz, "not a JWT: three base64url parts separated by dots expected");
	if (memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - tok)))
		return fail(err, errsz, "not a signed JWT (encrypted tokens are not supported)");
	if (d1 == tok || d2 == d1 + 1)
		return fail(err, errsz, "empty header or payload");
	scratch = xmalloc(len);
	if (!(h = decode_json(tok, (size_t)(d1 - tok), scratch, len))) {
		fail(err, errsz, "the header is not base64url-encoded JSON");
		goto out;
	}
	if (parse_header(h, &j, err, errsz))
		goto out;
	if (!(c = decode_json(d1 + 1, (size_t)(d2 - d1 - 1), scratch, len))) {
		fail(err, errsz, "the payload is not base64url-encoded JSON");
		goto out;
	}
	if (parse_claims(c, &j, err, errsz))
		goto out;
	if (b64url_decode(d2 + 1, len - (size_t)(d2 + 1 - tok), j.sig, sizeof(j.sig), &j.sig_len) ||
	    j.sig_len == 0) {
		fail(err, errsz, "the signature is missing or not base64url");
		goto out;
	}
	j.signing_len = (size_t)(d2 - tok);
	*out = j;
	memset(&j, 0, sizeof(j));
	rc = 0;
out:
	gw_jwt_free(&j);
	json_decref(h);
	json_decref(c);
	free(scratch);
	return rc;
}

/* ---- Verification ---------------------------------------------------------------------------------- */

static int
verify_hs256(const struct jwt_key *k, const struct gw_jwt *jwt, const char *tok)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;

	if (jwt->sig_len != 32)
		return -1;
	if (!HMAC(EVP_sha256(), k->secret, (int)k->secret_len, (const unsigned char *)tok,
		  jwt->signing_len, mac, &maclen) || maclen != 32)
		return -1;
	return CRYPTO_memcmp(mac, jwt->sig, 32) ? -1 : 0;
}

static int
verify_pkey(EVP_PKEY *pkey, const unsigned char *sig, size_t siglen, const char *tok, size_t len)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok;

	if (!ctx)
		return -1;
	ok = EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pkey) == 1 &&
	     EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *)tok, len) == 1;
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : -1;
}

/* JWS carries an ECDSA signature as r||s, 32 bytes each; OpenSSL verifies DER. */
static int
verify_es256(const struct jwt_key *k, const struct gw_jwt *jwt, const char *tok)
{
	ECDSA_SIG *es;
	BIGNUM *r, *s;
	unsigned char *der = NULL;
	int derlen, rc;

	if (jwt->sig_len != 64)
		return -1;
	r = BN_bin2bn(jwt->sig, 32, NULL);
	s = BN_bin2bn(jwt->sig + 32, 32, NULL);
	es = ECDSA_SIG_new();
	if (!r || !s || !es || !ECDSA_SIG_set0(es, r, s)) {
		BN_free(r);
		BN_free(s);
		ECDSA_SIG_free(es);
		return -1;
	}
	derlen = i2d_ECDSA_SIG(es, &der);
	ECDSA_SIG_free(es);
	if (derlen <= 0)
		return -1;
	rc = verify_pkey(k->pkey, der, (size_t)derlen, tok, jwt->signing_len);
	OPENSSL_free(der);
	return rc;
}

static int
verify_with(const struct jwt_key *k, const struct gw_jwt *jwt, const char *tok)
{
	switch (jwt->alg) {
	case GW_JWT_HS256:
		return verify_hs256(k, jwt, tok);
	case GW_JWT_RS256:
		return verify_pkey(k->pkey, jwt->sig, jwt->sig_len, tok, jwt->signing_len);
	case GW_JWT_ES256:
		return verify_es256(k, jwt, tok);
	default:
		return -1;
	}
}

int
gw_jwt_verify(const struct gw_jwt_keys *ks, const struct gw_jwt *jwt, const char *tok, size_t len,
	      char *err, size_t errsz)
{
	int by_kid = 0, tried = 0;

	if (!ks || jwt->signing_len >= len || jwt->alg == GW_JWT_ALG_NONE)
		return fail(err, errsz, "no key to verify the token");
	if (jwt->kid[0])
		for (size_t i = 0; i < ks->n && !by_kid; i++)
			by_kid = !strcmp(ks->keys[i].kid, jwt->kid);
	if (jwt->kid[0] && !by_kid)
		return fail(err, errsz, "unknown kid");
	for (size_t i = 0; i < ks->n; i++) {
		const struct jwt_key *k = &ks->keys[i];

		if (by_kid && strcmp(k->kid, jwt->kid))
			continue;
		/* The alg picks the key kind, never the other way round (alg confusion). */
		if (k->alg != jwt->alg)
			continue;
		tried++;
		if (verify_with(k, jwt, tok) == 0) {
			ERR_clear_error();
			return 0;
		}
	}
	if (!tried)
		return fail(err, errsz, by_kid ? "the key of this kid is not for this alg"
					       : "no key for this alg");
	return fail(err, errsz, "bad signature");
}

int
gw_jwt_check_claims(const struct gw_jwt *jwt, int64_t now, uint32_t leeway_s, const char *audience,
		    char *err, size_t errsz)
{
	int found = 0;

	if (jwt->exp <= now - (int64_t)leeway_s)
		return fail(err, errsz, "the token has expired");
	if (jwt->has_nbf && jwt->nbf > now + (int64_t)leeway_s)
		return fail(err, errsz, "the token is not valid yet (nbf)");
	if (!audience) {
		if (jwt->n_aud)
			return fail(err, errsz, "the token is for another audience");
		return 0;
	}
	for (size_t i = 0; i < jwt->n_aud && !found; i++)
		found = !strcmp(jwt->aud[i], audience);
	if (!found)
		return fail(err, errsz, "the token is not for this audience");
	return 0;
}

/* ---- Signing --------------------------------------------------------------------------------------- */

char *
gw_jwt_sign_hs256(const char *kid, const char *payload_json, const void *secret, size_t len)
{
	char header[GW_JWT_KID_MAX + 64];
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	size_t hl, pl = strlen(payload_json), n;
	char *tok;

	if (kid && *kid)
		snprintf(header, sizeof(header), "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", kid);
	else
		snprintf(header, sizeof(header), "{\"alg\":\"HS256\",\"typ\":\"JWT\"}");
	hl = strlen(header);
	tok = xmalloc((hl + pl + 32) / 3 * 4 + 64);
	n = b64url_encode((const unsigned char *)header, hl, tok);
	tok[n++] = '.';
	n += b64url_encode((const unsigned char *)payload_json, pl, tok + n);
	if (!HMAC(EVP_sha256(), secret, (int)len, (const unsigned char *)tok, n, mac, &maclen)) {
		free(tok);
		ERR_clear_error();
		return NULL;
	}
	tok[n++] = '.';
	b64url_encode(mac, maclen, tok + n);
	return tok;
}

/* ---- Scope patterns -------------------------------------------------------------------------------- */

int
gw_scope_match(const char *pattern, const char *name)
{
	size_t pl = strlen(pattern);

	if (pl && pattern[pl - 1] == '*')
		return !strncmp(pattern, name, pl - 1);
	return !strcmp(pattern, name);
}

int
gw_scope_any(char *const *patterns, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (gw_scope_match(patterns[i], name))
			return 1;
	return 0;
}
