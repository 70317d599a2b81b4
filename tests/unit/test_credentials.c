/* test_credentials.c: IMDSv2 (tokens, refusals, errors) and the credentials
 * chain (config, environment, ECS, instance role; rotation, outages, bad
 * answers, invalidation) against the fake AWS endpoint run as a child. Every
 * test also checks that no secret reached the agent's log. */
#include <arpa/inet.h>
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

#include "config.h"
#include "credentials.h"
#include "http.h"
#include "imds.h"
#include "log.h"
#include "loop.h"
#include "timeparse.h"
#include "util.h"

#include "fake_aws_child.h"
#include "testutil.h"

#define ECS_TOKEN "ecs-task-authorization-0123456789"

/* ---- the fake endpoint as a child process ---- */

typedef fake_child fake;

static bool fake_start(fake *f)
{
    const char *args[] = {"--seed", "11", "--ecs-auth-token", ECS_TOKEN, NULL};
    return fake_child_start(f, args) && f->ecs_full_uri && f->role;
}

static void fake_stop(fake *f)
{
    fake_child_stop(f);
}

/* A blocking call to the fake's control API; returns its JSON answer. */
static json_t *control(const fake *f, const char *method, const char *path, const char *body)
{
    buf out = {0};
    assert_int_equal(fake_child_request(f, method, path, body, &out), 200);
    json_error_t jerr;
    json_t *doc = json_loadb(out.data, out.len, 0, &jerr);
    buf_free(&out);
    assert_non_null(doc);
    return doc;
}

static void control_ok(const fake *f, const char *method, const char *path, const char *body)
{
    json_decref(control(f, method, path, body));
}

static void set_faults(const fake *f, const char *rules)
{
    control_ok(f, "POST", "/_fake/faults", rules);
}

/* How many requests the fake saw for an op ("imds:token", ...). */
static long op_count(const fake *f, const char *op)
{
    json_t *doc = control(f, "GET", "/_fake/requests", NULL);
    json_t *o = json_object_get(json_object_get(json_object_get(doc, "ops"), op), "total");
    long n = json_is_integer(o) ? (long)json_integer_value(o) : 0;
    json_decref(doc);
    return n;
}

/* The AccessKeyId the fake's IMDS hands out now (copy). */
static char *fake_access_key(const fake *f)
{
    json_t *doc = control(f, "GET", "/_fake/credentials", NULL);
    const char *k = json_string_value(json_object_get(doc, "AccessKeyId"));
    assert_non_null(k);
    char *r = xstrdup(k);
    json_decref(doc);
    return r;
}

/* ---- driving the loop ---- */


static bool step_until_ms(void *arg)
{
    return now_monotonic_ms() >= *(int64_t *)arg;
}

/* ---- fixture: the fake, a captured stderr, the secrets seen ---- */

typedef struct fixture {
    fake f;
    int saved_stderr;
    char log_path[64];
    char *secrets[64];
    size_t n_secrets;
} fixture;

static fixture *the_fx;

static void remember_secret(const char *s)
{
    fixture *fx = the_fx;
    if (s && *s && fx->n_secrets < ARRAY_SIZE(fx->secrets))
        fx->secrets[fx->n_secrets++] = xstrdup(s);
}

static void remember(const credentials *k)
{
    if (!k)
        return;
    remember_secret(k->secret_access_key);
    remember_secret(k->session_token);
}

/* What the agent logged so far in this test. */
static char *captured_log(void)
{
    fflush(stderr);
    FILE *f = fopen(the_fx->log_path, "re");
    assert_non_null(f);
    buf b = {0};
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_append(&b, chunk, n);
    fclose(f);
    buf_appendc(&b, '\0');
    return b.data;
}

static bool log_contains(const char *needle)
{
    _cleanup_free_ char *log = captured_log();
    return strstr(log, needle) != NULL;
}

/* Where the log ends now, to look only at what comes after. */
static size_t log_mark(void)
{
    _cleanup_free_ char *log = captured_log();
    return strlen(log);
}

static bool log_contains_since(size_t mark, const char *needle)
{
    _cleanup_free_ char *log = captured_log();
    return strlen(log) >= mark && strstr(log + mark, needle) != NULL;
}

static void assert_no_secret_logged(void)
{
    _cleanup_free_ char *log = captured_log();
    for (size_t i = 0; i < the_fx->n_secrets; i++) {
        const char *s = the_fx->secrets[i];
        if (strstr(log, s))
            fail_msg("a secret reached the log");
        /* Not even a recognisable piece of it. */
        if (strlen(s) >= 24) {
            _cleanup_free_ char *piece = xstrndup(s + 4, 16);
            if (strstr(log, piece))
                fail_msg("part of a secret reached the log");
        }
    }
}

static void clear_env(void)
{
    static const char *const vars[] = {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        "AWS_EC2_METADATA_DISABLED",
        "AWS_EC2_METADATA_SERVICE_ENDPOINT",
        "http_proxy",
        "https_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "all_proxy",
    };
    for (size_t i = 0; i < ARRAY_SIZE(vars); i++)
        unsetenv(vars[i]);
}

static int group_setup(void **state)
{
    clear_env();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    fixture *fx = xcalloc(1, sizeof *fx);
    fx->saved_stderr = -1;
    if (!fake_start(&fx->f)) {
        fake_stop(&fx->f);
        free(fx);
        return -1;
    }
    log_set_level(LOG_LEVEL_DEBUG);
    the_fx = fx;
    *state = fx;
    return 0;
}

