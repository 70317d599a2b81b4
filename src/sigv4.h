/* sigv4.h: AWS Signature Version 4, Authorization-header form, for the requests the uploader
 * sends to CloudWatch Logs (and any other AWS JSON/query service). */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "util.h"

#define SIGV4_HEX_LEN 64 /* hex SHA-256 digest or signature, without the NUL */

/* Headers sigv4_sign() can ask the caller to add: security token, date, content hash,
 * authorization. */
#define SIGV4_MAX_ADDED_HEADERS 4

typedef struct sigv4_signer sigv4_signer;

typedef struct sigv4_header {
    const char *name;
    const char *value;
} sigv4_header;

/* sigv4_request.flags */
enum {
    /* Drop empty, "." and ".." path segments before encoding. Every service but S3 wants it;
     * CloudWatch Logs only ever sees "/". A trailing '/' (or a trailing "." / "..") keeps a
     * trailing '/' in the result. */
    SIGV4_NORMALIZE_PATH = 1u << 0,
    /* Add x-amz-content-sha256 (the payload hash) and sign it, as S3 requires. */
    SIGV4_SIGN_BODY = 1u << 1,
    /* Add x-amz-security-token but leave it out of the signed headers, for the few services
     * that expect the token appended after signing. */
    SIGV4_UNSIGNED_TOKEN = 1u << 2,
};

typedef struct sigv4_request {
    const char *method; /* "POST" */
    /* The path as it goes on the wire, without the query; NULL or "" means "/". Each segment
     * is URI-encoded once, so an already percent-encoded path comes out double-encoded, which
     * is what every service but S3 expects. */
    const char *path;
    /* The query without '?', NULL or "" for none. Keys and values are percent-decoded and
     * re-encoded, so "%7E", "~" and raw UTF-8 all canonicalize alike; '+' is a literal plus. */
    const char *query;
    /* Every header to sign, in the order sent; must include host. Names are matched without
     * regard to case; repeated names are joined with ',' in the order given. Must not include
     * authorization, x-amz-date, x-amz-security-token, or x-amz-content-sha256 with
     * SIGV4_SIGN_BODY: the signer adds those. Values are trimmed and inner runs of spaces and
     * tabs collapsed for signing; a value holding CR or LF is refused. */
    const sigv4_header *headers;
    size_t n_headers;
    const void *payload; /* may be NULL when payload_len is 0 */
    size_t payload_len;
    unsigned flags; /* SIGV4_* above */
} sigv4_request;

/* What sigv4_sign() produced. Zero-initialize once, reuse for every request (its buffers are
 * kept, so signing does not allocate once they are large enough), sigv4_result_done() at the
 * end. headers[] point into the result itself (do not copy it by value) and stay valid until
 * the next sign or done. */
typedef struct sigv4_result {
    /* To add to the request, in this order: X-Amz-Security-Token (when there is a token),
     * X-Amz-Date, x-amz-content-sha256 (with SIGV4_SIGN_BODY), Authorization. */
    sigv4_header headers[SIGV4_MAX_ADDED_HEADERS];
    size_t n_headers;
    const char *authorization; /* the Authorization value, also in headers[] */
    char amz_date[17];         /* YYYYMMDDTHHMMSSZ */
    char payload_hash[SIGV4_HEX_LEN + 1];
    char signature[SIGV4_HEX_LEN + 1];
    buf canonical_request; /* NUL-terminated; len excludes the NUL */
    buf string_to_sign;    /* NUL-terminated; len excludes the NUL */
    buf values;            /* storage behind headers[]; holds the token, wiped when done */
} sigv4_result;

/* A signer for one region and service ("us-east-1", "logs"). Signing fails with -ENOKEY until
 * credentials are set. */
sigv4_signer *sigv4_new(const char *region, const char *service);
/* Wipes the secret, token and derived key. NULL is a no-op. */
void sigv4_free(sigv4_signer *s);

/* Replace the credentials; session_token may be NULL. The old secret and token are wiped.
 * The derived signing key survives only when the secret is unchanged, so refreshing the same
 * credentials costs nothing. -EINVAL on an empty key id or secret, or a control character in
 * the key id or token (they go into headers); the old credentials then stay. */
int sigv4_set_credentials(sigv4_signer *s, const char *access_key_id, const char *secret_access_key,
                          const char *session_token);

/* Sign req as of `when` (seconds since the epoch, UTC). The signing key is derived on the
 * first request of a UTC day and reused for the rest of it. Returns 0; -EINVAL for a malformed
 * request (no method, no host, a reserved or invalid header name, CR/LF in a value); -ENOKEY
 * without credentials; -EIO when the crypto library fails. On failure *out holds no usable
 * signature. */
int sigv4_sign(sigv4_signer *s, const sigv4_request *req, time_t when, sigv4_result *out);

/* Free the result's buffers, wiping the copy of the session token. The struct may be reused. */
void sigv4_result_done(sigv4_result *r);

/* How many times the signing key has been derived: for tests and metrics. */
uint64_t sigv4_key_derivations(const sigv4_signer *s);
