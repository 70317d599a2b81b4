/* credentials.c: the AWS credentials chain (config, environment, ECS container
 * endpoint, instance role over IMDSv2) and the refresh schedule that keeps
 * temporary credentials current. */
#include "credentials.h"

#include <arpa/inet.h>
#include <assert.h>
#include <curl/curl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <sys/random.h>
#include <time.h>

#include "log.h"
#include "timeparse.h"
#include "util.h"

#define ECS_RELATIVE_HOST "http://169.254.170.2"
#define ROLES_PATH "/latest/meta-data/iam/security-credentials/"
#define ECS_CONNECT_TIMEOUT_MS 1000
#define ECS_TIMEOUT_MS 5000
#define CREDS_MAX_RESPONSE (64u * 1024)
#define REFRESH_BEFORE_MS (5 * 60 * 1000)
/* Small enough to catch short-lived sets near their end (fetches halve the
 * remaining time), large enough not to spin. */
#define REFRESH_MIN_DELAY_MS 100
#define BACKOFF_FIRST_MS 1000
#define BACKOFF_MAX_MS 60000
#define INVALIDATE_MIN_INTERVAL_MS 5000

typedef enum creds_source {
    SRC_NONE,
    SRC_STATIC, /* config or environment: nothing to refresh */
    SRC_ECS,
    SRC_IMDS,
} creds_source;

struct creds {
    loop *l;
    http *h;
    imds *m;
    creds_changed_fn fn;
    void *userdata;
    char *cfg_key, *cfg_secret, *cfg_token;

    creds_source src;
    credentials cur;
    bool have;
    char *where; /* "ecs (scheme://host:port)" / "imds (URL)", for messages: never the path */

    char *ecs_url;
    http_call *ecs_call;
    char *role;

    loop_timer *timer;
    int64_t due_ms;      /* monotonic; when the armed timer fires */
    bool forced_pending; /* the armed timer is a postponed creds_invalidate() */
    bool fetching;
    bool stopped; /* a failure nothing will cure, e.g. IMDS disabled */
    uint64_t backoff_ms;
    int64_t last_forced_ms; /* monotonic; last creds_invalidate() fetch */
    log_ratelimit rl;
    uint64_t rng;
};

/* ---- small helpers ---- */

static void wipe_free(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

void credentials_clear(credentials *k)
{
    wipe_free(k->access_key_id);
    wipe_free(k->secret_access_key);
    wipe_free(k->session_token);
    *k = (credentials){0};
}

static char *dup_nonempty(const char *s)
{
    return s && *s ? xstrdup(s) : NULL;
}

static uint64_t next_random(creds *c)
{
    /* xorshift64*: jitter only needs to differ between hosts and attempts. */
    c->rng ^= c->rng >> 12;
    c->rng ^= c->rng << 25;
    c->rng ^= c->rng >> 27;
    return c->rng * 2685821657736338717ULL;
}

static void format_time(int64_t ms, char *out, size_t n)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (!gmtime_r(&t, &tm) || strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, n, "%" PRId64 " ms", ms);
}

/* ---- installing credentials and scheduling ---- */

static void notify(loop *l, void *userdata)
{
    creds *c = userdata;
    if (c->fn)
        c->fn(c->userdata);
}

static bool same_credentials(const credentials *a, const credentials *b)
{
    return strcmp(a->access_key_id, b->access_key_id) == 0 &&
           strcmp(a->secret_access_key, b->secret_access_key) == 0 &&
           !!a->session_token == !!b->session_token &&
           (!a->session_token || strcmp(a->session_token, b->session_token) == 0) &&
           a->expiration_ms == b->expiration_ms;
}

