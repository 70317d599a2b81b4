/* test_http.c: the event-loop HTTP client against the fake AWS endpoint
 * (tests/fake_aws.py run as a child): round trips, concurrency, keep-alive,
 * timeouts, refused and reset connections, TLS, size cap, cancellation. */
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>

#include "http.h"
#include "log.h"
#include "loop.h"
#include "util.h"

#include "fake_aws_child.h"
#include "testutil.h"

/* ---- the fake endpoint as a child process ---- */

typedef fake_child fake;

static bool fake_start(fake *f, const char *extra)
{
    const char *args[] = {"--seed", "7", extra, NULL};
    return fake_child_start(f, args);
}

static void fake_stop(fake *f)
{
    fake_child_stop(f);
}

/* A blocking request to the fake's control API; returns the HTTP status. */
static long control(const fake *f, const char *method, const char *path, const char *body)
{
    return fake_child_request(f, method, path, body, NULL);
}

static void set_faults(const fake *f, const char *rules)
{
    assert_int_equal(control(f, "POST", "/_fake/faults", rules), 200);
}

/* ---- driving the loop ---- */


/* ---- recording responses ---- */

typedef struct result {
    bool called;
    long status;
    int transport_error;
    char *body;
    size_t body_len;
    uint64_t elapsed_ms;
    char *content_type;
    char *ttl_header;
    char *error_type;
} result;

static void result_clear(result *r)
{
    free(r->body);
    free(r->content_type);
    free(r->ttl_header);
    free(r->error_type);
    *r = (result){0};
}

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

static void record(const http_response *resp, void *userdata)
{
    result *r = userdata;
    assert_false(r->called);
    r->called = true;
    r->status = resp->status;
    r->transport_error = resp->transport_error;
    assert_non_null(resp->body);
    assert_int_equal(resp->body[resp->body_len], '\0');
    r->body = xstrndup(resp->body, resp->body_len);
    r->body_len = resp->body_len;
    r->elapsed_ms = resp->elapsed_ms;
    if (resp->transport_error)
        assert_non_null(resp->error);
    r->content_type = dup_or_null(http_response_header(resp, "content-TYPE"));
    r->ttl_header = dup_or_null(http_response_header(resp, "x-aws-ec2-metadata-token-ttl-seconds"));
    r->error_type = dup_or_null(http_response_header(resp, "X-Amzn-ErrorType"));
}

typedef struct all_called {
    result *rs;
    size_t n;
} all_called;

static bool step_all_called(void *arg)
{
    all_called *a = arg;
    for (size_t i = 0; i < a->n; i++)
        if (!a->rs[i].called)
            return false;
    return true;
}

static http_call *get(http *h, const char *base, const char *path, result *r)
{
    _cleanup_free_ char *url = xasprintf("%s%s", base, path);
    http_request req = {.method = "GET", .url = url};
    return http_send(h, &req, record, r);
}

/* ---- fixture ---- */

typedef struct fixture {
    fake f;
    fake tls;
    bool tls_started;
} fixture;