static int group_teardown(void **state)
{
    fixture *fx = *state;
    fake_stop(&fx->f);
    free(fx);
    the_fx = NULL;
    curl_global_cleanup();
    return 0;
}

static int test_setup(void **state)
{
    fixture *fx = *state;
    clear_env();
    control_ok(&fx->f, "POST", "/_fake/reset", "{}");
    control_ok(&fx->f, "POST", "/_fake/config",
               "{\"credential_lifetime\": 21600, \"rotation_window\": null, \"clock_offset\": 0}");
    control_ok(&fx->f, "POST", "/_fake/rotate", "{}");
    snprintf(fx->log_path, sizeof fx->log_path, "/tmp/cwlogd-test-creds-XXXXXX");
    int fd = mkstemp(fx->log_path);
    if (fd < 0)
        return -1;
    fflush(stderr);
    fx->saved_stderr = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    close(fd);
    return 0;
}

static int test_teardown(void **state)
{
    fixture *fx = *state;
    fflush(stderr);
    /* Show what was captured, so a failing test still explains itself. */
    _cleanup_free_ char *log = captured_log();
    dup2(fx->saved_stderr, STDERR_FILENO);
    close(fx->saved_stderr);
    fx->saved_stderr = -1;
    fputs(log, stderr);
    unlink(fx->log_path);
    for (size_t i = 0; i < fx->n_secrets; i++)
        free(fx->secrets[i]);
    fx->n_secrets = 0;
    clear_env();
    return 0;
}

/* ---- IMDS ---- */

typedef struct got {
    bool called;
    int err;
    char *body;
} got;

static void on_imds(int err, const char *body, size_t len, void *userdata)
{
    got *g = userdata;
    assert_false(g->called);
    g->called = true;
    g->err = err;
    if (err == 0) {
        assert_non_null(body);
        g->body = xstrndup(body, len);
    } else {
        assert_null(body);
    }
}

static void got_clear(got *g, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(g[i].body);
        g[i] = (got){0};
    }
}

typedef struct gots {
    got *g;
    size_t n;
} gots;

static bool step_all_got(void *arg)
{
    gots *a = arg;
    for (size_t i = 0; i < a->n; i++)
        if (!a->g[i].called)
            return false;
    return true;
}

typedef struct env {
    loop *l;
    http *h;
    imds *m;
} env;

static env env_new(const char *imds_endpoint)
{
    env e = {.l = loop_new()};
    assert_non_null(e.l);
    e.h = http_new(e.l);
    assert_non_null(e.h);
    e.m = imds_new(e.l, e.h, imds_endpoint);
    assert_non_null(e.m);
    return e;
}

static void env_free(env *e)
{
    imds_free(e->m);
    http_free(e->h);
    loop_free(e->l);
}

typedef struct token_reuse {
    imds *m;
    got g[7];
    bool second_round;
} token_reuse;

static bool step_token_reuse(void *arg)
{
    token_reuse *t = arg;
    for (size_t i = 0; i < 5; i++)
        if (!t->g[i].called)
            return false;
    if (!t->second_round) {
        t->second_round = true;
        imds_get(t->m, "/latest/meta-data/placement/region", on_imds, &t->g[5]);
        imds_get(t->m, "/latest/meta-data/instance-id", on_imds, &t->g[6]);
    }
    return t->g[5].called && t->g[6].called;
}

static void test_imds_requests_share_one_token_and_wait_for_it(void **state)
{
    fixture *fx = *state;
    env e = env_new(fx->f.imds_endpoint);
    token_reuse t = {.m = e.m};
    static const char *const paths[] = {
        "/latest/meta-data/instance-id", "/latest/meta-data/placement/region",
        "/latest/meta-data/placement/availability-zone", "/latest/meta-data/local-ipv4",
        "/latest/meta-data/iam/security-credentials/"};
    for (size_t i = 0; i < 5; i++)
        imds_get(e.m, paths[i], on_imds, &t.g[i]);
    assert_false(t.g[0].called);
    assert_true(run(e.l, step_token_reuse, &t, 10000));
    for (size_t i = 0; i < 7; i++)
        assert_int_equal(t.g[i].err, 0);
    assert_string_equal(t.g[0].body, "i-0fa4e1c3b2d5a6978");
    assert_string_equal(t.g[1].body, "us-east-1");
    assert_string_equal(t.g[2].body, "us-east-1a");
    assert_string_equal(t.g[3].body, "10.0.0.10");
    assert_string_equal(t.g[4].body, fx->f.role);
    assert_string_equal(t.g[5].body, "us-east-1");
    /* Five queued while the token was fetched, two later: one token. */
    assert_int_equal(op_count(&fx->f, "imds:token"), 1);
    assert_int_equal(op_count(&fx->f, "imds:instance-id"), 2);
    got_clear(t.g, 7);
    env_free(&e);
    assert_no_secret_logged();
}

typedef struct expired_token {
    const fake *f;
    imds *m;
    got g[2];
    bool shifted;
} expired_token;

static bool step_expired_token(void *arg)
{
    expired_token *t = arg;
    if (!t->g[0].called)
        return false;
    if (!t->shifted) {
        /* Seven hours later for IMDS: the token it gave has expired there. */
        t->shifted = true;
        control_ok(t->f, "POST", "/_fake/config", "{\"clock_offset\": 25200}");
        imds_get(t->m, "/latest/meta-data/instance-id", on_imds, &t->g[1]);
    }
    return t->g[1].called;
}

