/*
 * jwt.h - JSON Web Tokens (RFC 7519) as litegate's credentials: parse a compact JWS over (buf, len),
 * verify its signature with OpenSSL 3 (HS256, RS256, ES256 only), check its time and audience
 * claims, and read the "litegate" claim that says what the bearer may do.
 *
 * Pure code over (buf, len): no lws, no engine, so a libFuzzer target can drive it. Any thread: a
 * gw_jwt_keys is immutable once built, and parsing touches nothing shared.
 *
 * What is refused, on purpose: "alg":"none" and every algorithm but the three above; a key of the
 * wrong kind for the token's alg (an RSA public key is never used as an HMAC secret, the classic
 * alg-confusion attack); a "crit" header (no extension is understood); JWE (five segments); any
 * base64url that is not canonical (padding, stray bits); duplicate JSON members; a token without
 * "exp". Keys never come from the token (jwk, jku, x5u, x5c are ignored).
 */
#ifndef GW_JWT_H
#define GW_JWT_H

#include <stddef.h>
#include <stdint.h>

#define GW_JWT_MAX_LEN 8192      /* longest token accepted (an RS4096 token is about 1 KiB) */
#define GW_JWT_KID_MAX 128       /* longest "kid" */
#define GW_JWT_MAX_KEYS 64       /* keys in one set */
#define GW_JWT_MAX_PATTERNS 256  /* entries of one list of the litegate claim */
#define GW_JWT_PATTERN_MAX 192   /* bytes of one pattern */
#define GW_JWT_MIN_SECRET 32     /* HS256 secrets shorter than the hash are refused (RFC 7518 3.2) */

enum gw_jwt_alg {
	GW_JWT_ALG_NONE = 0, /* not a valid alg: the zero value */
	GW_JWT_HS256,        /* HMAC-SHA256 with a shared secret */
	GW_JWT_RS256,        /* RSASSA-PKCS1-v1_5 with SHA-256, RSA public key of 2048 bits or more */
	GW_JWT_ES256,        /* ECDSA on P-256 with SHA-256, signature as r||s (64 bytes) */
};

/* The "litegate" claim: what the bearer may do. Absent lists are empty: nothing is allowed. */
struct gw_scope {
	char **publish;        /* topic patterns the bearer may publish to */
	size_t n_publish;
	char **subscribe;      /* topic patterns it may stream and read (SSE, WebSocket, history) */
	size_t n_subscribe;
	char **consume;        /* consumer-group patterns it may pop, ack and nack */
	size_t n_consume;
	int metrics;           /* may read /metrics (a scraper's token needs nothing else) */
	int admin;             /* deletes, group administration, /metrics, and everything above */
};

/* A parsed token. Strings and lists are owned; release with gw_jwt_free(). */
struct gw_jwt {
	enum gw_jwt_alg alg;
	char kid[GW_JWT_KID_MAX + 1]; /* "" when the header has none */
	size_t signing_len;           /* bytes of "header.payload" at the start of the token */
	unsigned char sig[1024];      /* the decoded signature (RSA up to 8192 bits) */
	size_t sig_len;
	int64_t exp;                  /* NumericDate seconds, floored */
	int has_nbf;
	int64_t nbf;
	char *sub;                    /* "sub" or NULL; for logs */
	char **aud;                   /* "aud" as a list (a string is a list of one) */
	size_t n_aud;
	struct gw_scope scope;
};

/* Opaque set of verification keys. */
struct gw_jwt_keys;

/** @brief An empty key set. Owned: release with gw_jwt_keys_free(). */
struct gw_jwt_keys *gw_jwt_keys_new(void);
/** @brief Release the set and its keys. Accepts NULL. */
void gw_jwt_keys_free(struct gw_jwt_keys *ks);
/** @brief Number of keys in the set. */
size_t gw_jwt_keys_count(const struct gw_jwt_keys *ks);

/**
 * @brief Add an HS256 secret.
 * @param kid NULL or "" for none; at most GW_JWT_KID_MAX bytes.
 * @param[out] err a message on failure.
 * @return 0, or -1 (too short, too many keys, kid too long).
 */
int gw_jwt_keys_add_secret(struct gw_jwt_keys *ks, const char *kid, const void *secret, size_t len,
			   char *err, size_t errsz);

/**
 * @brief Add a public key from PEM text: a SubjectPublicKeyInfo ("BEGIN PUBLIC KEY") or an X.509
 *        certificate. RSA of 2048 bits or more verifies RS256 tokens, EC P-256 verifies ES256.
 * @return 0, or -1 with @p err set (unreadable, another key type or curve, RSA too small).
 */
int gw_jwt_keys_add_pem(struct gw_jwt_keys *ks, const char *kid, const char *pem, size_t len,
			char *err, size_t errsz);

/**
 * @brief Split, decode and parse a compact JWS: the header (alg, kid, typ, crit), the payload's
 *        claims (exp, nbf, aud, sub, litegate) and the signature bytes. Verifies nothing.
 * @param[out] out filled on success only; release with gw_jwt_free().
 * @param[out] err on failure, a short reason fit for a WWW-Authenticate error_description (no
 *        quotes, no control characters).
 * @return 0 or -1.
 */
int gw_jwt_parse(const char *tok, size_t len, struct gw_jwt *out, char *err, size_t errsz);

/** @brief Release what gw_jwt_parse() allocated. Accepts a zeroed struct. */
void gw_jwt_free(struct gw_jwt *jwt);

/**
 * @brief Verify @p jwt's signature over the first jwt->signing_len bytes of @p tok (the same
 *        buffer it was parsed from) with a key of @p ks chosen by kid and kind: the keys that carry
 *        the token's kid when one does, else (no kid in the token) every key of the alg's kind.
 * @return 0 when one key verifies it, or -1 with @p err set.
 */
int gw_jwt_verify(const struct gw_jwt_keys *ks, const struct gw_jwt *jwt, const char *tok,
		  size_t len, char *err, size_t errsz);

/**
 * @brief Check the time and audience claims at @p now (seconds since the epoch) with @p leeway_s
 *        of clock skew either way: exp > now - leeway, nbf <= now + leeway. With @p audience
 *        (non-NULL), "aud" must contain it; without, a token that has an "aud" is refused
 *        (RFC 7519 4.1.3: it is meant for someone else).
 * @return 0, or -1 with @p err set.
 */
int gw_jwt_check_claims(const struct gw_jwt *jwt, int64_t now, uint32_t leeway_s,
			const char *audience, char *err, size_t errsz);

/**
 * @brief Sign an HS256 token over @p payload_json (taken as it is, so it must be a JSON object).
 * @param kid NULL or "" for no kid header.
 * @return the token, NUL-terminated, owned (free()), or NULL if OpenSSL failed.
 */
char *gw_jwt_sign_hs256(const char *kid, const char *payload_json, const void *secret, size_t len);

/**
 * @brief Does @p pattern cover @p name? Patterns are "*" (everything), an exact name, or a prefix
 *        ending in '*' (the parent "chatbot" then a slash and '*': every id under chatbot; or
 *        "chatbot/user-42-" then '*'). Nothing else is special.
 */
int gw_scope_match(const char *pattern, const char *name);

/** @brief Does any of @p patterns cover @p name? */
int gw_scope_any(char *const *patterns, size_t n, const char *name);

/** @brief Deep-copy @p src into @p dst (owned; release with gw_scope_free()). */
void gw_scope_copy(struct gw_scope *dst, const struct gw_scope *src);
void gw_scope_free(struct gw_scope *s);

#endif /* GW_JWT_H */