static int group_setup(void **state)
{
    static const char *const proxies[] = {"http_proxy",  "https_proxy", "HTTP_PROXY",
                                          "HTTPS_PROXY", "ALL_PROXY",   "all_proxy"};
    for (size_t i = 0; i < ARRAY_SIZE(proxies); i++)
        unsetenv(proxies[i]);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    fixture *fx = xcalloc(1, sizeof *fx);
    if (!fake_start(&fx->f, NULL)) {
        fake_stop(&fx->f);
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

static int group_teardown(void **state)
{
    fixture *fx = *state;
    fake_stop(&fx->f);
    if (fx->tls_started)
        fake_stop(&fx->tls);
    free(fx);
    curl_global_cleanup();
    return 0;
}

static int test_setup(void **state)
{
    fixture *fx = *state;
    return control(&fx->f, "POST", "/_fake/reset", "{}") == 200 ? 0 : -1;
}

/* ---- tests ---- */

static void test_get_put_post_round_trip_with_status_body_and_headers(void **state)
{
    fixture *fx = *state;
    loop *l = loop_new();
    http *h = http_new(l);
    assert_non_null(h);
    result rs[5] = {0};

    assert_non_null(get(h, fx->f.endpoint, "/_fake/health", &rs[0]));

    _cleanup_free_ char *token_url = xasprintf("%s/latest/api/token", fx->f.imds_endpoint);
    const char *ttl[] = {"X-aws-ec2-metadata-token-ttl-seconds: 60"};
    http_request put = {.method = "PUT", .url = token_url, .headers = ttl, .n_headers = 1};
    assert_non_null(http_send(h, &put, record, &rs[1]));

    _cleanup_free_ char *faults_url = xasprintf("%s/_fake/faults", fx->f.endpoint);
    const char *rules = "[{\"op\": \"PutLogEvents\", \"kind\": \"throttle\", \"count\": 7}]";
    const char *json_ct[] = {"Content-Type: application/json"};
    http_request post = {.method = "POST",
                         .url = faults_url,
                         .headers = json_ct,
                         .n_headers = 1,
                         .body = rules,
                         .body_len = strlen(rules)};
    assert_non_null(http_send(h, &post, record, &rs[2]));

    /* An unsigned CloudWatch call: the service's error comes back as a status. */
    _cleanup_free_ char *logs_url = xasprintf("%s/", fx->f.endpoint);
    const char *target[] = {"X-Amz-Target: Logs_20140328.DescribeLogGroups",
                            "Content-Type: application/x-amz-json-1.1"};
    http_request unsigned_post = {.method = "POST",
                                  .url = logs_url,
                                  .headers = target,
                                  .n_headers = 2,
                                  .body = "{}",
                                  .body_len = 2};
    assert_non_null(http_send(h, &unsigned_post, record, &rs[3]));

    http_request put_no_ttl = {.method = "PUT", .url = token_url};
    assert_non_null(http_send(h, &put_no_ttl, record, &rs[4]));

    /* Callbacks come from the loop, never from inside http_send. */
    for (size_t i = 0; i < ARRAY_SIZE(rs); i++)
        assert_false(rs[i].called);
    assert_int_equal(http_in_flight(h), 5);

    all_called a = {rs, ARRAY_SIZE(rs)};
    assert_true(run(l, step_all_called, &a, 10000));
    assert_int_equal(http_in_flight(h), 0);

    assert_int_equal(rs[0].transport_error, 0);
    assert_int_equal(rs[0].status, 200);
    assert_non_null(strstr(rs[0].body, "\"ok\": true"));
    assert_string_equal(rs[0].content_type, "application/json");

    assert_int_equal(rs[1].status, 200);
    assert_int_equal(strncmp(rs[1].body, "AQAEA", 5), 0);
    assert_non_null(rs[1].ttl_header);
    assert_string_equal(rs[1].ttl_header, "60");

    assert_int_equal(rs[2].status, 200);
    assert_non_null(strstr(rs[2].body, "\"count\": 7")); /* the body reached the server */

    assert_int_equal(rs[3].transport_error, 0);
    assert_int_equal(rs[3].status, 400);
    assert_non_null(rs[3].error_type);
    assert_string_equal(rs[3].error_type, "MissingAuthenticationTokenException");
    assert_null(rs[3].ttl_header);

    assert_int_equal(rs[4].transport_error, 0);
    assert_int_equal(rs[4].status, 400);

    for (size_t i = 0; i < ARRAY_SIZE(rs); i++)
        result_clear(&rs[i]);
    http_free(h);
    loop_free(l);
}

static void test_many_concurrent_requests_all_complete(void **state)
{
    fixture *fx = *state;
    loop *l = loop_new();
    http *h = http_new(l);
    enum { N = 40 };
    result rs[N] = {0};
    for (size_t i = 0; i < N; i++)
        assert_non_null(
            get(h, fx->f.endpoint, (i % 2) ? "/_fake/health" : "/_fake/config", &rs[i]));
    assert_int_equal(http_in_flight(h), N);
    all_called a = {rs, N};
    assert_true(run(l, step_all_called, &a, 20000));
    assert_int_equal(http_in_flight(h), 0);
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(rs[i].transport_error, 0);
        assert_int_equal(rs[i].status, 200);
        /* Each answer went to its own request. */
        assert_non_null(strstr(rs[i].body, (i % 2) ? "\"ok\"" : "\"max_event_size\""));
        result_clear(&rs[i]);
    }
    http_free(h);
    loop_free(l);
}

/* Local ports of this process's established TCP connections to `port`. */
static size_t our_connections(int port, unsigned *ports, size_t max)
{
    /* Socket inodes held by this process. */
    unsigned long inodes[256];
    size_t n_inodes = 0;
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d)) && n_inodes < ARRAY_SIZE(inodes)) {
        char link[300], target[64];
        snprintf(link, sizeof link, "/proc/self/fd/%s", de->d_name);
        ssize_t n = readlink(link, target, sizeof target - 1);
        if (n <= 0)
            continue;
        target[n] = '\0';
        unsigned long ino;
        if (sscanf(target, "socket:[%lu]", &ino) == 1)
            inodes[n_inodes++] = ino;
    }
    closedir(d);

    FILE *f = fopen("/proc/self/net/tcp", "re");
    assert_non_null(f);
    char line[512];
    size_t found = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned lport, rport, st;
        unsigned long ino;
        if (sscanf(line, " %*d: %*x:%x %*x:%x %x %*x:%*x %*x:%*x %*x %*u %*u %lu", &lport, &rport,
                   &st, &ino) != 4)
            continue;
        if ((int)rport != port || st != 1 /* ESTABLISHED */)
            continue;
        for (size_t i = 0; i < n_inodes; i++)
            if (inodes[i] == ino && found < max)
                ports[found++] = lport;
    }
    fclose(f);
    return found;
}