/* Takes the strings of *k. Returns true when they differ from the current ones. */
static bool install(creds *c, credentials *k)
{
    if (c->have && same_credentials(&c->cur, k)) {
        credentials_clear(k);
        return false;
    }
    credentials_clear(&c->cur);
    c->cur = *k;
    *k = (credentials){0};
    c->have = true;

    char expiry[64] = "never";
    if (c->cur.expiration_ms)
        format_time(c->cur.expiration_ms, expiry, sizeof expiry);
    if (c->src == SRC_IMDS)
        log_info("credentials: using instance role %s from %s, expiring %s", c->role, c->where,
                 expiry);
    else if (c->src == SRC_ECS)
        log_info("credentials: using container credentials from %s, expiring %s", c->where, expiry);
    else
        log_info("credentials: using static keys from the %s", c->cur.provider);
    loop_defer(c->l, notify, c);
    return true;
}

/* When to fetch again: the earlier of five minutes before expiry and half way
 * to expiry, counting only points still ahead (a 60 s credential is fetched
 * again after about 30 s, a 6 h one after about 3 h). */
static uint64_t refresh_delay(int64_t now, int64_t expiration)
{
    if (expiration <= now)
        return REFRESH_MIN_DELAY_MS;
    int64_t at = now + (expiration - now) / 2;
    if (expiration - REFRESH_BEFORE_MS > now)
        at = MIN(at, expiration - REFRESH_BEFORE_MS);
    return (uint64_t)MAX(at - now, (int64_t)REFRESH_MIN_DELAY_MS);
}

static void fetch(creds *c);

static void arm(creds *c, uint64_t delay_ms)
{
    c->due_ms = now_monotonic_ms() + (int64_t)delay_ms;
    c->forced_pending = false;
    loop_timer_arm(c->timer, delay_ms, 0);
}

static void on_timer(loop *l, void *userdata)
{
    creds *c = userdata;
    if (c->forced_pending) {
        c->forced_pending = false;
        c->last_forced_ms = now_monotonic_ms();
    }
    fetch(c);
}

static void failed(creds *c, int err, const char *what);

static void succeeded(creds *c, credentials *k)
{
    if (k->expiration_ms && k->expiration_ms <= now_realtime_ms()) {
        /* Asking again at once would get the same: back off instead. */
        char what[256];
        snprintf(what, sizeof what, "%s: gave credentials that have already expired", c->where);
        credentials_clear(k);
        failed(c, -EPROTO, what);
        return;
    }
    c->fetching = false;
    c->backoff_ms = 0;
    if (!install(c, k))
        log_debug("credentials: %s gave the same credentials again", c->where);
    if (c->cur.expiration_ms)
        arm(c, refresh_delay(now_realtime_ms(), c->cur.expiration_ms));
}

/* err: negative errno; what: what went wrong, never containing a secret. */
static void failed(creds *c, int err, const char *what)
{
    c->fetching = false;
    if (err == -ENODEV) {
        log_error("credentials: no provider left: %s", what);
        c->stopped = true;
        return;
    }
    c->backoff_ms = c->backoff_ms ? MIN(c->backoff_ms * 2, BACKOFF_MAX_MS) : BACKOFF_FIRST_MS;
    /* Half fixed, half random: hosts that lost IMDS together do not come back
     * in step. */
    uint64_t delay = c->backoff_ms / 2 + next_random(c) % (c->backoff_ms / 2 + 1);
    uint64_t suppressed = 0;
    if (log_ratelimit_ok(&c->rl, &suppressed)) {
        char more[64] = "";
        if (suppressed)
            snprintf(more, sizeof more, " (%" PRIu64 " similar messages suppressed)", suppressed);
        if (creds_current(c))
            log_warning("credentials: %s%s; keeping the current ones, retrying in %" PRIu64 " ms",
                        what, more, delay);
        else
            log_error("credentials: %s%s; retrying in %" PRIu64 " ms", what, more, delay);
    }
    arm(c, delay);
}

/* ---- parsing the JSON answers of ECS and IMDS ---- */

