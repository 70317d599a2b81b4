/* imds.c: EC2 instance metadata over IMDSv2: one session token shared by all
 * requests, fetched on demand, renewed before its TTL ends or when refused. */
#include "imds.h"

#include <assert.h>
#include <curl/curl.h>
#include <stdbool.h>
#include <strings.h>

#include "log.h"
#include "util.h"

#define IMDS_DEFAULT_ENDPOINT "http://169.254.169.254"
#define IMDS_TOKEN_PATH "/latest/api/token"
#define IMDS_TOKEN_TTL_S 21600
/* IMDS is one hop away: an answer that takes longer is not coming. */
#define IMDS_CONNECT_TIMEOUT_MS 1000
#define IMDS_TIMEOUT_MS 3000
#define IMDS_MAX_RESPONSE (256u * 1024)
#define IMDS_MAX_TOKEN 4096

typedef enum req_state {
    REQ_WAIT_TOKEN, /* queued until a token is there */
    REQ_SENT,       /* GET in flight */
    REQ_FAILED,     /* err set; callback due */
} req_state;

typedef struct imds_req {
    imds *m;
    char *path;
    imds_fn fn;
    void *userdata;
    req_state state;
    http_call *call;
    uint64_t token_gen; /* which token the GET carried */
    bool retried;       /* already refused once and re-sent with a new token */
    int err;
    struct imds_req *next;
} imds_req;

struct imds {
    loop *l;
    http *h;
    char *endpoint;
    bool disabled;
    char *token;
    uint64_t token_gen;
    int64_t token_renew_at; /* monotonic ms */
    http_call *token_call;
    imds_req *reqs; /* in arrival order */
    unsigned busy;  /* callbacks running */
    bool dead;      /* imds_free() was called from a callback */
    long status;    /* HTTP status of the last answer that was not 200 */
};

static void req_unlink(imds *m, imds_req *r)
{
    for (imds_req **p = &m->reqs; *p; p = &(*p)->next)
        if (*p == r) {
            *p = r->next;
            break;
        }
    r->next = NULL;
}

static void req_free(imds_req *r)
{
    if (!r)
        return;
    http_cancel(r->call);
    free(r->path);
    free(r);
}

static bool env_true(const char *name)
{
    const char *v = getenv(name);
    return v && strcasecmp(v, "true") == 0;
}

static char *pick_endpoint(const char *configured)
{
    const char *e = configured;
    if (!e || !*e)
        e = getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    if (!e || !*e)
        e = IMDS_DEFAULT_ENDPOINT;
    size_t n = strlen(e);
    while (n > 0 && e[n - 1] == '/')
        n--;
    return xstrndup(e, n);
}

imds *imds_new(loop *l, http *h, const char *endpoint)
{
    assert(l);
    assert(h);
    imds *m = xcalloc(1, sizeof *m);
    *m = (imds){
        .l = l,
        .h = h,
        .endpoint = pick_endpoint(endpoint),
        .disabled = env_true("AWS_EC2_METADATA_DISABLED"),
    };
    return m;
}

static void destroy(imds *m)
{
    while (m->reqs) {
        imds_req *r = m->reqs;
        m->reqs = r->next;
        req_free(r);
    }
    http_cancel(m->token_call);
    loop_cancel_deferred(m->l, m);
    free(m->token);
    free(m->endpoint);
    free(m);
}

void imds_free(imds *m)
{
    if (!m)
        return;
    if (m->busy) {
        m->dead = true;
        while (m->reqs) {
            imds_req *r = m->reqs;
            m->reqs = r->next;
            req_free(r);
        }
        return;
    }
    destroy(m);
}

const char *imds_endpoint(const imds *m)
{
    return m->endpoint;
}

/* Runs a callback; returns false when the imds object went away during it. */
static bool call_back(imds *m, imds_fn fn, int err, const char *body, size_t len, void *ud)
{
    m->busy++;
    fn(err, body, len, ud);
    m->busy--;
    if (m->dead && m->busy == 0) {
        destroy(m);
        return false;
    }
    return !m->dead;
}