typedef struct chain {
    http *h;
    const fake *f;
    int remaining;
    int completed;
    unsigned ports[16];
    size_t n_ports;
    bool failed;
} chain;

static void chain_next(const http_response *resp, void *userdata)
{
    chain *c = userdata;
    if (resp->status != 200)
        c->failed = true;
    c->completed++;
    unsigned now[16];
    size_t n = our_connections(c->f->port, now, ARRAY_SIZE(now));
    for (size_t i = 0; i < n; i++) {
        bool seen = false;
        for (size_t j = 0; j < c->n_ports; j++)
            seen |= c->ports[j] == now[i];
        if (!seen && c->n_ports < ARRAY_SIZE(c->ports))
            c->ports[c->n_ports++] = now[i];
    }
    if (c->remaining-- > 0) {
        _cleanup_free_ char *url = xasprintf("%s/_fake/health", c->f->endpoint);
        http_request req = {.method = "GET", .url = url};
        assert_non_null(http_send(c->h, &req, chain_next, c));
    }
}

static bool step_chain_done(void *arg)
{
    chain *c = arg;
    return c->remaining < 0;
}

static void test_sequential_requests_reuse_one_keepalive_connection(void **state)
{
    fixture *fx = *state;
    loop *l = loop_new();
    http *h = http_new(l);
    chain c = {.h = h, .f = &fx->f, .remaining = 5};
    _cleanup_free_ char *url = xasprintf("%s/_fake/health", fx->f.endpoint);
    http_request req = {.method = "GET", .url = url};
    assert_non_null(http_send(h, &req, chain_next, &c));
    assert_true(run(l, step_chain_done, &c, 10000));
    assert_false(c.failed);
    assert_int_equal(c.completed, 6);
    /* Six requests, one connection: each callback saw the same local port. */
    assert_int_equal(c.n_ports, 1);
    http_free(h);
    loop_free(l);
}

static void test_request_slower_than_timeout_fails_with_timeout(void **state)
{
    fixture *fx = *state;
    set_faults(&fx->f, "[{\"op\": \"logs\", \"kind\": \"latency\", \"seconds\": 3, \"count\": 1}]");
    loop *l = loop_new();
    http *h = http_new(l);
    result r = {0};
    _cleanup_free_ char *url = xasprintf("%s/", fx->f.endpoint);
    http_request req = {
        .method = "POST", .url = url, .body = "{}", .body_len = 2, .timeout_ms = 300};
    assert_non_null(http_send(h, &req, record, &r));
    all_called a = {&r, 1};
    assert_true(run(l, step_all_called, &a, 5000));
    assert_int_equal(r.transport_error, CURLE_OPERATION_TIMEDOUT);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.body_len, 0);
    assert_true(r.elapsed_ms >= 250);
    assert_true(r.elapsed_ms < 2500);
    result_clear(&r);
    http_free(h);
    loop_free(l);
}

static void test_closed_port_fails_with_couldnt_connect(void **state)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(s >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t len = sizeof sa;
    assert_int_equal(getsockname(s, (struct sockaddr *)&sa, &len), 0);
    close(s); /* nothing listens there now */

    loop *l = loop_new();
    http *h = http_new(l);
    result r = {0};
    _cleanup_free_ char *url = xasprintf("http://127.0.0.1:%u/", ntohs(sa.sin_port));
    http_request req = {.method = "GET", .url = url, .connect_timeout_ms = 2000};
    assert_non_null(http_send(h, &req, record, &r));
    all_called a = {&r, 1};
    assert_true(run(l, step_all_called, &a, 5000));
    assert_int_equal(r.transport_error, CURLE_COULDNT_CONNECT);
    assert_int_equal(r.status, 0);
    result_clear(&r);
    http_free(h);
    loop_free(l);
}