static const char *json_str(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

int creds_parse_json(const char *body, size_t len, const char *provider, credentials *k,
                     const char **why)
{
    if (len == 0) {
        *why = "empty answer";
        return -EPROTO;
    }
    json_error_t jerr;
    json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc || !json_is_object(doc)) {
        /* jansson's message may quote the input, so it is not logged. */
        *why = "answer is not a JSON object";
        json_decref(doc);
        return -EPROTO;
    }
    int r = -EPROTO;
    const char *code = json_str(doc, "Code");
    const char *akid = json_str(doc, "AccessKeyId");
    const char *secret = json_str(doc, "SecretAccessKey");
    const char *token = json_str(doc, "Token");
    const char *exp = json_str(doc, "Expiration");
    int64_t exp_ms = 0;
    if (code && strcmp(code, "Success") != 0)
        *why = "answer's Code is not Success";
    else if (!akid || !*akid)
        *why = "AccessKeyId missing";
    else if (!secret || !*secret)
        *why = "SecretAccessKey missing";
    else if (!token || !*token)
        *why = "Token missing";
    else if (!exp)
        *why = "Expiration missing";
    else if (timeparse_rfc3339_ms(exp, strlen(exp), &exp_ms) < 0)
        *why = "Expiration is not an RFC 3339 time";
    else {
        *k = (credentials){
            .access_key_id = xstrdup(akid),
            .secret_access_key = xstrdup(secret),
            .session_token = xstrdup(token),
            .expiration_ms = exp_ms,
            .provider = provider,
        };
        r = 0;
    }
    json_decref(doc);
    return r;
}

/* ---- ECS container credentials ---- */

/* The credentials endpoint as libcurl parses it: whether the token may go
 * there, and "scheme://host[:port]" to name it in the log (the path holds
 * the task's credentials id). A string check of our own would disagree with
 * libcurl: "http://0127.0.0.1/" reads as loopback, and libcurl connects to
 * 87.0.0.1. NULL: libcurl cannot parse it. */
static char *ecs_origin(const char *url, bool *allowed)
{
    *allowed = false;
    CURLU *u = curl_url();
    if (!u)
        return NULL;
    char *scheme = NULL, *host = NULL, *port = NULL, *origin = NULL;
    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
        if (curl_url_get(u, CURLUPART_PORT, &port, 0) != CURLUE_OK)
            port = NULL;
        origin = xasprintf("%s://%s%s%s", scheme, host, port ? ":" : "", port ? port : "");
        /* The authorization token must not leave the host or the task's
         * link-local agent unless the channel is TLS. */
        if (strcasecmp(scheme, "https") == 0) {
            *allowed = true;
        } else if (strcasecmp(scheme, "http") == 0) {
            size_t n = strlen(host);
            _cleanup_free_ char *name =
                host[0] == '[' && n > 2 ? xstrndup(host + 1, n - 2) : xstrdup(host);
            static const char *const allowed_v6[] = {"::1", "fd00:ec2::23"};
            struct in_addr a4;
            struct in6_addr a6, w6;
            if (strcasecmp(name, "localhost") == 0)
                *allowed = true;
            else if (inet_pton(AF_INET, name, &a4) == 1) {
                uint32_t a = ntohl(a4.s_addr);
                *allowed = (a >> 24) == 127 || a == 0xa9feaa02 /* 169.254.170.2 */ ||
                           a == 0xa9feaa17 /* 169.254.170.23 */;
            } else if (inet_pton(AF_INET6, name, &a6) == 1) {
                for (size_t i = 0; i < ARRAY_SIZE(allowed_v6); i++)
                    if (inet_pton(AF_INET6, allowed_v6[i], &w6) == 1 &&
                        memcmp(&a6, &w6, sizeof a6) == 0)
                        *allowed = true;
            }
        }
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return origin;
}

/* The Authorization value: the token file wins over the variable, as in the
 * AWS SDKs. Returns 0 (with *out NULL when none is configured) or -errno. */
