/*
 * fuzz_jwt.c - libFuzzer target for JSON Web Tokens (gateway/jwt.c, OpenSSL 3, jansson): parsing a
 * compact JWS, choosing a key by kid and kind, verifying HS256 / RS256 / ES256, and the claims.
 *
 * Input: a mode byte, then bytes whose meaning depends on it.
 *  - mode & 3 == 0: the rest is a token, parsed and verified against the fixed key set (an HS256
 *    secret "k1", an EC P-256 key "ec-1", an RSA key "rsa-1"). A parsed token has exactly two dots,
 *    its signing input ends at the second, an alg of the three, a printable kid, a non-empty
 *    signature and well-formed scope patterns.
 *  - mode & 3 == 1, 2, 3: "<header JSON>\0<payload JSON>" is signed here with the k1 secret, the
 *    EC key or the RSA key (whatever alg the header claims), with the kid bits of the mode byte
 *    choosing the kid header (bit 2: the signing key's kid, bit 3: "nope"). Then:
 *      - parsing agrees with jansson: a parsed token's header and payload are JSON objects, alg is
 *        the header's, exp is floor(payload.exp);
 *      - verification succeeds exactly when the header's alg is the signing key's and the kid is
 *        absent or the signing key's: a token never verifies with a key of another kind (alg
 *        confusion) or another kid;
 *      - changing one character of the signed part makes a verified token fail (or not parse);
 *      - claims pass at exp - 1 (no nbf ahead, no aud) and fail at exp;
 *      - every scope pattern matches what it names.
 */
#include <jansson.h>
#include <math.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <string.h>

#include "fuzz.h"
#include "jwt.h"

#define SECRET "fuzz-secret-0123456789abcdef0123456789"

/* Test-only keys, made with `openssl genpkey` for this file. */
static const char ec_priv[] =
	"-----BEGIN PRIVATE KEY-----\n"
	"MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg7l+fIXBcDOP+bRhq\n"
	"xk1kMALKPrjAI1ka7ioqGw1Ux4KhRANCAATWxj3pWM+VRpQr3rph4E6Ld3B8mQib\n"
	"l0tVMfAOG1yDN8YVCBn/3dwg4GTwhyi1tEKe8cP9x9UxPoCOX5sTTYEm\n"
	"-----END PRIVATE KEY-----\n";