static void test_imds_token_expired_at_the_service_is_renewed_once(void **state)
{
    fixture *fx = *state;
    env e = env_new(fx->f.imds_endpoint);
    expired_token t = {.f = &fx->f, .m = e.m};
    imds_get(e.m, "/latest/meta-data/instance-id", on_imds, &t.g[0]);
    assert_true(run(e.l, step_expired_token, &t, 10000));
    assert_int_equal(t.g[0].err, 0);
    assert_int_equal(t.g[1].err, 0);
    assert_string_equal(t.g[1].body, "i-0fa4e1c3b2d5a6978");
    assert_int_equal(op_count(&fx->f, "imds:token"), 2);
    /* First GET, the refused one, the one with the new token. */
    assert_int_equal(op_count(&fx->f, "imds:instance-id"), 3);
    got_clear(t.g, 2);
    env_free(&e);
}

static void test_imds_token_refused_twice_fails_with_eacces(void **state)
{
    fixture *fx = *state;
    set_faults(&fx->f, "[{\"op\": \"imds:instance-id\", \"kind\": \"expired_token\"}]");
    env e = env_new(fx->f.imds_endpoint);
    got g[2] = {0};
    imds_get(e.m, "/latest/meta-data/instance-id", on_imds, &g[0]);
    imds_get(e.m, "/latest/meta-data/placement/region", on_imds, &g[1]);
    gots a = {g, 2};
    assert_true(run(e.l, step_all_got, &a, 10000));
    assert_int_equal(g[0].err, -EACCES);
    assert_int_equal(g[1].err, 0); /* other paths are not affected */
    /* Retried once, no loop. */
    assert_int_equal(op_count(&fx->f, "imds:instance-id"), 2);
    assert_int_equal(op_count(&fx->f, "imds:token"), 2);
    got_clear(g, 2);
    env_free(&e);
}

static void test_imds_errors_map_to_errnos(void **state)
{
    fixture *fx = *state;
    set_faults(&fx->f, "[{\"op\": \"imds:region\", \"kind\": \"500\"},"
                       " {\"op\": \"imds:document\", \"kind\": \"reset_before\"}]");
    env e = env_new(fx->f.imds_endpoint);
    got g[3] = {0};
    imds_get(e.m, "/latest/meta-data/no-such-thing", on_imds, &g[0]);
    imds_get(e.m, "/latest/meta-data/placement/region", on_imds, &g[1]);
    imds_get(e.m, "/latest/dynamic/instance-identity/document", on_imds, &g[2]);
    gots a = {g, 3};
    assert_true(run(e.l, step_all_got, &a, 10000));
    assert_int_equal(g[0].err, -ENOENT);
    assert_int_equal(g[1].err, -EIO);
    assert_int_equal(g[2].err, -EIO);
    got_clear(g, 3);
    env_free(&e);
}

static void test_imds_token_garbage_fails_queued_requests_with_eproto(void **state)
{
    fixture *fx = *state;
    set_faults(&fx->f, "[{\"op\": \"imds:token\", \"kind\": \"garbage\", \"count\": 1}]");
    env e = env_new(fx->f.imds_endpoint);
    got g[2] = {0};
    imds_get(e.m, "/latest/meta-data/instance-id", on_imds, &g[0]);
    imds_get(e.m, "/latest/meta-data/placement/region", on_imds, &g[1]);
    gots a = {g, 2};
    assert_true(run(e.l, step_all_got, &a, 10000));
    assert_int_equal(g[0].err, -EPROTO);
    assert_int_equal(g[1].err, -EPROTO);
    assert_int_equal(op_count(&fx->f, "imds:instance-id"), 0);
    got_clear(g, 2);
    env_free(&e);
}

static void test_imds_slow_answer_times_out(void **state)
{
    fixture *fx = *state;
    set_faults(
        &fx->f,
        "[{\"op\": \"imds:instance-id\", \"kind\": \"latency\", \"seconds\": 6, \"count\": 1}]");
    env e = env_new(fx->f.imds_endpoint);
    got g = {0};
    int64_t start = now_monotonic_ms();
    imds_get(e.m, "/latest/meta-data/instance-id", on_imds, &g);
    gots a = {&g, 1};
    assert_true(run(e.l, step_all_got, &a, 8000));
    int64_t took = now_monotonic_ms() - start;
    assert_int_equal(g.err, -ETIMEDOUT);
    assert_true(took >= 2500 && took < 5000); /* the 3 s budget, not the fake's 6 s */
    got_clear(&g, 1);
    env_free(&e);
}

static void test_imds_closed_port_is_econnrefused(void **state)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(s >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t len = sizeof sa;
    assert_int_equal(getsockname(s, (struct sockaddr *)&sa, &len), 0);
    close(s);
    _cleanup_free_ char *url = xasprintf("http://127.0.0.1:%u", ntohs(sa.sin_port));
    env e = env_new(url);
    got g = {0};
    imds_get(e.m, "/latest/meta-data/instance-id", on_imds, &g);
    gots a = {&g, 1};
    assert_true(run(e.l, step_all_got, &a, 5000));
    assert_int_equal(g.err, -ECONNREFUSED);
    got_clear(&g, 1);
    env_free(&e);
}