static int ecs_auth_token(char **out, const char **why)
{
    *out = NULL;
    const char *file = getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    const char *val = getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN");
    _cleanup_free_ char *tok = NULL;
    if (file && *file) {
        _cleanup_fclose_ FILE *f = fopen(file, "re");
        if (!f) {
            *why = "cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE";
            return -errno;
        }
        buf b = {0};
        char chunk[512];
        size_t n;
        while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && b.len < 16384)
            buf_append(&b, chunk, n);
        explicit_bzero(chunk, sizeof chunk);
        buf_appendc(&b, '\0');
        tok = b.data;
    } else if (val && *val) {
        tok = xstrdup(val);
    } else {
        return 0;
    }
    size_t n = strlen(tok);
    while (n > 0 && (tok[n - 1] == '\n' || tok[n - 1] == '\r' || tok[n - 1] == ' '))
        tok[--n] = '\0';
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)tok[i] < 0x20 || tok[i] == 0x7f) {
            /* A line break would smuggle in another header. */
            *why = "container authorization token contains control characters";
            explicit_bzero(tok, n);
            return -EINVAL;
        }
    *out = TAKE_PTR(tok);
    return 0;
}

static void on_ecs(const http_response *resp, void *userdata)
{
    creds *c = userdata;
    c->ecs_call = NULL;
    char what[512];
    if (resp->transport_error) {
        snprintf(what, sizeof what, "%s: request failed: %s", c->where, resp->error);
        failed(c, -EIO, what);
        return;
    }
    if (resp->status != 200) {
        snprintf(what, sizeof what, "%s: answered HTTP %ld", c->where, resp->status);
        failed(c, -EIO, what);
        return;
    }
    credentials k;
    const char *why = NULL;
    if (creds_parse_json(resp->body, resp->body_len, "ecs", &k, &why) < 0) {
        snprintf(what, sizeof what, "%s: %s", c->where, why);
        failed(c, -EPROTO, what);
        return;
    }
    succeeded(c, &k);
}

static void fetch_ecs(creds *c)
{
    char what[512];
    const char *why = NULL;
    _cleanup_free_ char *tok = NULL;
    int r = ecs_auth_token(&tok, &why);
    if (r < 0) {
        snprintf(what, sizeof what, "%s: %s", c->where, why);
        failed(c, r, what);
        return;
    }
    _cleanup_free_ char *auth = tok ? xasprintf("Authorization: %s", tok) : NULL;
    const char *headers[1] = {auth};
    http_request req = {
        .method = "GET",
        .url = c->ecs_url,
        .headers = headers,
        .n_headers = auth ? 1 : 0,
        .timeout_ms = ECS_TIMEOUT_MS,
        .connect_timeout_ms = ECS_CONNECT_TIMEOUT_MS,
        .max_response = CREDS_MAX_RESPONSE,
        .secret = true,
    };
    c->ecs_call = http_send(c->h, &req, on_ecs, c);
    if (tok)
        explicit_bzero(tok, strlen(tok));
    if (auth)
        explicit_bzero(auth, strlen(auth));
    if (!c->ecs_call) {
        snprintf(what, sizeof what, "%s: cannot start the request", c->where);
        failed(c, -EIO, what);
    }
}

/* ---- the instance role over IMDS ---- */

static const char *imds_errtext_plain(int err)
{
    switch (err) {
    case -ETIMEDOUT:
        return "timed out";
    case -ECONNREFUSED:
        return "connection refused";
    case -ENOENT:
        return "not found (404)";
    case -EACCES:
        return "token refused";
    case -ENODEV:
        return "disabled by AWS_EC2_METADATA_DISABLED";
    case -EPROTO:
        return "unexpected answer";
    default:
        return "request failed";
    }
}

/* The text for an IMDS failure, with the HTTP status when there was one. */
static const char *imds_errtext(const creds *c, int err, char *out, size_t n)
{
    long st = imds_last_status(c->m);
    if ((err == -EIO || err == -EPROTO) && st > 0) {
        snprintf(out, n, "%s (HTTP %ld)", err == -EIO ? "failed" : "unexpected answer", st);
        return out;
    }
    return imds_errtext_plain(err);
}

static bool role_char(char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           strchr("+=,.@_-", ch);
}