static const char rsa_priv[] =
	"-----BEGIN PRIVATE KEY-----\n"
	"MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQDFq69jI0irCern\n"
	"Z+tEHGBdxeus6jw6t7ViquCi7d7HHHyAHCp5nLt+e0mi1zpW6ZLVWud3rcV0SbVU\n"
	"SzhDVNacUACh3BEuK1JehPvNyQa7oJXlhg8jpVf2bMv+06ogu+jVUSKxOWrBeAGj\n"
	"auP2KkNWYEcP5ct1WFBKkX4LBcJrLHl+S2gBiJIzvG9F9bXqtTo/qxKvpLgtqYOH\n"
	"+mK5kbT0m68jWI26SEGdgp8V0TNHEn/Ijs+bDe2iAlMvGBRNwtBGQsgfcY9/2Zra\n"
	"D5oAb0+Tdi/wfEFltgd1YYB9pU2N9faazaG6M8OdnDiDK5yyELGNzDuUUJzhrP07\n"
	"AVPvaELPAgMBAAECggEARrO24t3O8yZz99sKom0H5uKQ/mM1scbdwPHfsUclpNBC\n"
	"k8v/QUpXIdFVMEKNYmLfGyMNoZftBUAL9J+G+0ZQEM7ouvwsxPfH2Xj1W9CocNnq\n"
	"Y5NEvPo58TFO8dGhi13K1OnVX9Bqp9KVu27TJMxPE4kSQdRupoU1Csbpb2Xa+Vvo\n"
	"mUZ7kKFOZsxAjJvM6E4RciedaLE/qUT8YmpTMu+TRTdSOcqelDsvj020kHheFGFh\n"
	"AREjF3QV00TFHyremtAzn1RqQmkMRE7khO9uJuecnZKToqHrOMd+PuyFo2oky1X2\n"
	"LbfPZvoN94wXz36QPhuXP6QsROLX4nNuScWYu1MzOQKBgQDzWN2R86+UItiyQ815\n"
	"y0nbGPtjxd8xfoX/M68EaO+eLQuOVk9eWi15XpMvfScosUwn4Leb6ZevALX/8mXw\n"
	"m5h5944p1TJ94b8iXbtIYPesUX98sIOf5WzovmvYQVy3qjPDuawqzl7jRJs8CS+v\n"
	"JF8cy/TLFvw5+hu6bqiZmJ1+bQKBgQDP8tS8Y2/runmok6HpUXtRsafhJYY5UyTP\n"
	"MxNm/o2ZT17bx1vPQAVsRkKqpPvgqXXcsIu/K5Q4R/UjZIkwI3OO1DQxAU/0zdOb\n"
	"Hj7FS3y119/n3Xqw6fuGl01TOhGmgZpdNn1aUkQQZMasx39dkC98XjRQGN2k+T7B\n"
	"Xu4UFsYQqwKBgComwnp9k3Q9dPur8vOd2vUwpprps3eHSv6hnTdOVfM4KkBFgwn8\n"
	"5NOZJjWboCTUUTS3IBbJp5SQsvXarv22dfrqfp2QaGaVq93wDnjDEyOuGj8m9CXG\n"
	"P88w7M1QxRarTLwidUgU5yrGv3zuumvECRWb3pMvMBF62UK52EqCvQUhAoGAQRP/\n"
	"281K030SYd2CCGDFtTViEqYJsZsBpA6Z/dugOOCMET/8zYl9qPr8Fid35EFkb2KY\n"
	"+YUL5+ktIJxwCq6tlX93rfZ5LWXU2XDHuDr9lnMu0YOQyBkR7HchbfB4YaGhy5Yn\n"
	"+MJSJsdDHgN5KrDbC5L30DFX/C88oouw+nx+E+0CgYAR4eyyeUuraeZYR7WHrRmR\n"
	"lEksqn+rRtPmSBMT9IRljbZs/xsZKADL3jXag9iF8J3/+xYhck3XfFWAkXxhgu0f\n"
	"FXDFsV3S/lq11suRwI3bhsRUPFeJuzmQ5HsGKUML3i1RGq8IAHHoOnNKx26MKx6f\n"
	"KkZRnQeNsQVHEZCosoPfAg==\n"
	"-----END PRIVATE KEY-----\n";

static struct gw_jwt_keys *keys;
static EVP_PKEY *ec_key, *rsa_key;

static EVP_PKEY *
load_priv(const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);

	BIO_free(b);
	FUZZ_CHECK(k);
	return k;
}

/* The public half of @p k as PEM, added to the key set under @p kid. */
static void
add_public(EVP_PKEY *k, const char *kid)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *pem, err[128];
	long n;

	FUZZ_CHECK(b && PEM_write_bio_PUBKEY(b, k));
	n = BIO_get_mem_data(b, &pem);
	FUZZ_CHECK(gw_jwt_keys_add_pem(keys, kid, pem, (size_t)n, err, sizeof(err)) == 0);
	BIO_free(b);
}

static void
setup(void)
{
	char err[128];

	if (keys)
		return;
	keys = gw_jwt_keys_new();
	FUZZ_CHECK(gw_jwt_keys_add_secret(keys, "k1", SECRET, strlen(SECRET), err, sizeof(err)) == 0);
	ec_key = load_priv(ec_priv);
	rsa_key = load_priv(rsa_priv);
	add_public(ec_key, "ec-1");
	add_public(rsa_key, "rsa-1");
	FUZZ_CHECK(gw_jwt_keys_count(keys) == 3);
	/* Refused keys: too short a secret, and a private key where a public one belongs. */
	FUZZ_CHECK(gw_jwt_keys_add_secret(keys, NULL, "short", 5, err, sizeof(err)) == -1);
	FUZZ_CHECK(gw_jwt_keys_add_pem(keys, NULL, ec_priv, strlen(ec_priv), err, sizeof(err)) == -1);
	FUZZ_CHECK(gw_jwt_keys_count(keys) == 3);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	setup();
	return 0;
}

static size_t
b64url(const unsigned char *in, size_t n, char *out)
{
	static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0;

	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		size_t left = n - i;

		if (left > 1)
			v |= (uint32_t)in[i + 1] << 8;
		if (left > 2)
			v |= in[i + 2];
		out[o++] = t[v >> 18];
		out[o++] = t[(v >> 12) & 63];
		if (left > 1)
			out[o++] = t[(v >> 6) & 63];
		if (left > 2)
			out[o++] = t[v & 63];
	}
	return o;
}