static void test_imds_disabled_fails_with_enodev_from_the_loop(void **state)
{
    fixture *fx = *state;
    setenv("AWS_EC2_METADATA_DISABLED", "True", 1);
    env e = env_new(fx->f.imds_endpoint);
    got g = {0};
    imds_get(e.m, "/latest/meta-data/instance-id", on_imds, &g);
    assert_false(g.called);
    gots a = {&g, 1};
    assert_true(run(e.l, step_all_got, &a, 5000));
    assert_int_equal(g.err, -ENODEV);
    assert_int_equal(op_count(&fx->f, "imds:token"), 0);
    got_clear(&g, 1);
    env_free(&e);
}

static void test_imds_endpoint_from_config_then_environment_then_default(void **state)
{
    loop *l = loop_new();
    http *h = http_new(l);
    /* Nothing is requested here: only the choice of address is looked at. */
    imds *m = imds_new(l, h, NULL);
    assert_string_equal(imds_endpoint(m), "http://169.254.169.254");
    imds_free(m);
    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:1/", 1);
    m = imds_new(l, h, "");
    assert_string_equal(imds_endpoint(m), "http://127.0.0.1:1");
    imds_free(m);
    m = imds_new(l, h, "http://127.0.0.1:2//");
    assert_string_equal(imds_endpoint(m), "http://127.0.0.1:2");
    imds_free(m);
    imds_free(NULL);
    http_free(h);
    loop_free(l);
}

static void test_imds_cancel_all_drops_only_that_callers_requests(void **state)
{
    fixture *fx = *state;
    env e = env_new(fx->f.imds_endpoint);
    got g[3] = {0};
    imds_get(e.m, "/latest/meta-data/instance-id", on_imds, &g[0]);
    imds_get(e.m, "/latest/meta-data/placement/region", on_imds, &g[1]);
    imds_get(e.m, "/latest/meta-data/local-ipv4", on_imds, &g[2]);
    imds_cancel_all(e.m, &g[1]);
    int64_t until = now_monotonic_ms() + 500;
    assert_true(run(e.l, step_until_ms, &until, 2000));
    assert_true(g[0].called);
    assert_false(g[1].called);
    assert_true(g[2].called);
    assert_int_equal(g[2].err, 0);
    got_clear(g, 3);
    env_free(&e);
}

/* ---- credentials ---- */

typedef struct watch {
    creds *c;
    int changes;
    char *first_key;
    char *last_key;
    int64_t first_expiration;
    int64_t last_expiration;
    bool first_still_valid_at_change; /* when a second set came */
    const char *provider;
} watch;

static void on_change(void *userdata)
{
    watch *w = userdata;
    const credentials *k = creds_current(w->c);
    assert_non_null(k);
    remember(k);
    w->changes++;
    w->provider = k->provider;
    if (!w->first_key) {
        w->first_key = xstrdup(k->access_key_id);
        w->first_expiration = k->expiration_ms;
    } else if (strcmp(k->access_key_id, w->first_key) != 0) {
        w->first_still_valid_at_change = now_realtime_ms() < w->first_expiration;
    }
    free(w->last_key);
    w->last_key = xstrdup(k->access_key_id);
    w->last_expiration = k->expiration_ms;
}

static void watch_clear(watch *w)
{
    free(w->first_key);
    free(w->last_key);
    *w = (watch){0};
}

static bool step_changed(void *arg)
{
    return ((watch *)arg)->changes > 0;
}

typedef struct cenv {
    env e;
    config cfg;
    watch w;
} cenv;

static void cenv_start(cenv *ce, const char *imds_endpoint)
{
    ce->e = env_new(imds_endpoint);
    ce->w.c = creds_new(ce->e.l, ce->e.h, ce->e.m, &ce->cfg, on_change, &ce->w);
    assert_non_null(ce->w.c);
    creds_start(ce->w.c);
}

static void cenv_free(cenv *ce)
{
    creds_free(ce->w.c);
    env_free(&ce->e);
    watch_clear(&ce->w);
}

static void test_config_keys_win_over_environment_and_imds(void **state)
{
    fixture *fx = *state;
    setenv("AWS_ACCESS_KEY_ID", "AKIAENVIRONMENTKEY01", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "environment/secret/key/0123456789abcdefghij", 1);
    remember_secret("environment/secret/key/0123456789abcdefghij");
    cenv ce = {.cfg = {.access_key_id = "AKIACONFIGKEY0000001",
                       .secret_access_key = "config/secret/key/0123456789abcdefghijklm",
                       .session_token = "config-session-token-0123456789abcdefghijkl"}};
    remember_secret(ce.cfg.secret_access_key);
    remember_secret(ce.cfg.session_token);
    cenv_start(&ce, fx->f.imds_endpoint);

    /* Usable at once, announced from the loop. */
    const credentials *k = creds_current(ce.w.c);
    assert_non_null(k);
    assert_int_equal(ce.w.changes, 0);
    assert_string_equal(k->provider, "config");
    assert_string_equal(k->access_key_id, "AKIACONFIGKEY0000001");
    assert_string_equal(k->secret_access_key, ce.cfg.secret_access_key);
    assert_string_equal(k->session_token, ce.cfg.session_token);
    assert_int_equal(k->expiration_ms, 0);
    assert_true(run(ce.e.l, step_changed, &ce.w, 5000));
    assert_int_equal(ce.w.changes, 1);

    /* Static keys cannot be refreshed: invalidating keeps them. */
    creds_invalidate(ce.w.c);
    assert_non_null(creds_current(ce.w.c));
    assert_true(log_contains("cannot be refreshed"));
    assert_int_equal(op_count(&fx->f, "imds:token"), 0);
    cenv_free(&ce);
    assert_no_secret_logged();
}

