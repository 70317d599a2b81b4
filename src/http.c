/* http.c: libcurl's multi interface driven by the agent's event loop: curl's
 * sockets become loop fds, curl's timeout one loop timer, finished transfers
 * callbacks dispatched from the loop. */
#include "http.h"

#include <assert.h>
#include <curl/curl.h>
#include <limits.h>
#include <stdbool.h>
#include <strings.h>

#include "log.h"
#include "util.h"

#define HTTP_DEFAULT_TIMEOUT_MS 30000
#define HTTP_DEFAULT_CONNECT_TIMEOUT_MS 5000
#define HTTP_DEFAULT_MAX_RESPONSE (4u * 1024 * 1024)
/* Enough parallel uploads per endpoint; more only queue on the server side. */
#define HTTP_MAX_HOST_CONNECTIONS 8
/* Response headers beyond this are not kept (AWS answers carry a handful). */
#define HTTP_MAX_HEADER_BYTES (64u * 1024)

typedef struct header_field {
    const char *name, *value;
} header_field;

struct http_call {
    http *h;
    CURL *easy;
    struct curl_slist *headers;
    http_done_fn fn;
    void *userdata;
    size_t max_response;
    int64_t started_ms;

    buf body;
    buf raw_headers;      /* header lines of the last response, as received */
    header_field *fields; /* split out of raw_headers just before the callback */
    size_t n_fields;
    bool too_large;
    bool finished; /* waiting in the done queue */
    bool in_callback;
    bool counted; /* part of http_in_flight() */
    bool secret;  /* http_request.secret */
    CURLcode result;
    char errbuf[CURL_ERROR_SIZE];

    http_call *prev, *next;           /* every live call */
    http_call *done_prev, *done_next; /* finished, not yet called back */
};

struct http {
    loop *l;
    CURLM *multi;
    loop_timer *timer;
    int *fds; /* sockets curl asked us to watch */
    size_t n_fds, cap_fds;
    http_call *calls;
    size_t n_calls;
    http_call *done_head, *done_tail;
    bool dispatching;
    bool free_requested;
};

static unsigned global_users;

/* ---- the call list and the done queue ---- */

static void done_unlink(http *h, http_call *c)
{
    if (!c->finished)
        return;
    if (c->done_prev)
        c->done_prev->done_next = c->done_next;
    else
        h->done_head = c->done_next;
    if (c->done_next)
        c->done_next->done_prev = c->done_prev;
    else
        h->done_tail = c->done_prev;
    c->done_prev = c->done_next = NULL;
    c->finished = false;
}

static void done_push(http *h, http_call *c, CURLcode result)
{
    assert(!c->finished);
    c->result = result;
    c->finished = true;
    c->done_prev = h->done_tail;
    c->done_next = NULL;
    if (h->done_tail)
        h->done_tail->done_next = c;
    else
        h->done_head = c;
    h->done_tail = c;
}

/* Unlinks and frees a call; its easy handle must be out of the multi handle. */
static void call_free(http_call *c)
{
    http *h = c->h;
    done_unlink(h, c);
    if (c->prev)
        c->prev->next = c->next;
    else
        h->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->counted)
        h->n_calls--;
    if (c->easy)
        curl_easy_cleanup(c->easy);
    if (c->secret) {
        for (struct curl_slist *l = c->headers; l; l = l->next)
            explicit_bzero(l->data, strlen(l->data));
        if (c->body.data)
            explicit_bzero(c->body.data, c->body.cap);
        if (c->raw_headers.data)
            explicit_bzero(c->raw_headers.data, c->raw_headers.cap);
    }
    curl_slist_free_all(c->headers);
    buf_free(&c->body);
    buf_free(&c->raw_headers);
    free(c->fields);
    free(c);
}

static void call_detach(http_call *c)
{
    /* A finished call was already removed from the multi handle. */
    if (c->easy && !c->finished)
        curl_multi_remove_handle(c->h->multi, c->easy);
}

/* ---- curl's sockets and timer on the loop ---- */

static ssize_t fd_index(const http *h, int fd)
{
    for (size_t i = 0; i < h->n_fds; i++)
        if (h->fds[i] == fd)
            return (ssize_t)i;
    return -1;
}

static void dispatch(http *h);
static void collect(http *h);

static void on_socket_event(loop *l, int fd, uint32_t events, void *userdata)
{
    http *h = userdata;
    int mask = 0;
    if (events & EPOLLIN)
        mask |= CURL_CSELECT_IN;
    if (events & EPOLLOUT)
        mask |= CURL_CSELECT_OUT;
    if (events & (EPOLLERR | EPOLLHUP))
        mask |= CURL_CSELECT_ERR;
    int running;
    curl_multi_socket_action(h->multi, fd, mask, &running);
    collect(h);
    dispatch(h);
}