static void on_role_credentials(int err, const char *body, size_t len, void *userdata)
{
    creds *c = userdata;
    char what[512];
    if (err < 0) {
        char tmp[64];
        snprintf(what, sizeof what, "%s: credentials of role %s: %s", c->where, c->role,
                 imds_errtext(c, err, tmp, sizeof tmp));
        failed(c, err, what);
        return;
    }
    credentials k;
    const char *why = NULL;
    if (creds_parse_json(body, len, "imds", &k, &why) < 0) {
        snprintf(what, sizeof what, "%s: credentials of role %s: %s", c->where, c->role, why);
        failed(c, -EPROTO, what);
        return;
    }
    succeeded(c, &k);
}

static void on_roles(int err, const char *body, size_t len, void *userdata)
{
    creds *c = userdata;
    char what[512];
    if (err < 0) {
        char tmp[64];
        snprintf(what, sizeof what, "%s: instance role list: %s", c->where,
                 imds_errtext(c, err, tmp, sizeof tmp));
        failed(c, err, what);
        return;
    }
    /* One role per instance profile; the list has it on the first line. */
    size_t i = 0;
    while (i < len && (body[i] == ' ' || body[i] == '\r' || body[i] == '\n' || body[i] == '\t'))
        i++;
    size_t n = 0;
    while (i + n < len && body[i + n] != '\n' && body[i + n] != '\r')
        n++;
    while (n > 0 && (body[i + n - 1] == ' ' || body[i + n - 1] == '\t'))
        n--;
    if (n == 0) {
        snprintf(what, sizeof what, "%s: no instance role attached (empty role list)", c->where);
        failed(c, -ENOENT, what);
        return;
    }
    bool ok = n <= 128;
    for (size_t j = 0; ok && j < n; j++)
        ok = role_char(body[i + j]);
    if (!ok) {
        snprintf(what, sizeof what, "%s: instance role list is not a role name (%zu bytes)",
                 c->where, len);
        failed(c, -EPROTO, what);
        return;
    }
    free(c->role);
    c->role = xstrndup(body + i, n);
    _cleanup_free_ char *path = xasprintf("%s%s", ROLES_PATH, c->role);
    imds_get(c->m, path, on_role_credentials, c);
}

/* ---- the chain ---- */

static void fetch(creds *c)
{
    if (c->fetching || c->stopped)
        return;
    loop_timer_disarm(c->timer);
    c->fetching = true;
    if (c->src == SRC_ECS)
        fetch_ecs(c);
    else if (c->src == SRC_IMDS)
        imds_get(c->m, ROLES_PATH, on_roles, c);
    else
        c->fetching = false;
}

creds *creds_new(loop *l, http *h, imds *m, const config *cfg, creds_changed_fn fn, void *userdata)
{
    assert(l);
    creds *c = xcalloc(1, sizeof *c);
    *c = (creds){
        .l = l,
        .h = h,
        .m = m,
        .fn = fn,
        .userdata = userdata,
        .rl = (log_ratelimit){.interval_ms = 60000, .burst = 3},
        .last_forced_ms = INT64_MIN / 2,
    };
    if (cfg) {
        c->cfg_key = dup_nonempty(cfg->access_key_id);
        c->cfg_secret = dup_nonempty(cfg->secret_access_key);
        c->cfg_token = dup_nonempty(cfg->session_token);
    }
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed)
        seed = (uint64_t)now_monotonic_ms() ^ ((uint64_t)getpid() << 32);
    c->rng = seed | 1;
    c->timer = loop_timer_new(l, on_timer, c);
    if (!c->timer) {
        log_error("credentials: cannot create a timer");
        creds_free(c);
        return NULL;
    }
    return c;
}