static void test_environment_keys_win_over_imds(void **state)
{
    fixture *fx = *state;
    setenv("AWS_ACCESS_KEY_ID", "AKIAENVIRONMENTKEY01", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "environment/secret/key/0123456789abcdefghij", 1);
    setenv("AWS_SESSION_TOKEN", "environment-session-token-0123456789abcdef", 1);
    remember_secret("environment/secret/key/0123456789abcdefghij");
    remember_secret("environment-session-token-0123456789abcdef");
    cenv ce = {0};
    cenv_start(&ce, fx->f.imds_endpoint);
    const credentials *k = creds_current(ce.w.c);
    assert_non_null(k);
    assert_string_equal(k->provider, "environment");
    assert_string_equal(k->access_key_id, "AKIAENVIRONMENTKEY01");
    assert_string_equal(k->session_token, "environment-session-token-0123456789abcdef");
    assert_true(run(ce.e.l, step_changed, &ce.w, 5000));
    assert_int_equal(op_count(&fx->f, "imds:token"), 0);
    cenv_free(&ce);
    assert_no_secret_logged();
}

static void test_half_set_environment_keys_fall_through_to_imds(void **state)
{
    fixture *fx = *state;
    setenv("AWS_ACCESS_KEY_ID", "AKIAENVIRONMENTKEY01", 1);
    cenv ce = {0};
    cenv_start(&ce, fx->f.imds_endpoint);
    assert_true(run(ce.e.l, step_changed, &ce.w, 5000));
    assert_string_equal(ce.w.provider, "imds");
    assert_true(log_contains("AWS_SECRET_ACCESS_KEY"));
    cenv_free(&ce);
    assert_no_secret_logged();
}

static void test_ecs_full_uri_with_authorization_token(void **state)
{
    fixture *fx = *state;
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", fx->f.ecs_full_uri, 1);
    setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", ECS_TOKEN, 1);
    remember_secret(ECS_TOKEN);
    cenv ce = {0};
    cenv_start(&ce, fx->f.imds_endpoint);
    assert_null(creds_current(ce.w.c));
    assert_true(run(ce.e.l, step_changed, &ce.w, 5000));
    const credentials *k = creds_current(ce.w.c);
    assert_non_null(k);
    assert_string_equal(k->provider, "ecs");
    _cleanup_free_ char *want = fake_access_key(&fx->f);
    assert_string_equal(k->access_key_id, want);
    assert_non_null(k->session_token);
    assert_true(k->expiration_ms > now_realtime_ms() + 3600 * 1000);
    assert_int_equal(op_count(&fx->f, "ecs:credentials"), 1);
    assert_int_equal(op_count(&fx->f, "imds:token"), 0);
    /* The endpoint is named by its host; the path is the task's credentials
     * handle and never reaches the log. */
    const char *path = strchr(fx->f.ecs_full_uri + strlen("http://"), '/');
    assert_non_null(path);
    _cleanup_free_ char *origin = xstrndup(fx->f.ecs_full_uri, (size_t)(path - fx->f.ecs_full_uri));
    _cleanup_free_ char *named = xasprintf("from ecs (%s), expiring", origin);
    assert_true(log_contains(named));
    assert_false(log_contains(path));
    cenv_free(&ce);
    assert_no_secret_logged();
}

static void test_ecs_token_file_wins_over_token_variable(void **state)
{
    fixture *fx = *state;
    char path[] = "/tmp/cwlogd-test-ecs-token-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *content = ECS_TOKEN "\n";
    assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
    close(fd);
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", fx->f.ecs_full_uri, 1);
    setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", path, 1);
    setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "a-wrong-token-that-the-fake-refuses", 1);
    remember_secret(ECS_TOKEN);
    cenv ce = {0};
    cenv_start(&ce, fx->f.imds_endpoint);
    assert_true(run(ce.e.l, step_changed, &ce.w, 5000));
    assert_string_equal(ce.w.provider, "ecs");
    cenv_free(&ce);
    unlink(path);
    assert_no_secret_logged();
}

static bool step_logged_401(void *arg)
{
    (void)arg;
    return log_contains("HTTP 401");
}

static void test_ecs_wrong_token_gives_no_credentials_and_no_fallback(void **state)
{
    fixture *fx = *state;
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", fx->f.ecs_full_uri, 1);
    setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "not-the-right-token-0123456789abcdef", 1);
    remember_secret("not-the-right-token-0123456789abcdef");
    cenv ce = {0};
    cenv_start(&ce, fx->f.imds_endpoint);
    assert_true(run(ce.e.l, step_logged_401, NULL, 5000));
    assert_null(creds_current(ce.w.c));
    assert_int_equal(ce.w.changes, 0);
    assert_int_equal(op_count(&fx->f, "imds:token"), 0);
    cenv_free(&ce);
    assert_no_secret_logged();
}