static void on_timer(loop *l, void *userdata)
{
    http *h = userdata;
    int running;
    curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    collect(h);
    dispatch(h);
}

static int socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    http *h = userp;
    ssize_t i = fd_index(h, s);
    if (what == CURL_POLL_REMOVE) {
        if (i >= 0) {
            loop_del_fd(h->l, s);
            h->fds[i] = h->fds[--h->n_fds];
        }
        return 0;
    }
    uint32_t ev = 0;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        ev |= EPOLLIN;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        ev |= EPOLLOUT;
    if (i >= 0) {
        int r = loop_mod_fd(h->l, s, ev);
        if (r < 0)
            log_error_errno(r, "http: cannot watch socket %d: %m", s);
        return 0;
    }
    int r = loop_add_fd(h->l, s, ev, on_socket_event, h);
    if (r < 0) {
        /* Returning -1 makes curl fail the transfers on this socket. */
        log_error_errno(r, "http: cannot watch socket %d: %m", s);
        return -1;
    }
    if (h->n_fds == h->cap_fds) {
        h->cap_fds = h->cap_fds ? h->cap_fds * 2 : 16;
        h->fds = xrealloc(h->fds, h->cap_fds * sizeof *h->fds);
    }
    h->fds[h->n_fds++] = s;
    return 0;
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    http *h = userp;
    /* curl must not be re-entered from here: even "now" goes through the timer. */
    if (timeout_ms < 0)
        loop_timer_disarm(h->timer);
    else
        loop_timer_arm(h->timer, (uint64_t)timeout_ms, 0);
    return 0;
}

/* ---- finished transfers ---- */

static void collect(http *h)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(h->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *easy = msg->easy_handle;
        CURLcode result = msg->data.result;
        http_call *c = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&c);
        /* Out of the multi handle now: its connection goes back to the cache
         * for the next request to the same host. */
        curl_multi_remove_handle(h->multi, easy);
        if (c)
            done_push(h, c, result);
    }
}

/* Turns "Name: value\r\n" lines into NUL-terminated, trimmed pairs. */
static void split_headers(http_call *c)
{
    buf *raw = &c->raw_headers;
    if (raw->len == 0)
        return;
    buf_appendc(raw, '\0');
    size_t cap = 0;
    char *p = raw->data, *end = raw->data + raw->len - 1;
    while (p < end) {
        char *eol = memchr(p, '\n', (size_t)(end - p));
        char *next = eol ? eol + 1 : end;
        char *line_end = eol ? eol : end;
        if (line_end > p && line_end[-1] == '\r')
            line_end--;
        *line_end = '\0';
        char *colon = memchr(p, ':', (size_t)(line_end - p));
        if (colon && colon > p) {
            char *name_end = colon;
            while (name_end > p && (name_end[-1] == ' ' || name_end[-1] == '\t'))
                name_end--;
            *name_end = '\0';
            char *v = colon + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            char *ve = line_end;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            *ve = '\0';
            if (c->n_fields == cap) {
                cap = cap ? cap * 2 : 16;
                c->fields = xrealloc(c->fields, cap * sizeof *c->fields);
            }
            c->fields[c->n_fields++] = (header_field){.name = p, .value = v};
        }
        p = next;
    }
}

static void run_callback(http_call *c)
{
    http_response r = {.call = c};
    CURLcode result = c->result;
    if (c->too_large && (result == CURLE_OK || result == CURLE_WRITE_ERROR))
        result = CURLE_FILESIZE_EXCEEDED;
    if (result == CURLE_FILESIZE_EXCEEDED)
        snprintf(c->errbuf, sizeof c->errbuf, "response body larger than %zu bytes",
                 c->max_response);
    if (result == CURLE_OK) {
        long status = 0;
        if (c->easy)
            curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
        r.status = status;
        split_headers(c);
    } else {
        /* A cut-off answer is no answer: callers must not read a partial 200
         * as success. */
        r.transport_error = (int)result;
        r.error = c->errbuf[0] ? c->errbuf : curl_easy_strerror(result);
        c->body.len = 0;
    }
    buf_appendc(&c->body, '\0');
    r.body = c->body.data;
    r.body_len = c->body.len - 1;
    int64_t elapsed = now_monotonic_ms() - c->started_ms;
    r.elapsed_ms = elapsed > 0 ? (uint64_t)elapsed : 0;

    c->in_callback = true;
    c->fn(&r, c->userdata);
    c->in_callback = false;
}

