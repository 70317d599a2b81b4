/* fake_aws_child.h: tests/fake_aws.py as a child process of a unit test,
 * and blocking requests to its control API. Header-only: each test program
 * is one file. */
#pragma once

#include <curl/curl.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "util.h"

typedef struct fake_child {
    pid_t pid;
    json_t *info; /* the line the fake prints when it is up */
    const char *endpoint, *imds_endpoint, *ecs_full_uri, *ca_file, *region, *role;
    int port;
} fake_child;

/* <source>/tests/fake_aws.py: from CWLOGD_SOURCE_DIR (CTest sets it), else
 * relative to this header. */
static char *fake_child_script(void)
{
    const char *env = getenv("CWLOGD_SOURCE_DIR");
    if (env && *env)
        return xasprintf("%s/tests/fake_aws.py", env);
    const char *slash = strrchr(__FILE__, '/');
    if (!slash)
        return xstrdup("../fake_aws.py");
    return xasprintf("%.*s/../fake_aws.py", (int)(slash - __FILE__), __FILE__);
}

/* Start the fake on free ports with extra command line arguments (a
 * NULL-terminated list, may be NULL); wait up to 20 s for its first line. */
static bool fake_child_start(fake_child *f, const char *const *extra)
{
    *f = (fake_child){.pid = -1};
    _cleanup_free_ char *script = fake_child_script();
    const char *argv[32] = {"python3", script, "--port", "0", "--imds-port", "0"};
    size_t n = 6;
    for (size_t i = 0; extra && extra[i] && n < ARRAY_SIZE(argv) - 1; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return false;
    pid_t pid = fork();
    if (pid < 0)
        return false;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        dup2(p[1], STDOUT_FILENO);
        execvp("python3", (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    f->pid = pid;
    buf line = {0};
    int64_t deadline = now_monotonic_ms() + 20000;
    while (!memchr(line.data ? line.data : "", '\n', line.len)) {
        struct pollfd pfd = {.fd = p[0], .events = POLLIN};
        int64_t left = deadline - now_monotonic_ms();
        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
            break;
        char chunk[1024];
        ssize_t r = read(p[0], chunk, sizeof chunk);
        if (r <= 0)
            break;
        buf_append(&line, chunk, (size_t)r);
    }
    close(p[0]);
    json_error_t jerr;
    f->info = line.len ? json_loadb(line.data, line.len, JSON_DISABLE_EOF_CHECK, &jerr) : NULL;
    buf_free(&line);
    if (!f->info) {
        fprintf(stderr, "%s did not start\n", script);
        return false;
    }
#define FIELD(name) json_string_value(json_object_get(f->info, name))
    f->endpoint = FIELD("endpoint");
    f->imds_endpoint = FIELD("imds_endpoint");
    f->ecs_full_uri = FIELD("ecs_full_uri");
    f->ca_file = FIELD("ca_file");
    f->region = FIELD("region");
    f->role = FIELD("role_name");
#undef FIELD
    f->port = (int)json_integer_value(json_object_get(f->info, "port"));
    return f->endpoint && f->imds_endpoint;
}

static void fake_child_stop(fake_child *f)
{
    if (f->pid > 0) {
        kill(f->pid, SIGTERM);
        waitpid(f->pid, NULL, 0);
    }
    json_decref(f->info);
    *f = (fake_child){.pid = -1};
}

static size_t fake_child_sink(char *p, size_t s, size_t n, void *ud)
{
    buf_append(ud, p, s * n);
    return s * n;
}

/* A blocking request to the control API (/_fake/...); the HTTP status, 0 when
 * the request failed; the answer's body in *out when out is not NULL. */
static long fake_child_request(const fake_child *f, const char *method, const char *path,
                               const char *body, buf *out)
{
    CURL *e = curl_easy_init();
    if (!e)
        return 0;
    _cleanup_free_ char *url = xasprintf("%s%s", f->endpoint, path);
    buf sink = {0};
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
    if (body)
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    if (f->ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, f->ca_file);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, fake_child_sink);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, out ? out : &sink);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 10000L);
    long status = 0;
    if (curl_easy_perform(e) == CURLE_OK)
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(e);
    buf_free(&sink);
    return status;
}