/* Refused before any request is made; the loop never runs here. */
static void expect_ecs_url_refused(fixture *fx, const char *url, const char *logged)
{
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", url, 1);
    setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", ECS_TOKEN, 1);
    cenv ce = {0};
    cenv_start(&ce, fx->f.imds_endpoint);
    assert_int_equal(http_in_flight(ce.e.h), 0);
    assert_null(creds_current(ce.w.c));
    assert_true(log_contains(logged));
    cenv_free(&ce);
}

static void test_ecs_full_uri_over_http_to_a_foreign_host_is_refused(void **state)
{
    expect_ecs_url_refused(*state, "http://192.0.2.10/v2/credentials", "must use https");
}

static void test_ecs_full_uri_with_octal_loopback_octets_is_refused(void **state)
{
    fixture *fx = *state;
    /* "0127" is octal to libcurl: it would connect to 87.0.0.1 with the token. */
    expect_ecs_url_refused(
        fx, "http://0127.0.0.1/v2/credentials/x",
        "ecs (http://87.0.0.1): AWS_CONTAINER_CREDENTIALS_FULL_URI must use https");
    /* Loopback however it is written is allowed: 127.1 and 2130706433 are 127.0.0.1. */
    static const char *const loopback[] = {"http://127.1/v2/c", "http://2130706433/v2/c",
                                           "http://[0:0::1]/v2/c", "http://LocalHost/v2/c"};
    for (size_t i = 0; i < ARRAY_SIZE(loopback); i++) {
        setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", loopback[i], 1);
        cenv ok = {0};
        cenv_start(&ok, fx->f.imds_endpoint);
        assert_int_equal(http_in_flight(ok.e.h), 1);
        cenv_free(&ok);
    }
}

typedef struct plain_answer {
    bool done;
    int transport_error;
} plain_answer;

static void on_plain_answer(const http_response *r, void *userdata)
{
    plain_answer *a = userdata;
    a->done = true;
    a->transport_error = r->transport_error;
}

static bool step_plain_answered(void *arg)
{
    return ((plain_answer *)arg)->done;
}

static void test_imds_and_ecs_requests_never_go_through_a_proxy(void **state)
{
    fixture *fx = *state;
    /* A proxy that refuses every connection: credentials arrive only if the
     * requests bypass it. */
    setenv("http_proxy", "http://127.0.0.1:9", 1);
    setenv("HTTP_PROXY", "http://127.0.0.1:9", 1);
    setenv("ALL_PROXY", "http://127.0.0.1:9", 1);
    cenv ce = {0};
    cenv_start(&ce, fx->f.imds_endpoint);
    assert_true(run(ce.e.l, step_changed, &ce.w, 5000));
    assert_string_equal(ce.w.provider, "imds");
    cenv_free(&ce);

    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", fx->f.ecs_full_uri, 1);
    setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", ECS_TOKEN, 1);
    remember_secret(ECS_TOKEN);
    cenv ecs = {0};
    cenv_start(&ecs, fx->f.imds_endpoint);
    assert_true(run(ecs.e.l, step_changed, &ecs.w, 5000));
    assert_string_equal(ecs.w.provider, "ecs");
    cenv_free(&ecs);
    assert_no_secret_logged();

    /* The proxy is real to other requests: without `secret` a request goes to it. */
    cenv other = {0};
    cenv_start(&other, fx->f.imds_endpoint);
    _cleanup_free_ char *url = xasprintf("%s/latest/api/token", fx->f.imds_endpoint);
    http_request req = {.method = "PUT", .url = url};
    plain_answer answer = {0};
    assert_non_null(http_send(other.e.h, &req, on_plain_answer, &answer));
    assert_true(run(other.e.l, step_plain_answered, &answer, 5000));
    assert_int_equal(answer.transport_error, CURLE_COULDNT_CONNECT); /* the proxy at port 9 */
    cenv_free(&other);
    unsetenv("http_proxy");
    unsetenv("HTTP_PROXY");
    unsetenv("ALL_PROXY");
}

static void test_instance_role_credentials_from_imds(void **state)
{
    fixture *fx = *state;
    cenv ce = {0};
    cenv_start(&ce, fx->f.imds_endpoint);
    assert_null(creds_current(ce.w.c));
    assert_true(run(ce.e.l, step_changed, &ce.w, 5000));
    const credentials *k = creds_current(ce.w.c);
    assert_non_null(k);
    assert_string_equal(k->provider, "imds");
    json_t *doc = control(&fx->f, "GET", "/_fake/credentials", NULL);
    assert_string_equal(k->access_key_id, json_string_value(json_object_get(doc, "AccessKeyId")));
    assert_string_equal(k->secret_access_key,
                        json_string_value(json_object_get(doc, "SecretAccessKey")));
    assert_string_equal(k->session_token, json_string_value(json_object_get(doc, "Token")));
    const char *exp = json_string_value(json_object_get(doc, "Expiration"));
    int64_t exp_ms;
    assert_int_equal(timeparse_rfc3339_ms(exp, strlen(exp), &exp_ms), 0);
    assert_int_equal(k->expiration_ms, exp_ms);
    json_decref(doc);
    assert_int_equal(op_count(&fx->f, "imds:roles"), 1);
    assert_int_equal(op_count(&fx->f, "imds:credentials"), 1);
    /* Which provider and role, and until when: */
    assert_true(log_contains(fx->f.role));
    assert_true(log_contains(fx->f.imds_endpoint));
    assert_true(log_contains("expiring"));
    cenv_free(&ce);
    assert_no_secret_logged();
}