typedef struct reset_test {
    http *h;
    http_request *req;
    result rs[2];
    bool second_sent;
} reset_test;

static bool step_reset(void *arg)
{
    reset_test *t = arg;
    if (t->rs[0].called && !t->second_sent) {
        t->second_sent = true;
        assert_non_null(http_send(t->h, t->req, record, &t->rs[1]));
    }
    return t->rs[1].called;
}

static void test_reset_connection_is_a_transport_error_and_next_request_works(void **state)
{
    fixture *fx = *state;
    /* On a fresh connection: curl itself re-sends once when a reused one
     * turns out dead, which would hide a single reset. */
    set_faults(&fx->f, "[{\"op\": \"logs\", \"kind\": \"reset_before\", \"count\": 1}]");
    loop *l = loop_new();
    http *h = http_new(l);
    _cleanup_free_ char *url = xasprintf("%s/", fx->f.endpoint);
    const char *target[] = {"X-Amz-Target: Logs_20140328.DescribeLogGroups"};
    http_request req = {.method = "POST",
                        .url = url,
                        .headers = target,
                        .n_headers = 1,
                        .body = "{}",
                        .body_len = 2};
    reset_test t = {.h = h, .req = &req};
    assert_non_null(http_send(h, &req, record, &t.rs[0]));
    assert_true(run(l, step_reset, &t, 10000));
    assert_int_not_equal(t.rs[0].transport_error, 0);
    assert_int_equal(t.rs[0].status, 0);
    assert_int_equal(t.rs[0].body_len, 0);
    /* Unsigned, so the fake answers 400 once it answers at all. */
    assert_int_equal(t.rs[1].transport_error, 0);
    assert_int_equal(t.rs[1].status, 400);
    result_clear(&t.rs[0]);
    result_clear(&t.rs[1]);
    http_free(h);
    loop_free(l);
}

static void test_tls_is_verified_with_the_given_ca_and_fails_without(void **state)
{
    fixture *fx = *state;
    if (!fx->tls_started) {
        assert_true(fake_start(&fx->tls, "--tls"));
        fx->tls_started = true;
    }
    assert_non_null(fx->tls.ca_file);
    assert_int_equal(strncmp(fx->tls.endpoint, "https://", 8), 0);

    loop *l = loop_new();
    http *h = http_new(l);
    result rs[3] = {0};
    _cleanup_free_ char *url = xasprintf("%s/_fake/health", fx->tls.endpoint);
    http_request with_ca = {.method = "GET", .url = url, .ca_file = fx->tls.ca_file};
    http_request system_cas = {.method = "GET", .url = url};
    http_request missing_ca = {.method = "GET", .url = url, .ca_file = "/nonexistent/ca.pem"};
    assert_non_null(http_send(h, &with_ca, record, &rs[0]));
    assert_non_null(http_send(h, &system_cas, record, &rs[1]));
    assert_non_null(http_send(h, &missing_ca, record, &rs[2]));
    all_called a = {rs, 3};
    assert_true(run(l, step_all_called, &a, 10000));

    assert_int_equal(rs[0].transport_error, 0);
    assert_int_equal(rs[0].status, 200);
    assert_non_null(strstr(rs[0].body, "\"ok\": true"));
    /* The fake's CA is not among the system's: verification must refuse. */
    assert_int_equal(rs[1].transport_error, CURLE_PEER_FAILED_VERIFICATION);
    assert_int_equal(rs[1].status, 0);
    assert_int_not_equal(rs[2].transport_error, 0);
    assert_int_equal(rs[2].status, 0);
    for (size_t i = 0; i < 3; i++)
        result_clear(&rs[i]);
    http_free(h);
    loop_free(l);
}

