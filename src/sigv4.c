/* sigv4.c: builds the SigV4 canonical request, string to sign and signature, keeping the
 * per-day signing key in the signer so a request costs two SHA-256 and one HMAC. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "sigv4.h"

#include <assert.h>
#include <limits.h>
#include <stdbool.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "log.h"

#define ALGORITHM "AWS4-HMAC-SHA256"
#define TERMINATOR "aws4_request"
#define KEY_LEN 32
#define DATE_LEN 8 /* YYYYMMDD */
#define STACK_HEADERS 32

struct sigv4_signer {
    char *region;
    char *service;
    char *access_key_id;
    char *secret;
    size_t secret_len;
    char *token;
    bool key_valid;
    char key_date[DATE_LEN + 1];
    unsigned char key[KEY_LEN];
    uint64_t derivations;
};

/* One header as it enters the canonical form; `order` keeps repeated names in request order
 * through qsort, which is not stable. */
typedef struct canon_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t order;
} canon_header;

typedef struct query_param {
    const char *key;
    size_t key_len;
    const char *value;
    size_t value_len;
} query_param;

static void free_secret(char **p)
{
    if (*p) {
        OPENSSL_cleanse(*p, strlen(*p));
        free(*p);
        *p = NULL;
    }
}

/* Grow a buffer that may hold secrets without leaving a copy in freed memory. Its contents
 * are discarded: callers reserve before they write. */
static void wipe_reserve(buf *b, size_t total)
{
    b->len = 0;
    if (b->cap >= total)
        return;
    if (b->data) {
        OPENSSL_cleanse(b->data, b->cap);
        free(b->data);
    }
    b->data = xmalloc(total);
    b->cap = total;
}

static void wipe_buf(buf *b)
{
    if (b->data)
        OPENSSL_cleanse(b->data, b->cap);
    buf_free(b);
}

static void to_hex(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0xf];
    }
    out[2 * n] = '\0';
}