static bool step_rotated(void *arg)
{
    watch *w = arg;
    return w->last_key && w->first_key && strcmp(w->last_key, w->first_key) != 0;
}

static void test_short_lived_credentials_are_replaced_before_they_expire(void **state)
{
    fixture *fx = *state;
    control_ok(&fx->f, "POST", "/_fake/config", "{\"credential_lifetime\": 4}");
    control_ok(&fx->f, "POST", "/_fake/rotate", "{}");
    cenv ce = {0};
    cenv_start(&ce, fx->f.imds_endpoint);
    int64_t start = now_realtime_ms();
    assert_true(run(ce.e.l, step_rotated, &ce.w, 8000));
    assert_true(ce.w.first_expiration - start <= 5000);
    /* The new set arrived while the old one was still good. */
    assert_true(ce.w.first_still_valid_at_change);
    assert_true(ce.w.last_expiration > ce.w.first_expiration);
    assert_true(ce.w.changes >= 2);
    cenv_free(&ce);
    assert_no_secret_logged();
}

typedef struct outage {
    const fake *f;
    watch *w;
    int64_t received, refresh_at; /* realtime ms */
    bool installed;
    bool saw_none;
} outage;

static bool step_outage(void *arg)
{
    outage *o = arg;
    if (o->w->changes == 0)
        return false;
    int64_t now = now_realtime_ms();
    if (!o->received) {
        /* Refreshed half way to expiry (see credentials.c). */
        o->received = now;
        o->refresh_at = now + (o->w->first_expiration - now) / 2;
    }
    if (!o->installed && now >= o->refresh_at - 300) {
        /* IMDS drops every connection from just before that refresh to
         * before its first retry. */
        o->installed = true;
        set_faults(o->f, "[{\"op\": \"imds\", \"kind\": \"outage\", \"seconds\": 0.6}]");
    }
    if (!creds_current(o->w->c))
        o->saw_none = true;
    return step_rotated(o->w);
}

static void test_imds_outage_during_refresh_keeps_valid_credentials_and_recovers(void **state)
{
    fixture *fx = *state;
    control_ok(&fx->f, "POST", "/_fake/config", "{\"credential_lifetime\": 6}");
    control_ok(&fx->f, "POST", "/_fake/rotate", "{}");
    cenv ce = {0};
    cenv_start(&ce, fx->f.imds_endpoint);
    outage o = {.f = &fx->f, .w = &ce.w};
    assert_true(run(ce.e.l, step_outage, &o, 10000));
    assert_true(o.installed);
    assert_false(o.saw_none);
    assert_true(ce.w.first_still_valid_at_change);
    assert_true(log_contains("keeping the current ones"));
    json_t *doc = control(&fx->f, "GET", "/_fake/faults", NULL);
    json_t *fired = json_object_get(json_array_get(json_object_get(doc, "rules"), 0), "fired");
    assert_true(json_integer_value(fired) >= 1); /* a refresh did hit the outage */
    json_decref(doc);
    cenv_free(&ce);
    assert_no_secret_logged();
}

typedef struct bad_case {
    const char *rule;
    const char *message;
} bad_case;

typedef struct bad_wait {
    const char *message;
    size_t mark;
} bad_wait;

static bool step_logged(void *arg)
{
    bad_wait *w = arg;
    return log_contains_since(w->mark, w->message);
}

static void test_garbage_html_or_empty_answers_are_errors_naming_imds(void **state)
{
    fixture *fx = *state;
    static const bad_case cases[] = {
        {"{\"op\": \"imds:roles\", \"kind\": \"garbage\"}", "is not a role name"},
        {"{\"op\": \"imds:roles\", \"kind\": \"html\", \"status\": 200}", "is not a role name"},
        {"{\"op\": \"imds:roles\", \"kind\": \"empty_role_list\"}", "empty role list"},
        {"{\"op\": \"imds:credentials\", \"kind\": \"garbage\"}", "not a JSON object"},
        {"{\"op\": \"imds:credentials\", \"kind\": \"html\", \"status\": 200}",
         "not a JSON object"},
        {"{\"op\": \"imds:credentials\", \"kind\": \"empty\"}", "empty answer"},
        {"{\"op\": \"imds:credentials\", \"kind\": \"html\"}", "failed (HTTP 500)"},
    };
    _cleanup_free_ char *where = xasprintf("imds (%s)", fx->f.imds_endpoint);
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        _cleanup_free_ char *rules = xasprintf("[%s]", cases[i].rule);
        set_faults(&fx->f, rules);
        bad_wait bw = {cases[i].message, log_mark()};
        cenv ce = {0};
        cenv_start(&ce, fx->f.imds_endpoint);
        assert_true(run(ce.e.l, step_logged, &bw, 5000));
        assert_null(creds_current(ce.w.c));
        assert_int_equal(ce.w.changes, 0);
        cenv_free(&ce);
    }
    _cleanup_free_ char *log = captured_log();
    assert_non_null(strstr(log, where));
    assert_no_secret_logged();
}

static void test_bad_answer_is_retried_and_recovers(void **state)
{
    fixture *fx = *state;
    set_faults(&fx->f, "[{\"op\": \"imds:credentials\", \"kind\": \"garbage\", \"count\": 1}]");
    cenv ce = {0};
    cenv_start(&ce, fx->f.imds_endpoint);
    int64_t start = now_monotonic_ms();
    assert_true(run(ce.e.l, step_changed, &ce.w, 5000));
    int64_t took = now_monotonic_ms() - start;
    assert_non_null(creds_current(ce.w.c));
    assert_true(log_contains("not a JSON object"));
    /* Backoff: the first retry waits between half and all of a second. */
    assert_true(took >= 450 && took < 2500);
    assert_int_equal(op_count(&fx->f, "imds:credentials"), 2);
    cenv_free(&ce);
    assert_no_secret_logged();
}