static void destroy(http *h);

static void dispatch(http *h)
{
    if (h->dispatching)
        return;
    h->dispatching = true;
    while (h->done_head && !h->free_requested) {
        http_call *c = h->done_head;
        done_unlink(h, c);
        /* Not in flight any more while its own callback runs. */
        c->counted = false;
        h->n_calls--;
        run_callback(c);
        call_free(c);
    }
    h->dispatching = false;
    if (h->free_requested)
        destroy(h);
}

static void dispatch_deferred(loop *l, void *userdata)
{
    dispatch(userdata);
}

/* ---- curl's data callbacks ---- */

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    http_call *c = userdata;
    size_t n = size * nmemb;
    if (n > c->max_response - MIN(c->body.len, c->max_response)) {
        c->too_large = true;
        return 0; /* anything short of n fails the transfer */
    }
    buf_append(&c->body, ptr, n);
    return n;
}

static size_t header_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    http_call *c = userdata;
    size_t n = size * nmemb;
    /* A new status line starts a new header block (after 1xx answers). */
    if (n >= 5 && memcmp(ptr, "HTTP/", 5) == 0)
        c->raw_headers.len = 0;
    if (c->raw_headers.len + n <= HTTP_MAX_HEADER_BYTES)
        buf_append(&c->raw_headers, ptr, n);
    return n;
}

/* ---- public interface ---- */

http *http_new(loop *l)
{
    assert(l);
    if (global_users == 0) {
        CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
        if (rc != CURLE_OK) {
            log_error("http: cannot initialise libcurl: %s", curl_easy_strerror(rc));
            return NULL;
        }
    }
    global_users++;

    http *h = xcalloc(1, sizeof *h);
    *h = (http){.l = l};
    h->multi = curl_multi_init();
    h->timer = loop_timer_new(l, on_timer, h);
    if (!h->multi || !h->timer) {
        log_error("http: cannot set up the transfer engine");
        destroy(h);
        return NULL;
    }
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)HTTP_MAX_HOST_CONNECTIONS);
    return h;
}

static void cancel_all(http *h)
{
    http_call *c = h->calls;
    while (c) {
        http_call *next = c->next;
        if (!c->in_callback) {
            call_detach(c);
            call_free(c);
        }
        c = next;
    }
}

static void destroy(http *h)
{
    cancel_all(h);
    if (h->multi)
        curl_multi_cleanup(h->multi);
    /* Sockets curl closed during cleanup without telling us. */
    for (size_t i = 0; i < h->n_fds; i++)
        loop_del_fd(h->l, h->fds[i]);
    loop_timer_free(h->timer);
    loop_cancel_deferred(h->l, h);
    free(h->fds);
    free(h);
    if (--global_users == 0)
        curl_global_cleanup();
}

void http_free(http *h)
{
    if (!h)
        return;
    if (h->dispatching) {
        /* From inside a callback: finish once it returns. */
        h->free_requested = true;
        cancel_all(h);
        return;
    }
    destroy(h);
}

static bool is_method(const char *m, const char *want)
{
    return strcmp(m, want) == 0;
}

static bool has_header(const http_request *req, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < req->n_headers; i++)
        if (strncasecmp(req->headers[i], name, n) == 0 && req->headers[i][n] == ':')
            return true;
    return false;
}

/* Whether the request goes out with CURLOPT_POSTFIELDS (see setup()). */
static bool sends_body(const http_request *req)
{
    if (is_method(req->method, "HEAD"))
        return false;
    return !(is_method(req->method, "GET") && req->body_len == 0);
}