static int sha256_hex(const void *p, size_t n, char out[SIGV4_HEX_LEN + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;

    if (!EVP_Digest(p ? p : "", n, md, &md_len, EVP_sha256(), NULL) || md_len != KEY_LEN)
        return log_error_errno(-EIO, "sigv4: SHA-256 failed");
    to_hex(md, md_len, out);
    return 0;
}

static int hmac_sha256(const void *key, size_t key_len, const void *msg, size_t msg_len,
                       unsigned char out[KEY_LEN])
{
    unsigned int out_len = 0;

    if (key_len > INT_MAX || !HMAC(EVP_sha256(), key, (int)key_len, msg, msg_len, out, &out_len) ||
        out_len != KEY_LEN)
        return log_error_errno(-EIO, "sigv4: HMAC-SHA256 failed");
    return 0;
}

static bool is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '~';
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* Nothing that could end a header line or confuse a log may reach a header we build. */
static bool has_control(const char *p)
{
    for (; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return true;
    return false;
}

/* RFC 9110 token characters: anything else cannot be a header name. */
static bool is_tchar(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static char ascii_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static void append_encoded_byte(buf *b, unsigned char c)
{
    static const char digits[] = "0123456789ABCDEF";
    if (is_unreserved(c)) {
        buf_appendc(b, (char)c);
        return;
    }
    char esc[3] = {'%', digits[c >> 4], digits[c & 0xf]};
    buf_append(b, esc, sizeof(esc));
}

static void append_encoded(buf *b, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        append_encoded_byte(b, (unsigned char)p[i]);
}

/* Decode %XX escapes and encode again, so every spelling of a byte canonicalizes alike. A '%'
 * that starts no valid escape is taken literally. */
static void append_reencoded(buf *b, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (p[i] == '%' && i + 2 < n && (hi = hex_value(p[i + 1])) >= 0 &&
            (lo = hex_value(p[i + 2])) >= 0) {
            append_encoded_byte(b, (unsigned char)(hi << 4 | lo));
            i += 2;
        } else {
            append_encoded_byte(b, (unsigned char)p[i]);
        }
    }
}

static bool segment_is(const char *seg, size_t n, const char *what)
{
    return n == strlen(what) && memcmp(seg, what, n) == 0;
}

static void append_canonical_path(buf *b, const char *path, bool normalize)
{
    if (!path || !*path)
        path = "/";

    if (!normalize) {
        if (path[0] != '/')
            buf_appendc(b, '/');
        for (const char *p = path; *p; p++) {
            if (*p == '/')
                buf_appendc(b, '/');
            else
                append_encoded_byte(b, (unsigned char)*p);
        }
        return;
    }

    /* A path naming a directory ("/a/", "/a/.", "/a/b/..") keeps its trailing slash. */
    const char *last = strrchr(path, '/');
    last = last ? last + 1 : path;
    bool directory = !*last || strcmp(last, ".") == 0 || strcmp(last, "..") == 0;

    size_t root = b->len;
    buf_appendc(b, '/');
    for (const char *p = path; *p;) {
        const char *seg = p;
        while (*p && *p != '/')
            p++;
        size_t n = (size_t)(p - seg);
        if (*p == '/')
            p++;

        if (n == 0 || segment_is(seg, n, "."))
            continue;
        if (segment_is(seg, n, "..")) {
            /* Segments were written as "/a/b": cut back to the last slash, never past root. */
            size_t q = b->len - 1;
            while (q > root && b->data[q] != '/')
                q--;
            b->len = q > root ? q : root + 1;
            continue;
        }
        if (b->data[b->len - 1] != '/')
            buf_appendc(b, '/');
        append_encoded(b, seg, n);
    }
    if (directory && b->data[b->len - 1] != '/')
        buf_appendc(b, '/');
}

static int compare_params(const void *a, const void *b)
{
    const query_param *x = a, *y = b;
    int r = memcmp(x->key, y->key, MIN(x->key_len, y->key_len));
    if (r == 0 && x->key_len != y->key_len)
        return x->key_len < y->key_len ? -1 : 1;
    if (r != 0)
        return r;
    r = memcmp(x->value, y->value, MIN(x->value_len, y->value_len));
    if (r == 0 && x->value_len != y->value_len)
        return x->value_len < y->value_len ? -1 : 1;
    return r;
}

static void append_canonical_query(buf *b, const char *query)
{
    if (!query || !*query)
        return;

    size_t n_params = 1;
    for (const char *p = query; *p; p++)
        n_params += *p == '&';

    /* Encode every key and value first, then point into the finished scratch buffer: it does
     * not move once written. */
    _cleanup_free_ size_t *offsets = xmalloc(n_params * 4 * sizeof(size_t));
    _cleanup_free_ query_param *params = xmalloc(n_params * sizeof(query_param));
    buf scratch = {0};
    size_t n = 0;

    for (const char *p = query; *p;) {
        const char *piece = p;
        while (*p && *p != '&')
            p++;
        size_t len = (size_t)(p - piece);
        if (*p == '&')
            p++;
        if (len == 0)
            continue;

        const char *eq = memchr(piece, '=', len);
        size_t key_len = eq ? (size_t)(eq - piece) : len;
        size_t *o = offsets + 4 * n;
        o[0] = scratch.len;
        append_reencoded(&scratch, piece, key_len);
        o[1] = scratch.len - o[0];
        o[2] = scratch.len;
        if (eq)
            append_reencoded(&scratch, eq + 1, len - key_len - 1);
        o[3] = scratch.len - o[2];
        n++;
    }

    for (size_t i = 0; i < n; i++) {
        const size_t *o = offsets + 4 * i;
        params[i] = (query_param){
            .key = scratch.data + o[0],
            .key_len = o[1],
            .value = scratch.data + o[2],
            .value_len = o[3],
        };
    }
    qsort(params, n, sizeof(query_param), compare_params);

    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            buf_appendc(b, '&');
        buf_append(b, params[i].key, params[i].key_len);
        buf_appendc(b, '=');
        buf_append(b, params[i].value, params[i].value_len);
    }
    buf_free(&scratch);
}

static int compare_names(const char *a, size_t a_len, const char *b, size_t b_len)
{
    for (size_t i = 0; i < a_len && i < b_len; i++) {
        char x = ascii_lower(a[i]), y = ascii_lower(b[i]);
        if (x != y)
            return (unsigned char)x < (unsigned char)y ? -1 : 1;
    }
    return a_len == b_len ? 0 : a_len < b_len ? -1 : 1;
}

static int compare_headers(const void *a, const void *b)
{
    const canon_header *x = a, *y = b;
    int r = compare_names(x->name, x->name_len, y->name, y->name_len);
    if (r != 0)
        return r;
    return x->order < y->order ? -1 : x->order > y->order;
}

static bool same_name(const canon_header *a, const canon_header *b)
{
    return compare_names(a->name, a->name_len, b->name, b->name_len) == 0;
}

static bool name_is(const canon_header *h, const char *lower)
{
    return compare_names(h->name, h->name_len, lower, strlen(lower)) == 0;
}

/* Trim the value and collapse each inner run of spaces and tabs to one space. */
static void append_trimmed(buf *b, const char *v)
{
    bool started = false, space = false;
    for (; *v; v++) {
        if (is_space(*v)) {
            space = started;
            continue;
        }
        if (space)
            buf_appendc(b, ' ');
        buf_appendc(b, *v);
        started = true;
        space = false;
    }
}

static int ensure_key(sigv4_signer *s, const char *date)
{
    if (s->key_valid && memcmp(s->key_date, date, DATE_LEN) == 0)
        return 0;

    s->key_valid = false;
    size_t ks_len = 4 + s->secret_len;
    _cleanup_free_ char *k_secret = xmalloc(ks_len);
    memcpy(k_secret, "AWS4", 4);
    memcpy(k_secret + 4, s->secret, s->secret_len);

    unsigned char k_date[KEY_LEN], k_region[KEY_LEN], k_service[KEY_LEN];
    int r = hmac_sha256(k_secret, ks_len, date, DATE_LEN, k_date);
    if (r >= 0)
        r = hmac_sha256(k_date, KEY_LEN, s->region, strlen(s->region), k_region);
    if (r >= 0)
        r = hmac_sha256(k_region, KEY_LEN, s->service, strlen(s->service), k_service);
    if (r >= 0)
        r = hmac_sha256(k_service, KEY_LEN, TERMINATOR, strlen(TERMINATOR), s->key);

    OPENSSL_cleanse(k_secret, ks_len);
    OPENSSL_cleanse(k_date, sizeof(k_date));
    OPENSSL_cleanse(k_region, sizeof(k_region));
    OPENSSL_cleanse(k_service, sizeof(k_service));
    if (r < 0) {
        OPENSSL_cleanse(s->key, sizeof(s->key));
        return r;
    }

    memcpy(s->key_date, date, DATE_LEN);
    s->key_date[DATE_LEN] = '\0';
    s->key_valid = true;
    s->derivations++;
    return 0;
}

sigv4_signer *sigv4_new(const char *region, const char *service)
{
    assert(region && *region);
    assert(service && *service);

    sigv4_signer *s = xmalloc(sizeof(*s));
    *s = (sigv4_signer){
        .region = xstrdup(region),
        .service = xstrdup(service),
    };
    return s;
}

void sigv4_free(sigv4_signer *s)
{
    if (!s)
        return;
    free_secret(&s->secret);
    free_secret(&s->token);
    OPENSSL_cleanse(s->key, sizeof(s->key));
    free(s->access_key_id);
    free(s->region);
    free(s->service);
    free(s);
}

int sigv4_set_credentials(sigv4_signer *s, const char *access_key_id, const char *secret_access_key,
                          const char *session_token)
{
    assert(s);
    if (!access_key_id || !*access_key_id || !secret_access_key || !*secret_access_key ||
        has_control(access_key_id) || (session_token && has_control(session_token)))
        return -EINVAL;

    size_t secret_len = strlen(secret_access_key);
    bool same_secret = s->secret && s->secret_len == secret_len &&
                       CRYPTO_memcmp(s->secret, secret_access_key, secret_len) == 0;
    if (!same_secret) {
        free_secret(&s->secret);
        s->secret = xstrdup(secret_access_key);
        s->secret_len = secret_len;
        s->key_valid = false;
        OPENSSL_cleanse(s->key, sizeof(s->key));
    }

    free_secret(&s->token);
    if (session_token && *session_token)
        s->token = xstrdup(session_token);

    free(s->access_key_id);
    s->access_key_id = xstrdup(access_key_id);
    return 0;
}

uint64_t sigv4_key_derivations(const sigv4_signer *s)
{
    assert(s);
    return s->derivations;
}

void sigv4_result_done(sigv4_result *r)
{
    if (!r)
        return;
    wipe_buf(&r->canonical_request);
    wipe_buf(&r->string_to_sign);
    wipe_buf(&r->values);
    *r = (sigv4_result){0};
}

/* Fill hs[] with the caller's headers plus the x-amz-* ones the signer signs, checked. */
static int collect_headers(const sigv4_signer *s, const sigv4_request *req, const char *amz_date,
                           const char *payload_hash, canon_header *hs, size_t *n_out)
{
    bool have_host = false;
    size_t n = 0;

    for (size_t i = 0; i < req->n_headers; i++) {
        const sigv4_header *h = &req->headers[i];
        /* A CR or LF would end the header early on the wire (obs-fold is obsolete), so the
         * server would not see what was signed. */
        if (!h->name || !*h->name || !h->value || strpbrk(h->value, "\r\n"))
            return -EINVAL;
        for (const char *p = h->name; *p; p++)
            if (!is_tchar((unsigned char)*p))
                return -EINVAL;

        canon_header c = {h->name, strlen(h->name), h->value, n};
        if (name_is(&c, "authorization") || name_is(&c, "x-amz-date") ||
            name_is(&c, "x-amz-security-token") ||
            ((req->flags & SIGV4_SIGN_BODY) && name_is(&c, "x-amz-content-sha256")))
            return -EINVAL;
        have_host = have_host || name_is(&c, "host");
        hs[n++] = c;
    }
    if (!have_host)
        return -EINVAL;

    hs[n] = (canon_header){"x-amz-date", strlen("x-amz-date"), amz_date, n};
    n++;
    if (s->token && !(req->flags & SIGV4_UNSIGNED_TOKEN)) {
        hs[n] = (canon_header){"x-amz-security-token", strlen("x-amz-security-token"), s->token, n};
        n++;
    }
    if (req->flags & SIGV4_SIGN_BODY) {
        hs[n] =
            (canon_header){"x-amz-content-sha256", strlen("x-amz-content-sha256"), payload_hash, n};
        n++;
    }
    *n_out = n;
    return 0;
}

/* An upper bound on the canonical request's size, so it is written into one allocation that
 * can be wiped (it may hold the session token). */
static size_t canonical_request_bound(const sigv4_request *req, const canon_header *hs, size_t n)
{
    size_t total = strlen(req->method) + 2 + 3 * (req->path ? strlen(req->path) : 0) + 2 +
                   4 * (req->query ? strlen(req->query) : 0) + 2 + 1 + SIGV4_HEX_LEN + 16;
    for (size_t i = 0; i < n; i++)
        total += 2 * hs[i].name_len + strlen(hs[i].value) + 3;
    return total;
}

static void append_canonical_headers(buf *b, const canon_header *hs, size_t n, size_t *signed_off,
                                     size_t *signed_len)
{
    for (size_t i = 0; i < n;) {
        for (size_t k = 0; k < hs[i].name_len; k++)
            buf_appendc(b, ascii_lower(hs[i].name[k]));
        buf_appendc(b, ':');
        size_t j = i;
        for (; j < n && same_name(&hs[i], &hs[j]); j++) {
            if (j > i)
                buf_appendc(b, ',');
            append_trimmed(b, hs[j].value);
        }
        buf_appendc(b, '\n');
        i = j;
    }
    buf_appendc(b, '\n');

    *signed_off = b->len;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && same_name(&hs[i - 1], &hs[i]))
            continue;
        if (b->len > *signed_off)
            buf_appendc(b, ';');
        for (size_t k = 0; k < hs[i].name_len; k++)
            buf_appendc(b, ascii_lower(hs[i].name[k]));
    }
    *signed_len = b->len - *signed_off;
}