void creds_free(creds *c)
{
    if (!c)
        return;
    if (c->m)
        imds_cancel_all(c->m, c);
    http_cancel(c->ecs_call);
    loop_timer_free(c->timer);
    loop_cancel_deferred(c->l, c);
    credentials_clear(&c->cur);
    wipe_free(c->cfg_key);
    wipe_free(c->cfg_secret);
    wipe_free(c->cfg_token);
    free(c->where);
    free(c->ecs_url);
    free(c->role);
    free(c);
}

static void use_static(creds *c, const char *key, const char *secret, const char *token,
                       const char *provider)
{
    c->src = SRC_STATIC;
    credentials k = {
        .access_key_id = xstrdup(key),
        .secret_access_key = xstrdup(secret),
        .session_token = dup_nonempty(token),
        .provider = provider,
    };
    install(c, &k);
}

void creds_start(creds *c)
{
    assert(c);
    if (c->src != SRC_NONE)
        return;
    if (c->cfg_key && c->cfg_secret) {
        use_static(c, c->cfg_key, c->cfg_secret, c->cfg_token, "config");
        return;
    }
    const char *ek = getenv("AWS_ACCESS_KEY_ID"), *es = getenv("AWS_SECRET_ACCESS_KEY");
    if (ek && *ek && es && *es) {
        use_static(c, ek, es, getenv("AWS_SESSION_TOKEN"), "environment");
        return;
    }
    if ((ek && *ek) != (es && *es))
        log_warning("credentials: only one of AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                    "is set; ignoring the environment's keys");

    const char *rel = getenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    const char *full = getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    if ((rel && *rel) || (full && *full)) {
        /* Running as a task: its role is the identity meant, so there is no
         * falling back to the instance's role when the agent does not answer. */
        c->src = SRC_ECS;
        if (rel && *rel)
            c->ecs_url = xasprintf("%s%s%s", ECS_RELATIVE_HOST, rel[0] == '/' ? "" : "/", rel);
        else
            c->ecs_url = xstrdup(full);
        bool allowed;
        _cleanup_free_ char *origin = ecs_origin(c->ecs_url, &allowed);
        c->where = xasprintf("ecs (%s)", origin ? origin : "an address libcurl cannot parse");
        if (!c->h) {
            log_error("credentials: %s: no HTTP client to ask", c->where);
            c->stopped = true;
            return;
        }
        if (!allowed) {
            log_error("credentials: %s: AWS_CONTAINER_CREDENTIALS_FULL_URI must use https or "
                      "a loopback or ECS agent address",
                      c->where);
            c->stopped = true;
            return;
        }
        fetch(c);
        return;
    }

    c->src = SRC_IMDS;
    if (!c->m) {
        log_error("credentials: none configured and no instance metadata service to ask");
        c->stopped = true;
        return;
    }
    c->where = xasprintf("imds (%s)", imds_endpoint(c->m));
    fetch(c);
}

const credentials *creds_current(const creds *c)
{
    if (!c || !c->have)
        return NULL;
    if (c->cur.expiration_ms && now_realtime_ms() >= c->cur.expiration_ms)
        return NULL;
    return &c->cur;
}

void creds_invalidate(creds *c)
{
    assert(c);
    if (c->src == SRC_STATIC) {
        uint64_t suppressed = 0;
        if (log_ratelimit_ok(&c->rl, &suppressed))
            log_warning("credentials: the service refused the static keys from the %s; "
                        "they cannot be refreshed",
                        c->cur.provider ? c->cur.provider : "configuration");
        return;
    }
    if (c->src == SRC_NONE || c->stopped || c->fetching)
        return;
    int64_t now = now_monotonic_ms();
    int64_t next = c->last_forced_ms + INVALIDATE_MIN_INTERVAL_MS;
    if (now >= next) {
        c->last_forced_ms = now;
        log_info("credentials: refused by the service, fetching new ones from %s", c->where);
        fetch(c);
        return;
    }
    /* Too soon after the last forced fetch: do it once the interval is over,
     * unless a fetch is already due by then. */
    if (loop_timer_armed(c->timer) && c->due_ms <= next)
        return;
    arm(c, (uint64_t)(next - now));
    c->forced_pending = true;
}