static CURLcode setup(http_call *c, const http_request *req)
{
    CURL *e = c->easy;
    CURLcode rc = CURLE_OK;
#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (rc == CURLE_OK)                                                                        \
            rc = curl_easy_setopt(e, opt, val);                                                    \
    } while (0)
    uint64_t timeout = req->timeout_ms ? req->timeout_ms : HTTP_DEFAULT_TIMEOUT_MS;
    uint64_t connect =
        req->connect_timeout_ms ? req->connect_timeout_ms : HTTP_DEFAULT_CONNECT_TIMEOUT_MS;
    SET(CURLOPT_URL, req->url);
    SET(CURLOPT_PRIVATE, (char *)c);
    SET(CURLOPT_ERRORBUFFER, c->errbuf);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_SSL_VERIFYPEER, 1L);
    SET(CURLOPT_SSL_VERIFYHOST, 2L);
    if (req->ca_file)
        SET(CURLOPT_CAINFO, req->ca_file);
    SET(CURLOPT_TIMEOUT_MS, (long)MIN(timeout, (uint64_t)LONG_MAX));
    SET(CURLOPT_CONNECTTIMEOUT_MS, (long)MIN(connect, (uint64_t)LONG_MAX));
    SET(CURLOPT_TCP_KEEPALIVE, 1L);
    SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)MIN(c->max_response, (size_t)INT64_MAX));
    SET(CURLOPT_WRITEFUNCTION, write_cb);
    SET(CURLOPT_WRITEDATA, c);
    SET(CURLOPT_HEADERFUNCTION, header_cb);
    SET(CURLOPT_HEADERDATA, c);
    if (req->secret) /* a token must not reach whatever http_proxy names */
        SET(CURLOPT_NOPROXY, "*");

    if (is_method(req->method, "HEAD")) {
        SET(CURLOPT_NOBODY, 1L);
    } else if (!sends_body(req)) {
        SET(CURLOPT_HTTPGET, 1L);
    } else {
        /* The body is sent from the caller's memory, as the header promises. */
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        SET(CURLOPT_POSTFIELDS, req->body_len ? req->body : "");
        if (!is_method(req->method, "POST"))
            SET(CURLOPT_CUSTOMREQUEST, req->method);
    }
#undef SET
    return rc;
}

static bool build_headers(http_call *c, const http_request *req)
{
    struct curl_slist *l = NULL;
    const char *extra[3];
    size_t n_extra = 0;
    /* No 100-continue round trip before a large body. */
    if (!has_header(req, "Expect"))
        extra[n_extra++] = "Expect:";
    /* curl would otherwise label every body as a form. */
    if (sends_body(req) && !has_header(req, "Content-Type"))
        extra[n_extra++] = "Content-Type:";
    for (size_t i = 0; i < req->n_headers + n_extra; i++) {
        const char *line = i < req->n_headers ? req->headers[i] : extra[i - req->n_headers];
        struct curl_slist *n = curl_slist_append(l, line);
        if (!n) {
            curl_slist_free_all(l);
            return false;
        }
        l = n;
    }
    c->headers = l;
    return true;
}

http_call *http_send(http *h, const http_request *req, http_done_fn fn, void *userdata)
{
    assert(h);
    assert(req);
    assert(fn);
    if (!req->url || !*req->url) {
        log_error("http: request without a URL");
        return NULL;
    }
    if (h->free_requested) {
        log_error("http: request for %s after shutdown", req->url);
        return NULL;
    }
    http_request r = *req;
    if (!r.method)
        r.method = "GET";

    http_call *c = xcalloc(1, sizeof *c);
    *c = (http_call){
        .h = h,
        .fn = fn,
        .userdata = userdata,
        .max_response = r.max_response ? r.max_response : HTTP_DEFAULT_MAX_RESPONSE,
        .started_ms = now_monotonic_ms(),
        .counted = true,
        .secret = r.secret,
        .next = h->calls,
    };
    /* Grown by realloc, the body would leave copies behind unwiped. */
    if (c->secret)
        buf_reserve(&c->body, c->max_response + 1);
    if (h->calls)
        h->calls->prev = c;
    h->calls = c;
    h->n_calls++;

    c->easy = curl_easy_init();
    if (!c->easy || !build_headers(c, &r)) {
        log_error("http: cannot set up a request for %s", r.secret ? "credentials" : r.url);
        call_free(c);
        return NULL;
    }
    CURLcode rc = setup(c, &r);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, c->headers);
    if (rc != CURLE_OK) {
        log_error("http: cannot set up a request for %s: %s", r.secret ? "credentials" : r.url,
                  curl_easy_strerror(rc));
        call_free(c);
        return NULL;
    }
    CURLMcode mc = curl_multi_add_handle(h->multi, c->easy);
    if (mc != CURLM_OK) {
        /* The caller still hears about it, but from the loop. */
        snprintf(c->errbuf, sizeof c->errbuf, "cannot start request: %s", curl_multi_strerror(mc));
        done_push(h, c, CURLE_FAILED_INIT);
        loop_defer(h->l, dispatch_deferred, h);
    }
    return c;
}

void http_cancel(http_call *c)
{
    if (!c || c->in_callback)
        return;
    call_detach(c);
    call_free(c);
}

size_t http_in_flight(const http *h)
{
    return h->n_calls;
}

const char *http_response_header(const http_response *r, const char *name)
{
    assert(r);
    assert(name);
    const http_call *c = r->call;
    if (!c)
        return NULL;
    for (size_t i = 0; i < c->n_fields; i++)
        if (strcasecmp(c->fields[i].name, name) == 0)
            return c->fields[i].value;
    return NULL;
}