int sigv4_sign(sigv4_signer *s, const sigv4_request *req, time_t when, sigv4_result *out)
{
    int r;

    assert(s && req && out);
    assert(req->payload || req->payload_len == 0);
    assert(req->headers || req->n_headers == 0);

    out->n_headers = 0;
    out->authorization = NULL;
    out->signature[0] = '\0';

    if (!s->secret)
        return -ENOKEY;
    if (!req->method || !*req->method)
        return -EINVAL;

    struct tm tm;
    if (!gmtime_r(&when, &tm) ||
        strftime(out->amz_date, sizeof(out->amz_date), "%Y%m%dT%H%M%SZ", &tm) != 16)
        return -EINVAL;

    r = sha256_hex(req->payload, req->payload_len, out->payload_hash);
    if (r < 0)
        return r;

    canon_header stack_hs[STACK_HEADERS];
    _cleanup_free_ canon_header *heap_hs = NULL;
    canon_header *hs = stack_hs;
    size_t cap = req->n_headers + 3, n;
    if (cap > ARRAY_SIZE(stack_hs))
        hs = heap_hs = xmalloc(cap * sizeof(canon_header));

    r = collect_headers(s, req, out->amz_date, out->payload_hash, hs, &n);
    if (r < 0)
        return r;
    qsort(hs, n, sizeof(canon_header), compare_headers);

    /* Canonical request. */
    buf *cr = &out->canonical_request;
    wipe_reserve(cr, canonical_request_bound(req, hs, n));
    buf_append(cr, req->method, strlen(req->method));
    buf_appendc(cr, '\n');
    append_canonical_path(cr, req->path, req->flags & SIGV4_NORMALIZE_PATH);
    buf_appendc(cr, '\n');
    append_canonical_query(cr, req->query);
    buf_appendc(cr, '\n');
    size_t signed_off, signed_len;
    append_canonical_headers(cr, hs, n, &signed_off, &signed_len);
    buf_appendc(cr, '\n');
    buf_append(cr, out->payload_hash, SIGV4_HEX_LEN);
    buf_appendc(cr, '\0');
    cr->len--;

    /* String to sign. */
    char cr_hash[SIGV4_HEX_LEN + 1];
    r = sha256_hex(cr->data, cr->len, cr_hash);
    if (r < 0)
        return r;

    r = ensure_key(s, out->amz_date);
    if (r < 0)
        return r;

    buf *sts = &out->string_to_sign;
    sts->len = 0;
    buf_printf(sts, ALGORITHM "\n%s\n%.*s/%s/%s/" TERMINATOR "\n%s", out->amz_date, DATE_LEN,
               out->amz_date, s->region, s->service, cr_hash);

    unsigned char sig[KEY_LEN];
    r = hmac_sha256(s->key, KEY_LEN, sts->data, sts->len, sig);
    if (r < 0)
        return r;
    to_hex(sig, KEY_LEN, out->signature);

    /* The headers to add. Their values live in one wipeable buffer, written in one go. */
    buf *v = &out->values;
    size_t token_len = s->token ? strlen(s->token) : 0;
    wipe_reserve(v, token_len + 1 + 128 + strlen(s->access_key_id) + strlen(s->region) +
                        strlen(s->service) + signed_len + SIGV4_HEX_LEN);
    size_t auth_off = 0;
    if (s->token) {
        buf_append(v, s->token, token_len + 1);
        auth_off = v->len;
    }
    buf_printf(
        v, ALGORITHM " Credential=%s/%.*s/%s/%s/" TERMINATOR ", SignedHeaders=%.*s, Signature=%s",
        s->access_key_id, DATE_LEN, out->amz_date, s->region, s->service, (int)signed_len,
        cr->data + signed_off, out->signature);

    size_t k = 0;
    if (s->token)
        out->headers[k++] = (sigv4_header){"X-Amz-Security-Token", v->data};
    out->headers[k++] = (sigv4_header){"X-Amz-Date", out->amz_date};
    if (req->flags & SIGV4_SIGN_BODY)
        out->headers[k++] = (sigv4_header){"x-amz-content-sha256", out->payload_hash};
    out->authorization = v->data + auth_off;
    out->headers[k++] = (sigv4_header){"Authorization", out->authorization};
    out->n_headers = k;
    return 0;
}