/* Sign @p in with @p kind's key as that kind's alg would: HMAC, PKCS#1 v1.5, or ECDSA r||s. */
static size_t
sign(int kind, const char *in, size_t n, unsigned char *sig)
{
	unsigned int maclen = 0;
	size_t len = 512;
	EVP_MD_CTX *ctx;

	if (kind == 1) {
		FUZZ_CHECK(HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (const unsigned char *)in, n, sig,
				&maclen));
		return maclen;
	}
	ctx = EVP_MD_CTX_new();
	FUZZ_CHECK(ctx && EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, kind == 2 ? ec_key : rsa_key) == 1);
	FUZZ_CHECK(EVP_DigestSign(ctx, sig, &len, (const unsigned char *)in, n) == 1);
	EVP_MD_CTX_free(ctx);
	if (kind == 2) {
		const unsigned char *p = sig;
		ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)len);
		const BIGNUM *r, *s;
		unsigned char raw[64];

		FUZZ_CHECK(es);
		ECDSA_SIG_get0(es, &r, &s);
		FUZZ_CHECK(BN_bn2binpad(r, raw, 32) == 32 && BN_bn2binpad(s, raw + 32, 32) == 32);
		ECDSA_SIG_free(es);
		memcpy(sig, raw, 64);
		return 64;
	}
	return len;
}

static int
printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return 0;
	return 1;
}

static void
check_patterns(char *const *v, size_t n)
{
	FUZZ_CHECK(n <= GW_JWT_MAX_PATTERNS);
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(v[i]);
		char name[GW_JWT_PATTERN_MAX + 8];

		FUZZ_CHECK(l >= 1 && l <= GW_JWT_PATTERN_MAX);
		FUZZ_CHECK(!memchr(v[i], '*', l - 1)); /* '*' only last */
		/* A pattern covers what it names: itself, or its prefix plus anything. */
		memcpy(name, v[i], l + 1);
		if (name[l - 1] == '*')
			memcpy(name + l - 1, "xyz", 4);
		FUZZ_CHECK(gw_scope_match(v[i], name));
		FUZZ_CHECK(gw_scope_any(v, n, name));
	}
}

/* Invariants of any token gw_jwt_parse() accepted. */
static void
check_parsed(const struct gw_jwt *j, const char *tok, size_t len)
{
	size_t dots = 0;

	for (size_t i = 0; i < len; i++)
		dots += tok[i] == '.';
	FUZZ_CHECK(dots == 2);
	FUZZ_CHECK(j->signing_len < len && tok[j->signing_len] == '.');
	FUZZ_CHECK(memchr(tok, '.', j->signing_len) != NULL);
	FUZZ_CHECK(j->alg == GW_JWT_HS256 || j->alg == GW_JWT_RS256 || j->alg == GW_JWT_ES256);
	FUZZ_CHECK(j->sig_len >= 1 && j->sig_len <= sizeof(j->sig));
	FUZZ_CHECK(strlen(j->kid) <= GW_JWT_KID_MAX && printable(j->kid));
	check_patterns(j->scope.publish, j->scope.n_publish);
	check_patterns(j->scope.subscribe, j->scope.n_subscribe);
	check_patterns(j->scope.consume, j->scope.n_consume);
	for (size_t i = 0; i < j->n_aud; i++)
		FUZZ_CHECK(j->aud[i] != NULL);
}

static void
raw_token(const char *tok, size_t len)
{
	struct gw_jwt j;
	char err[200];

	err[0] = '\0';
	if (gw_jwt_parse(tok, len, &j, err, sizeof(err))) {
		FUZZ_CHECK(err[0] && !strchr(err, '"') && !strchr(err, '\n'));
		return;
	}
	check_parsed(&j, tok, len);
	(void)gw_jwt_verify(keys, &j, tok, len, err, sizeof(err));
	gw_jwt_free(&j);
}