typedef struct invalidate {
    const fake *f;
    watch *w;
    int phase;
    int64_t until;
} invalidate;

static bool step_invalidate(void *arg)
{
    invalidate *t = arg;
    switch (t->phase) {
    case 0:
        if (t->w->changes < 1)
            return false;
        /* The service now wants a newer set than the one held. */
        control_ok(t->f, "POST", "/_fake/rotate", "{}");
        creds_invalidate(t->w->c);
        creds_invalidate(t->w->c); /* a fetch is running: nothing more */
        t->phase = 1;
        return false;
    case 1:
        if (t->w->changes < 2)
            return false;
        control_ok(t->f, "POST", "/_fake/rotate", "{}");
        creds_invalidate(t->w->c); /* too soon after the last one */
        t->until = now_monotonic_ms() + 1300;
        t->phase = 2;
        return false;
    default:
        return now_monotonic_ms() >= t->until;
    }
}

static void test_invalidate_fetches_now_but_not_again_within_seconds(void **state)
{
    fixture *fx = *state;
    /* A minute's credentials: nothing else is due during the test. */
    control_ok(&fx->f, "POST", "/_fake/config", "{\"credential_lifetime\": 60}");
    control_ok(&fx->f, "POST", "/_fake/rotate", "{}");
    cenv ce = {0};
    cenv_start(&ce, fx->f.imds_endpoint);
    invalidate t = {.f = &fx->f, .w = &ce.w};
    assert_true(run(ce.e.l, step_invalidate, &t, 8000));
    assert_int_equal(ce.w.changes, 2);
    assert_string_not_equal(ce.w.first_key, ce.w.last_key);
    /* Two fetches: the first and the invalidation; none for the second
     * invalidation, none for a refresh before half the lifetime. */
    assert_int_equal(op_count(&fx->f, "imds:credentials"), 2);
    /* The old set is kept until replaced. */
    assert_non_null(creds_current(ce.w.c));
    cenv_free(&ce);
    assert_no_secret_logged();
}

static void test_no_provider_when_imds_is_disabled(void **state)
{
    fixture *fx = *state;
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    cenv ce = {0};
    cenv_start(&ce, fx->f.imds_endpoint);
    bad_wait bw = {"AWS_EC2_METADATA_DISABLED", 0};
    assert_true(run(ce.e.l, step_logged, &bw, 5000));
    assert_null(creds_current(ce.w.c));
    assert_int_equal(op_count(&fx->f, "imds:token"), 0);
    cenv_free(&ce);
}

static void test_free_while_fetching_calls_nothing_back(void **state)
{
    fixture *fx = *state;
    set_faults(&fx->f, "[{\"op\": \"imds:roles\", \"kind\": \"latency\", \"seconds\": 1}]");
    cenv ce = {0};
    cenv_start(&ce, fx->f.imds_endpoint);
    int64_t until = now_monotonic_ms() + 200;
    assert_true(run(ce.e.l, step_until_ms, &until, 2000));
    assert_int_equal(ce.w.changes, 0);
    assert_true(http_in_flight(ce.e.h) > 0);
    cenv_free(&ce);
    creds_free(NULL);
}

#define T(name) cmocka_unit_test_setup_teardown(name, test_setup, test_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_imds_requests_share_one_token_and_wait_for_it),
        T(test_imds_token_expired_at_the_service_is_renewed_once),
        T(test_imds_token_refused_twice_fails_with_eacces),
        T(test_imds_errors_map_to_errnos),
        T(test_imds_token_garbage_fails_queued_requests_with_eproto),
        T(test_imds_slow_answer_times_out),
        T(test_imds_closed_port_is_econnrefused),
        T(test_imds_disabled_fails_with_enodev_from_the_loop),
        T(test_imds_endpoint_from_config_then_environment_then_default),
        T(test_imds_cancel_all_drops_only_that_callers_requests),
        T(test_config_keys_win_over_environment_and_imds),
        T(test_environment_keys_win_over_imds),
        T(test_half_set_environment_keys_fall_through_to_imds),
        T(test_ecs_full_uri_with_authorization_token),
        T(test_ecs_token_file_wins_over_token_variable),
        T(test_ecs_wrong_token_gives_no_credentials_and_no_fallback),
        T(test_ecs_full_uri_over_http_to_a_foreign_host_is_refused),
        T(test_ecs_full_uri_with_octal_loopback_octets_is_refused),
        T(test_imds_and_ecs_requests_never_go_through_a_proxy),
        T(test_instance_role_credentials_from_imds),
        T(test_short_lived_credentials_are_replaced_before_they_expire),
        T(test_imds_outage_during_refresh_keeps_valid_credentials_and_recovers),
        T(test_garbage_html_or_empty_answers_are_errors_naming_imds),
        T(test_bad_answer_is_retried_and_recovers),
        T(test_invalidate_fetches_now_but_not_again_within_seconds),
        T(test_no_provider_when_imds_is_disabled),
        T(test_free_while_fetching_calls_nothing_back),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