/* Delivers every failed request, in order; callbacks may add or cancel requests. */
static void flush_failed(imds *m)
{
    for (;;) {
        imds_req *r = m->reqs;
        while (r && r->state != REQ_FAILED)
            r = r->next;
        if (!r)
            return;
        req_unlink(m, r);
        imds_fn fn = r->fn;
        void *ud = r->userdata;
        int err = r->err;
        req_free(r);
        if (!call_back(m, fn, err, NULL, 0, ud))
            return;
    }
}

static void flush_deferred(loop *l, void *userdata)
{
    flush_failed(userdata);
}

static int transport_errno(const http_response *resp)
{
    switch (resp->transport_error) {
    case CURLE_OPERATION_TIMEDOUT:
        return -ETIMEDOUT;
    case CURLE_COULDNT_CONNECT:
        return -ECONNREFUSED;
    default:
        return -EIO;
    }
}

static int status_errno(long status)
{
    if (status == 404)
        return -ENOENT;
    if (status == 401 || status == 403)
        return -EACCES;
    /* Throttled or failing: try again later, like a transport failure. */
    if (status == 429 || status >= 500)
        return -EIO;
    return -EPROTO;
}

static void fail_waiting(imds *m, int err)
{
    bool any = false;
    for (imds_req *r = m->reqs; r; r = r->next)
        if (r->state == REQ_WAIT_TOKEN) {
            r->state = REQ_FAILED;
            r->err = err;
            any = true;
        }
    if (any)
        flush_failed(m);
}

static void send_get(imds_req *r);
static void fetch_token(imds *m);

static bool token_valid(const imds *m)
{
    return m->token && now_monotonic_ms() < m->token_renew_at;
}

static void send_waiting(imds *m)
{
    for (imds_req *r = m->reqs; r; r = r->next)
        if (r->state == REQ_WAIT_TOKEN)
            send_get(r);
}

static void need_token(imds *m)
{
    if (token_valid(m))
        send_waiting(m);
    else if (!m->token_call)
        fetch_token(m);
}