static void
round_trip(uint8_t mode, const char *in, size_t n)
{
	static const char *const kids[] = { NULL, "k1", "ec-1", "rsa-1" };
	static const char *const algs[] = { NULL, "HS256", "ES256", "RS256" };
	const char *nul = memchr(in, '\0', n), *hj, *pj, *kid = NULL;
	size_t hl, pl, tl, sl;
	json_t *h, *p;
	char *tok, err[200];
	unsigned char sig[512];
	struct gw_jwt j;
	int kind = mode & 3, parsed, verified, expect;

	if (!nul)
		return;
	hj = in;
	hl = (size_t)(nul - in);
	pj = nul + 1;
	pl = n - hl - 1;
	/* The kid header is spliced in as the first member when the mode asks for one. */
	if (mode & 4)
		kid = kids[kind];
	else if (mode & 8)
		kid = "nope";
	{
		char *hdr = malloc(hl + 64);
		size_t k = 0;

		FUZZ_CHECK(hdr);
		if (kid && hl && hj[0] == '{') {
			k = (size_t)snprintf(hdr, 64, "{\"kid\":\"%s\"%s", kid, hl > 1 && hj[1] != '}' ? "," : "");
			memcpy(hdr + k, hj + 1, hl - 1);
			k += hl - 1;
		} else {
			memcpy(hdr, hj, hl);
			k = hl;
			kid = NULL;
		}
		tok = malloc((k + pl) / 3 * 4 + 16 + 700);
		FUZZ_CHECK(tok);
		tl = b64url((const unsigned char *)hdr, k, tok);
		tok[tl++] = '.';
		tl += b64url((const unsigned char *)pj, pl, tok + tl);
		h = json_loadb(hdr, k, JSON_REJECT_DUPLICATES, NULL);
		free(hdr);
	}
	p = json_loadb(pj, pl, JSON_REJECT_DUPLICATES, NULL);
	sl = sign(kind, tok, tl, sig);
	tok[tl] = '.';
	tl = tl + 1 + b64url(sig, sl, tok + tl + 1);

	parsed = gw_jwt_parse(tok, tl, &j, err, sizeof(err)) == 0;
	if (parsed) {
		const char *alg = json_string_value(json_object_get(h, "alg"));
		json_t *exp = json_object_get(p, "exp");

		check_parsed(&j, tok, tl);
		/* jansson reads the same: objects, the alg, the exp. */
		FUZZ_CHECK(json_is_object(h) && json_is_object(p) && alg && json_is_number(exp));
		FUZZ_CHECK(!strcmp(alg, algs[j.alg == GW_JWT_HS256 ? 1 : j.alg == GW_JWT_ES256 ? 2 : 3]));
		FUZZ_CHECK(j.exp == (int64_t)floor(json_number_value(exp)));
		FUZZ_CHECK(!strcmp(j.kid, kid ? kid : json_string_value(json_object_get(h, "kid"))
						 ? json_string_value(json_object_get(h, "kid")) : ""));
		verified = gw_jwt_verify(keys, &j, tok, tl, err, sizeof(err)) == 0;
		/* Only the signing key's alg, under its kid or none, verifies. */
		expect = !strcmp(alg, algs[kind]) && (!j.kid[0] || !strcmp(j.kid, kids[kind]));
		FUZZ_CHECK(verified == expect);
		if (verified) {
			/* One character changed in the signed part: no longer this token. */
			size_t at = (size_t)(fuzz_hash((const uint8_t *)tok, tl) % j.signing_len);
			char was = tok[at];
			struct gw_jwt j2;

			if (was != '.') {
				tok[at] = was == 'A' ? 'B' : 'A';
				if (gw_jwt_parse(tok, tl, &j2, err, sizeof(err)) == 0) {
					FUZZ_CHECK(gw_jwt_verify(keys, &j2, tok, tl, err, sizeof(err)) != 0);
					gw_jwt_free(&j2);
				}
				tok[at] = was;
			}
		}
		if (j.exp > INT64_MIN + 2) {
			int ok = (!j.has_nbf || j.nbf <= j.exp - 1) && !j.n_aud;

			FUZZ_CHECK((gw_jwt_check_claims(&j, j.exp - 1, 0, NULL, err, sizeof(err)) == 0) == ok);
			FUZZ_CHECK(gw_jwt_check_claims(&j, j.exp, 0, NULL, err, sizeof(err)) != 0);
		}
		gw_jwt_free(&j);
	}
	json_decref(h);
	json_decref(p);
	free(tok);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	setup();
	if (size < 1)
		return 0;
	if ((data[0] & 3) == 0)
		raw_token((const char *)data + 1, size - 1);
	else
		round_trip(data[0], (const char *)data + 1, size - 1);
	ERR_clear_error();
	return 0;
}