static void test_response_longer_than_cap_fails_the_call(void **state)
{
    fixture *fx = *state;
    loop *l = loop_new();
    http *h = http_new(l);
    _cleanup_free_ char *url = xasprintf("%s/_fake/health", fx->f.endpoint);
    const char *expect = "{\"ok\": true}";
    size_t len = strlen(expect);
    result rs[3] = {0};
    http_request exact = {.method = "GET", .url = url, .max_response = len};
    http_request one_short = {.method = "GET", .url = url, .max_response = len - 1};
    http_request tiny = {.method = "GET", .url = url, .max_response = 1};
    assert_non_null(http_send(h, &exact, record, &rs[0]));
    assert_non_null(http_send(h, &one_short, record, &rs[1]));
    assert_non_null(http_send(h, &tiny, record, &rs[2]));
    all_called a = {rs, 3};
    assert_true(run(l, step_all_called, &a, 10000));
    assert_int_equal(rs[0].transport_error, 0);
    assert_int_equal(rs[0].status, 200);
    assert_string_equal(rs[0].body, expect);
    for (size_t i = 1; i < 3; i++) {
        assert_int_equal(rs[i].transport_error, CURLE_FILESIZE_EXCEEDED);
        assert_int_equal(rs[i].status, 0);
        assert_int_equal(rs[i].body_len, 0);
    }
    for (size_t i = 0; i < 3; i++)
        result_clear(&rs[i]);
    http_free(h);
    loop_free(l);
}

typedef struct cancel_test {
    http *h;
    http_call *late;
    int64_t cancel_at, end_at;
    result *rs;
} cancel_test;

static bool step_cancel(void *arg)
{
    cancel_test *t = arg;
    int64_t now = now_monotonic_ms();
    if (t->late && now >= t->cancel_at) {
        http_cancel(t->late);
        t->late = NULL;
    }
    return now >= t->end_at && t->rs[2].called;
}

static void test_cancelled_calls_never_call_back(void **state)
{
    fixture *fx = *state;
    set_faults(&fx->f, "[{\"op\": \"logs\", \"kind\": \"latency\", \"seconds\": 1}]");
    loop *l = loop_new();
    http *h = http_new(l);
    result rs[3] = {0};
    _cleanup_free_ char *slow = xasprintf("%s/", fx->f.endpoint);
    http_request req = {.method = "POST", .url = slow, .body = "{}", .body_len = 2};
    http_call *early = http_send(h, &req, record, &rs[0]);
    http_call *late = http_send(h, &req, record, &rs[1]);
    assert_non_null(early);
    assert_non_null(late);
    http_cancel(early); /* before the loop ever ran */
    http_cancel(NULL);
    assert_int_equal(http_in_flight(h), 1);
    assert_non_null(get(h, fx->f.endpoint, "/_fake/health", &rs[2]));

    int64_t now = now_monotonic_ms();
    cancel_test t = {.h = h, .late = late, .cancel_at = now + 200, .end_at = now + 1600, .rs = rs};
    assert_true(run(l, step_cancel, &t, 5000));
    assert_false(rs[0].called);
    assert_false(rs[1].called);
    assert_true(rs[2].called);
    assert_int_equal(rs[2].status, 200);
    assert_int_equal(http_in_flight(h), 0);
    result_clear(&rs[2]);
    http_free(h);
    loop_free(l);
}

static bool step_wait_ms(void *arg)
{
    return now_monotonic_ms() >= *(int64_t *)arg;
}

static void test_free_with_pending_calls_calls_nothing_back(void **state)
{
    fixture *fx = *state;
    set_faults(&fx->f, "[{\"op\": \"logs\", \"kind\": \"latency\", \"seconds\": 1}]");
    loop *l = loop_new();
    http *h = http_new(l);
    result rs[6] = {0};
    _cleanup_free_ char *slow = xasprintf("%s/", fx->f.endpoint);
    http_request req = {.method = "POST", .url = slow, .body = "{}", .body_len = 2};
    for (size_t i = 0; i < 5; i++)
        assert_non_null(http_send(h, &req, record, &rs[i]));
    /* One that fails at once, so a completion is queued when the loop stops. */
    http_request bad = {.method = "GET", .url = "gopher://127.0.0.1:1/"};
    assert_non_null(http_send(h, &bad, record, &rs[5]));
    int64_t until = now_monotonic_ms() + 150;
    assert_true(run(l, step_wait_ms, &until, 2000));
    http_free(h);
    http_free(NULL);
    for (size_t i = 0; i < 5; i++)
        assert_false(rs[i].called);
    result_clear(&rs[5]);
    loop_free(l);
}

typedef struct reentrant {
    http *h;
    const fake *f;
    http_call *slow;
    result slow_r, follow_r, fast_r;
    bool fast_called;
    bool free_in_callback;
    bool done;
} reentrant;

static void on_follow(const http_response *resp, void *userdata)
{
    reentrant *t = userdata;
    record(resp, &t->follow_r);
    t->done = true;
}