/* A token goes into a header: printable ASCII only. */
static bool token_ok(const char *t, size_t n)
{
    if (n == 0 || n > IMDS_MAX_TOKEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if (t[i] <= ' ' || t[i] > '~')
            return false;
    return true;
}

static void on_token(const http_response *resp, void *userdata)
{
    imds *m = userdata;
    m->token_call = NULL;
    int err = 0;
    m->status = 0;
    if (resp->transport_error) {
        err = transport_errno(resp);
        log_debug("imds %s: token request failed: %s", m->endpoint, resp->error);
    } else if (resp->status != 200) {
        err = status_errno(resp->status);
        m->status = resp->status;
        if (resp->status == 404)
            err = -EPROTO; /* no IMDSv2 there: not a missing metadata path */
        log_debug("imds %s: token request answered %ld", m->endpoint, resp->status);
    } else {
        const char *b = resp->body;
        size_t n = resp->body_len;
        while (n > 0 && (b[n - 1] == '\n' || b[n - 1] == '\r' || b[n - 1] == ' '))
            n--;
        if (!token_ok(b, n)) {
            err = -EPROTO;
            log_debug("imds %s: token answer is not a token (%zu bytes)", m->endpoint,
                      resp->body_len);
        } else {
            long ttl = IMDS_TOKEN_TTL_S;
            const char *h = http_response_header(resp, "X-aws-ec2-metadata-token-ttl-seconds");
            if (h) {
                char *end;
                long v = strtol(h, &end, 10);
                if (end != h && *end == '\0' && v > 0 && v <= IMDS_TOKEN_TTL_S)
                    ttl = v;
            }
            /* Renew a little early so a GET never races the expiry. */
            int64_t margin = MIN((int64_t)ttl * 1000 / 10, 60000);
            free(m->token);
            m->token = xstrndup(b, n);
            m->token_gen++;
            m->token_renew_at = now_monotonic_ms() + (int64_t)ttl * 1000 - margin;
        }
    }
    if (err < 0)
        fail_waiting(m, err);
    else
        send_waiting(m);
}

static void fetch_token(imds *m)
{
    _cleanup_free_ char *url = xasprintf("%s%s", m->endpoint, IMDS_TOKEN_PATH);
    _cleanup_free_ char *ttl =
        xasprintf("X-aws-ec2-metadata-token-ttl-seconds: %d", IMDS_TOKEN_TTL_S);
    const char *headers[] = {ttl};
    http_request req = {
        .method = "PUT",
        .url = url,
        .headers = headers,
        .n_headers = ARRAY_SIZE(headers),
        .timeout_ms = IMDS_TIMEOUT_MS,
        .connect_timeout_ms = IMDS_CONNECT_TIMEOUT_MS,
        .max_response = IMDS_MAX_RESPONSE,
        .secret = true,
    };
    m->token_call = http_send(m->h, &req, on_token, m);
    if (!m->token_call) {
        for (imds_req *r = m->reqs; r; r = r->next)
            if (r->state == REQ_WAIT_TOKEN) {
                r->state = REQ_FAILED;
                r->err = -EIO;
            }
        loop_defer(m->l, flush_deferred, m);
    }
}

static void on_get(const http_response *resp, void *userdata)
{
    imds_req *r = userdata;
    imds *m = r->m;
    r->call = NULL;
    int err = 0;
    m->status = 0;
    if (resp->transport_error) {
        err = transport_errno(resp);
        log_debug("imds %s: GET %s failed: %s", m->endpoint, r->path, resp->error);
    } else if (resp->status == 401) {
        if (!r->retried) {
            /* The token expired or was revoked: one more try with a new one. */
            r->retried = true;
            r->state = REQ_WAIT_TOKEN;
            if (m->token && m->token_gen == r->token_gen) {
                free(m->token);
                m->token = NULL;
            }
            need_token(m);
            return;
        }
        err = -EACCES;
    } else if (resp->status != 200) {
        err = status_errno(resp->status);
        m->status = resp->status;
        log_debug("imds %s: GET %s answered %ld", m->endpoint, r->path, resp->status);
    }
    req_unlink(m, r);
    imds_fn fn = r->fn;
    void *ud = r->userdata;
    req_free(r);
    if (err < 0)
        call_back(m, fn, err, NULL, 0, ud);
    else
        call_back(m, fn, 0, resp->body, resp->body_len, ud);
}

static void send_get(imds_req *r)
{
    imds *m = r->m;
    _cleanup_free_ char *url = xasprintf("%s%s", m->endpoint, r->path);
    _cleanup_free_ char *tok = xasprintf("X-aws-ec2-metadata-token: %s", m->token);
    const char *headers[] = {tok};
    http_request req = {
        .method = "GET",
        .url = url,
        .headers = headers,
        .n_headers = ARRAY_SIZE(headers),
        .timeout_ms = IMDS_TIMEOUT_MS,
        .connect_timeout_ms = IMDS_CONNECT_TIMEOUT_MS,
        .max_response = IMDS_MAX_RESPONSE,
        .secret = true,
    };
    r->token_gen = m->token_gen;
    r->call = http_send(m->h, &req, on_get, r);
    if (r->call) {
        r->state = REQ_SENT;
    } else {
        r->state = REQ_FAILED;
        r->err = -EIO;
        loop_defer(m->l, flush_deferred, m);
    }
}

void imds_get(imds *m, const char *path, imds_fn fn, void *userdata)
{
    assert(m);
    assert(path && path[0] == '/');
    assert(fn);
    imds_req *r = xcalloc(1, sizeof *r);
    *r = (imds_req){
        .m = m,
        .path = xstrdup(path),
        .fn = fn,
        .userdata = userdata,
        .state = REQ_WAIT_TOKEN,
    };
    imds_req **tail = &m->reqs;
    while (*tail)
        tail = &(*tail)->next;
    *tail = r;
    if (m->disabled || m->dead) {
        r->state = REQ_FAILED;
        r->err = -ENODEV;
        loop_defer(m->l, flush_deferred, m);
        return;
    }
    need_token(m);
}

void imds_cancel_all(imds *m, void *userdata)
{
    if (!m)
        return;
    imds_req **p = &m->reqs;
    while (*p) {
        imds_req *r = *p;
        if (r->userdata == userdata) {
            *p = r->next;
            req_free(r);
        } else {
            p = &r->next;
        }
    }
}

long imds_last_status(const imds *m)
{
    return m ? m->status : 0;
}