static void on_fast(const http_response *resp, void *userdata)
{
    reentrant *t = userdata;
    t->fast_called = true;
    record(resp, &t->fast_r);
    /* Cancelling itself from its own callback is harmless. */
    http_cancel((http_call *)resp->call);
    if (t->free_in_callback) {
        http_free(t->h);
        t->h = NULL;
        t->done = true;
        return;
    }
    http_cancel(t->slow);
    t->slow = NULL;
    _cleanup_free_ char *url = xasprintf("%s/_fake/health", t->f->endpoint);
    http_request req = {.method = "GET", .url = url};
    assert_non_null(http_send(t->h, &req, on_follow, t));
}

static bool step_reentrant(void *arg)
{
    return ((reentrant *)arg)->done;
}

static void reentrant_case(fixture *fx, bool free_in_callback)
{
    set_faults(&fx->f, "[{\"op\": \"logs\", \"kind\": \"latency\", \"seconds\": 1}]");
    loop *l = loop_new();
    reentrant t = {.h = http_new(l), .f = &fx->f, .free_in_callback = free_in_callback};
    _cleanup_free_ char *slow = xasprintf("%s/", fx->f.endpoint);
    http_request sreq = {.method = "POST", .url = slow, .body = "{}", .body_len = 2};
    t.slow = http_send(t.h, &sreq, record, &t.slow_r);
    assert_non_null(t.slow);
    _cleanup_free_ char *fast = xasprintf("%s/_fake/health", fx->f.endpoint);
    http_request freq = {.method = "GET", .url = fast};
    assert_non_null(http_send(t.h, &freq, on_fast, &t));
    assert_true(run(l, step_reentrant, &t, 5000));
    assert_true(t.fast_called);
    assert_int_equal(t.fast_r.status, 200);
    assert_false(t.slow_r.called);
    if (free_in_callback) {
        assert_null(t.h);
        assert_false(t.follow_r.called);
    } else {
        assert_true(t.follow_r.called);
        assert_int_equal(t.follow_r.status, 200);
        assert_int_equal(http_in_flight(t.h), 0);
        http_free(t.h);
    }
    result_clear(&t.fast_r);
    result_clear(&t.follow_r);
    loop_free(l);
}

static void test_callback_may_cancel_and_send_reentrantly(void **state)
{
    reentrant_case(*state, false);
}

static void test_callback_may_free_the_client(void **state)
{
    reentrant_case(*state, true);
}

static void test_immediate_failure_is_reported_from_the_loop(void **state)
{
    loop *l = loop_new();
    http *h = http_new(l);
    result r = {0};
    http_request bad = {.method = "GET", .url = "ftp://127.0.0.1:1/file"};
    assert_non_null(http_send(h, &bad, record, &r));
    assert_false(r.called);
    http_request no_url = {.method = "GET"};
    assert_null(http_send(h, &no_url, record, &r));
    all_called a = {&r, 1};
    assert_true(run(l, step_all_called, &a, 5000));
    assert_int_equal(r.transport_error, CURLE_UNSUPPORTED_PROTOCOL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.body, "");
    result_clear(&r);
    http_free(h);
    loop_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_get_put_post_round_trip_with_status_body_and_headers,
                               test_setup),
        cmocka_unit_test_setup(test_many_concurrent_requests_all_complete, test_setup),
        cmocka_unit_test_setup(test_sequential_requests_reuse_one_keepalive_connection, test_setup),
        cmocka_unit_test_setup(test_request_slower_than_timeout_fails_with_timeout, test_setup),
        cmocka_unit_test_setup(test_closed_port_fails_with_couldnt_connect, test_setup),
        cmocka_unit_test_setup(test_reset_connection_is_a_transport_error_and_next_request_works,
                               test_setup),
        cmocka_unit_test_setup(test_tls_is_verified_with_the_given_ca_and_fails_without,
                               test_setup),
        cmocka_unit_test_setup(test_response_longer_than_cap_fails_the_call, test_setup),
        cmocka_unit_test_setup(test_cancelled_calls_never_call_back, test_setup),
        cmocka_unit_test_setup(test_free_with_pending_calls_calls_nothing_back, test_setup),
        cmocka_unit_test_setup(test_callback_may_cancel_and_send_reentrantly, test_setup),
        cmocka_unit_test_setup(test_callback_may_free_the_client, test_setup),
        cmocka_unit_test_setup(test_immediate_failure_is_reported_from_the_loop, test_setup),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
