/* test_config.c: configuration loading: every key, drop-ins, defaults, and
 * every kind of error with the file, line and key it names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <dirent.h>
#include <regex.h>
#include <sys/stat.h>

#include "config.h"

typedef struct fixture {
    char dir[64];
    char *main_path;
    config *cfg;
    config_errors errs;
    int r;
} fixture;

static int setup(void **state)
{
    fixture *f = xcalloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/test_config.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->main_path = xasprintf("%s/cwlogd.conf", f->dir);
    *state = f;
    return 0;
}

static void remove_tree(const char *path)
{
    DIR *d = opendir(path);
    if (!d) {
        unlink(path);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            _cleanup_free_ char *p = xasprintf("%s/%s", path, e->d_name);
            remove_tree(p);
        }
    closedir(d);
    rmdir(path);
}

static int teardown(void **state)
{
    fixture *f = *state;
    config_free(f->cfg);
    config_errors_free(&f->errs);
    remove_tree(f->dir);
    free(f->main_path);
    free(f);
    return 0;
}

/* Writes `text` to `rel` under the fixture's directory; returns the full path. */
static char *write_file(fixture *f, const char *rel, const char *text)
{
    char *path = xasprintf("%s/%s", f->dir, rel);
    char *slash = strrchr(path, '/');
    *slash = '\0';
    mkdir(path, 0755);
    *slash = '/';
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(fwrite(text, 1, strlen(text), fp), strlen(text));
    assert_int_equal(fclose(fp), 0);
    return path;
}

static void print_errors(const fixture *f)
{
    for (size_t i = 0; i < f->errs.n; i++)
        print_message("  error: %s\n", f->errs.msgs[i]);
}

/* Loads `text` as the main file. */
static int load(fixture *f, const char *text)
{
    free(write_file(f, "cwlogd.conf", text));
    config_free(f->cfg);
    f->cfg = NULL;
    config_errors_free(&f->errs);
    f->r = config_load(f->main_path, &f->cfg, &f->errs);
    return f->r;
}

static void load_ok(fixture *f, const char *text)
{
    if (load(f, text) != 0)
        print_errors(f);
    assert_int_equal(f->r, 0);
    assert_non_null(f->cfg);
    assert_int_equal(f->errs.n, 0);
}

static void load_fails(fixture *f, const char *text)
{
    assert_int_equal(load(f, text), -EINVAL);
    assert_null(f->cfg);
    assert_true(f->errs.n > 0);
}

static bool has_error(const fixture *f, const char *needle)
{
    for (size_t i = 0; i < f->errs.n; i++)
        if (strstr(f->errs.msgs[i], needle))
            return true;
    return false;
}

/* An error for FILE:LINE: that contains every one of the given substrings. */
static void expect_error_at(const fixture *f, const char *file, unsigned line, ...)
{
    _cleanup_free_ char *prefix = xasprintf("%s:%u: ", file, line);
    for (size_t i = 0; i < f->errs.n; i++) {
        const char *m = f->errs.msgs[i];
        if (strncmp(m, prefix, strlen(prefix)) != 0)
            continue;
        bool all = true;
        va_list ap;
        va_start(ap, line);
        for (const char *s; (s = va_arg(ap, const char *));)
            all = all && strstr(m, s);
        va_end(ap);
        if (all)
            return;
    }
    print_message("no error at %s matching; got:\n", prefix);
    print_errors(f);
    fail();
}
#define EXPECT_ERROR(f, file, line, ...) expect_error_at(f, file, line, __VA_ARGS__, NULL)

static void expect_exact_error(const fixture *f, const char *msg)
{
    for (size_t i = 0; i < f->errs.n; i++)
        if (strcmp(f->errs.msgs[i], msg) == 0)
            return;
    print_message("expected error: %s\ngot:\n", msg);
    print_errors(f);
    fail();
}

static const char *minimal_source = "[source c]\n"
                                    "type = docker\n"
                                    "group = /g\n";

/* ---- valid configurations ----------------------------------------------- */

static void test_full_config_sets_every_key(void **state)
{
    fixture *f = *state;
    load_ok(f, "; every key there is\n"
               "[agent]\n"
               "state_dir = /srv/cwlogd\n"
               "log_level = debug\n"
               "control_socket = /run/x/ctl.sock\n"
               "total_buffer_limit = 64m\n"
               "rescan_interval = 30s\n"
               "checkpoint_interval = 250ms\n"
               "state_sync = full\n"
               "placeholder = none\n"
               "\n"
               "[cloudwatch]\n"
               "region = eu-west-1\n"
               "endpoint = http://127.0.0.1:4566\n"
               "imds_endpoint = http://127.0.0.1:1338\n"
               "ca_file = /etc/ssl/extra.pem\n"
               "access_key_id = AKIDEXAMPLE\n"
               "secret_access_key = wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY\n"
               "session_token = tok\n"
               "create_group = no\n"
               "retention_days = 14\n"
               "flush_interval = 1m30s\n"
               "max_event_size = 256k\n"
               "\n"
               "[source containers]\n"
               "type = docker\n"
               "path = /data/docker/containers\n"
               "group = /ecs/{ecs_cluster}/{ecs_task_family}\n"
               "stream = {ecs_container_name}/{ecs_task_id}\n"
               "mode = non-blocking\n"
               "drop = newest\n"
               "max_buffer_size = 25m\n"
               "start_at = beginning\n"
               "multiline_pattern = ^[0-9]{4}-\n"
               "multiline_timeout = 2s\n"
               "include_containers = web-*, api-*\n"
               "exclude_containers = ecs-agent\n"
               "\n"
               "[source pods]\n"
               "type = cri\n"
               "path = /var/log/pods/*/*/*.log\n"
               "group = /k8s/{label:app}\n"
               "datetime_format = %Y-%m-%d\n"
               "start_at = end\n"
               "\n"
               "[source ecs-agent]\n"
               "type = file\n"
               "path = /var/log/ecs/ecs-agent.log*\n"
               "group = /ecs/host\n"
               "stream = {instance_id}/{file_name}\n"
               "time_format = %Y-%m-%dT%H:%M:%S\n"
               "\n"
               "[source journal]\n"
               "type = journald\n"
               "path = /var/log/journal\n"
               "group = /ec2/journal\n"
               "match = _SYSTEMD_UNIT=docker.service\n"
               "match = _TRANSPORT=kernel\n"
               "units = a.service, b.service c.service\n"
               "priority = warning\n");
    const config *c = f->cfg;
    assert_string_equal(c->state_dir, "/srv/cwlogd");
    assert_int_equal(c->level, LOG_LEVEL_DEBUG);
    assert_string_equal(c->control_socket, "/run/x/ctl.sock");
    assert_int_equal(c->total_buffer_limit, 64ULL << 20);
    assert_int_equal(c->rescan_interval_ms, 30000);
    assert_int_equal(c->checkpoint_interval_ms, 250);
    assert_true(c->checkpoint_interval_set); /* accepted, and warned about */
    assert_true(c->state_sync_full);
    assert_string_equal(c->placeholder, "none");
    assert_string_equal(c->region, "eu-west-1");
    assert_string_equal(c->endpoint, "http://127.0.0.1:4566");
    assert_string_equal(c->imds_endpoint, "http://127.0.0.1:1338");
    assert_string_equal(c->ca_file, "/etc/ssl/extra.pem");
    assert_string_equal(c->access_key_id, "AKIDEXAMPLE");
    assert_string_equal(c->secret_access_key, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
    assert_string_equal(c->session_token, "tok");
    assert_false(c->create_group);
    assert_int_equal(c->retention_days, 14);
    assert_int_equal(c->flush_interval_ms, 90000);
    assert_int_equal(c->max_event_size, 256 * 1024);

    assert_int_equal(c->n_sources, 4);
    const source_config *d = &c->sources[0];
    assert_string_equal(d->name, "containers");
    assert_int_equal(d->type, SOURCE_DOCKER);
    assert_int_equal(d->n_paths, 1);
    assert_string_equal(d->paths[0], "/data/docker/containers");
    assert_string_equal(d->group, "/ecs/{ecs_cluster}/{ecs_task_family}");
    assert_string_equal(d->stream, "{ecs_container_name}/{ecs_task_id}");
    assert_int_equal(d->mode, MODE_NON_BLOCKING);
    assert_int_equal(d->drop, DROP_NEWEST);
    assert_int_equal(d->max_buffer_size, 25ULL << 20);
    assert_int_equal(d->start, START_AT_BEGINNING);
    assert_string_equal(d->multiline_pattern, "^[0-9]{4}-");
    assert_null(d->datetime_format);
    assert_int_equal(d->multiline_timeout_ms, 2000);
    assert_null(d->time_format);
    assert_int_equal(d->n_include_containers, 2);
    assert_string_equal(d->include_containers[0], "web-*");
    assert_string_equal(d->include_containers[1], "api-*");
    assert_int_equal(d->n_exclude_containers, 1);
    assert_string_equal(d->exclude_containers[0], "ecs-agent");
    assert_true(d->exclude_containers_set);
    assert_int_equal(d->priority, -1);
    assert_int_equal(d->n_matches, 0);
    assert_int_equal(d->n_units, 0);
    assert_string_equal(d->file, f->main_path);
    assert_int_equal(d->line, 25);

    const source_config *p = &c->sources[1];
    assert_string_equal(p->name, "pods");
    assert_int_equal(p->type, SOURCE_CRI);
    assert_int_equal(p->n_paths, 1);
    assert_string_equal(p->paths[0], "/var/log/pods/*/*/*.log");
    assert_string_equal(p->group, "/k8s/{label:app}");
    assert_string_equal(p->stream, "{file_name}");
    assert_string_equal(p->datetime_format, "%Y-%m-%d");
    assert_null(p->multiline_pattern);
    assert_int_equal(p->start, START_AT_END);
    assert_int_equal(p->line, 39);

    const source_config *fl = &c->sources[2];
    assert_string_equal(fl->name, "ecs-agent");
    assert_int_equal(fl->type, SOURCE_FILE);
    assert_string_equal(fl->paths[0], "/var/log/ecs/ecs-agent.log*");
    assert_string_equal(fl->stream, "{instance_id}/{file_name}");
    assert_string_equal(fl->time_format, "%Y-%m-%dT%H:%M:%S");
    assert_int_equal(fl->start, START_AT_DEFAULT);

    const source_config *j = &c->sources[3];
    assert_string_equal(j->name, "journal");
    assert_int_equal(j->type, SOURCE_JOURNALD);
    assert_int_equal(j->n_paths, 1);
    assert_string_equal(j->paths[0], "/var/log/journal");
    assert_string_equal(j->stream, "{journal:_SYSTEMD_UNIT}");
    assert_int_equal(j->n_matches, 2);
    assert_string_equal(j->matches[0], "_SYSTEMD_UNIT=docker.service");
    assert_string_equal(j->matches[1], "_TRANSPORT=kernel");
    assert_int_equal(j->n_units, 3);
    assert_string_equal(j->units[0], "a.service");
    assert_string_equal(j->units[1], "b.service");
    assert_string_equal(j->units[2], "c.service");
    assert_int_equal(j->priority, 4);
    assert_int_equal(j->line, 53);
}

static void test_absent_keys_take_documented_defaults(void **state)
{
    fixture *f = *state;
    load_ok(f, "[source d]\ntype = docker\ngroup = /g\n"
               "[source c]\ntype = cri\ngroup = /g\n"
               "[source f]\ntype = file\npath = /var/log/x.log\ngroup = /g\n"
               "[source j]\ntype = journald\ngroup = /g\n");
    const config *c = f->cfg;
    assert_string_equal(c->state_dir, "/var/lib/cwlogd");
    assert_int_equal(c->level, LOG_LEVEL_INFO);
    assert_string_equal(c->control_socket, "/run/cwlogd/control.sock");
    assert_int_equal(c->total_buffer_limit, 256ULL << 20);
    assert_int_equal(c->rescan_interval_ms, 10000);
    assert_int_equal(c->checkpoint_interval_ms, 1000);
    assert_false(c->checkpoint_interval_set);
    assert_false(c->state_sync_full);
    assert_string_equal(c->placeholder, "unknown");
    assert_string_equal(c->region, "auto");
    assert_null(c->endpoint);
    assert_null(c->imds_endpoint);
    assert_null(c->ca_file);
    assert_null(c->access_key_id);
    assert_null(c->secret_access_key);
    assert_null(c->session_token);
    assert_true(c->create_group);
    assert_int_equal(c->retention_days, 0);
    assert_int_equal(c->flush_interval_ms, 5000);
    assert_int_equal(c->max_event_size, 1048550);

    assert_int_equal(c->n_sources, 4);
    for (size_t i = 0; i < c->n_sources; i++) {
        const source_config *s = &c->sources[i];
        assert_int_equal(s->mode, MODE_BLOCKING);
        assert_int_equal(s->drop, DROP_OLDEST);
        assert_int_equal(s->max_buffer_size, 1 << 20);
        assert_int_equal(s->start, START_AT_DEFAULT);
        assert_null(s->multiline_pattern);
        assert_null(s->datetime_format);
        assert_int_equal(s->multiline_timeout_ms, 1000);
        assert_null(s->time_format);
        assert_int_equal(s->priority, -1);
        assert_int_equal(s->n_matches, 0);
        assert_int_equal(s->n_units, 0);
        assert_int_equal(s->n_include_containers, 0);
        assert_int_equal(s->n_exclude_containers, 0);
        assert_false(s->exclude_containers_set);
        assert_string_equal(s->group, "/g");
    }
    assert_string_equal(c->sources[0].stream, "{container_name}");
    assert_int_equal(c->sources[0].n_paths, 1);
    assert_string_equal(c->sources[0].paths[0], "/var/lib/docker/containers");
    assert_string_equal(c->sources[1].stream, "{file_name}");
    assert_int_equal(c->sources[1].n_paths, 1);
    assert_string_equal(c->sources[1].paths[0], "/var/log/containers/*.log");
    assert_string_equal(c->sources[2].stream, "{file_name}");
    assert_string_equal(c->sources[2].paths[0], "/var/log/x.log");
    assert_string_equal(c->sources[3].stream, "{journal:_SYSTEMD_UNIT}");
    assert_int_equal(c->sources[3].n_paths, 0);
}

static void test_path_lists_split_on_whitespace_and_commas_across_lines(void **state)
{
    fixture *f = *state;
    load_ok(f, "[source f]\n"
               "type = file\n"
               "group = /g\n"
               "path = /a/*.log, /b/x.log\t/c/y.log,,\n"
               "path = /d/z.log\n");
    const source_config *s = &f->cfg->sources[0];
    assert_int_equal(s->n_paths, 4);
    assert_string_equal(s->paths[0], "/a/*.log");
    assert_string_equal(s->paths[1], "/b/x.log");
    assert_string_equal(s->paths[2], "/c/y.log");
    assert_string_equal(s->paths[3], "/d/z.log");
}

static void test_empty_exclude_containers_still_counts_as_set(void **state)
{
    fixture *f = *state;
    load_ok(f, "[source d]\ntype = docker\ngroup = /g\nexclude_containers =\n");
    assert_true(f->cfg->sources[0].exclude_containers_set);
    assert_int_equal(f->cfg->sources[0].n_exclude_containers, 0);
}

static void test_inline_semicolon_after_space_is_a_comment_but_not_inside_a_value(void **state)
{
    fixture *f = *state;
    load_ok(f, "# hash comment line\n"
               "[cloudwatch]    ; comment after a header\n"
               "endpoint =                    ; default https://logs.REGION.amazonaws.com\n"
               "region = us-east-1 ; comment\n"
               "[source f]\n"
               "type = file\n"
               "path = /x.log\n"
               "group = /g #not-a-comment\n"
               "multiline_pattern = ^a;b\n");
    assert_null(f->cfg->endpoint);
    assert_string_equal(f->cfg->region, "us-east-1");
    assert_string_equal(f->cfg->sources[0].group, "/g #not-a-comment");
    assert_string_equal(f->cfg->sources[0].multiline_pattern, "^a;b");
}

static void test_indented_key_is_a_key_not_a_continuation(void **state)
{
    fixture *f = *state;
    load_ok(f, "[source d]\n"
               "    type = docker\n"
               "    group = /g\n"
               "    mode = non-blocking\n");
    assert_int_equal(f->cfg->sources[0].mode, MODE_NON_BLOCKING);
    assert_string_equal(f->cfg->sources[0].group, "/g");
}

static void test_byte_order_mark_and_crlf_are_accepted(void **state)
{
    fixture *f = *state;
    load_ok(f, "\xEF\xBB\xBF[source d]\r\ntype = docker\r\ngroup = /g\r\n");
    assert_string_equal(f->cfg->sources[0].group, "/g");
}

static void test_colon_separates_key_and_value_like_inih(void **state)
{
    fixture *f = *state;
    load_ok(f, "[source d]\ntype: docker\ngroup: /g\n");
    assert_int_equal(f->cfg->sources[0].type, SOURCE_DOCKER);
}

/* ---- drop-ins ------------------------------------------------------------ */

static void test_dropins_load_in_strcmp_order_and_later_value_wins(void **state)
{
    fixture *f = *state;
    /* strcmp order: "10-a" < "9-b" < "Z" < "a" (numeric or locale order differs) */
    free(write_file(f, "conf.d/9-b.conf",
                    "[agent]\nstate_dir = /from/9-b\n[source s9]\n"
                    "type = journald\ngroup = /g\n"));
    free(write_file(f, "conf.d/a.conf", "[agent]\nstate_dir = /from/a\n"));
    free(write_file(f, "conf.d/Z.conf",
                    "[agent]\nstate_dir = /from/Z\nlog_level = error\n"
                    "[source sZ]\ntype = journald\ngroup = /g\n"));
    free(write_file(f, "conf.d/10-a.conf",
                    "[agent]\nstate_dir = /from/10-a\n"
                    "[source s10]\ntype = journald\ngroup = /g\n"));
    /* not drop-ins */
    free(write_file(f, "conf.d/zz.conf.bak", "garbage\n"));
    free(write_file(f, "conf.d/.hidden.conf", "garbage\n"));
    free(write_file(f, "conf.d/README", "garbage\n"));

    load_ok(f, "[agent]\nstate_dir = /from/main\nlog_level = warning\n"
               "[source main]\ntype = docker\ngroup = /g\n");
    const config *c = f->cfg;
    assert_string_equal(c->state_dir, "/from/a");
    assert_int_equal(c->level, LOG_LEVEL_ERROR);
    assert_int_equal(c->n_sources, 4);
    assert_string_equal(c->sources[0].name, "main");
    assert_string_equal(c->sources[1].name, "s10");
    assert_string_equal(c->sources[2].name, "s9");
    assert_string_equal(c->sources[3].name, "sZ");
    _cleanup_free_ char *zpath = xasprintf("%s/conf.d/Z.conf", f->dir);
    assert_string_equal(c->sources[3].file, zpath);
    assert_int_equal(c->sources[3].line, 4);
}

static void test_missing_or_empty_conf_d_is_fine(void **state)
{
    fixture *f = *state;
    load_ok(f, minimal_source);
    _cleanup_free_ char *d = xasprintf("%s/conf.d", f->dir);
    assert_int_equal(mkdir(d, 0755), 0);
    load_ok(f, minimal_source);
    assert_int_equal(f->cfg->n_sources, 1);
}

static void test_dropin_errors_name_the_dropin_file(void **state)
{
    fixture *f = *state;
    _cleanup_free_ char *p = write_file(f, "conf.d/10-app.conf",
                                        "# app\n"
                                        "[source app]\n"
                                        "type = docker\n"
                                        "group = /g\n"
                                        "\n"
                                        "\n"
                                        "mode = fast\n");
    load_fails(f, minimal_source);
    _cleanup_free_ char *expected = xasprintf(
        "%s:7: [source app] mode: invalid value \"fast\" (expected blocking or non-blocking)", p);
    expect_exact_error(f, expected);
    assert_int_equal(f->errs.n, 1);
}

static void test_source_declared_twice_names_both_places(void **state)
{
    fixture *f = *state;
    _cleanup_free_ char *p = write_file(f, "conf.d/x.conf", "\n[source c]\ntype = cri\n");
    load_fails(f, minimal_source);
    EXPECT_ERROR(f, p, 2, "[source c]", "duplicate source", f->main_path, ":1");

    load_fails(f, "[source a]\ntype = docker\ngroup = /g\n[source a]\ntype = cri\n");
    EXPECT_ERROR(f, f->main_path, 4, "[source a]", "duplicate source");
    _cleanup_free_ char *first = xasprintf("first declared at %s:1", f->main_path);
    EXPECT_ERROR(f, f->main_path, 4, first);
}

/* ---- errors ------------------------------------------------------------ */

static void test_main_file_that_cannot_be_opened_returns_errno(void **state)
{
    fixture *f = *state;
    _cleanup_free_ char *missing = xasprintf("%s/nope.conf", f->dir);
    int r = config_load(missing, &f->cfg, &f->errs);
    assert_int_equal(r, -ENOENT);
    assert_null(f->cfg);
    assert_int_equal(f->errs.n, 1);
    _cleanup_free_ char *expected = xasprintf("%s: cannot open: %s", missing, strerror(ENOENT));
    assert_string_equal(f->errs.msgs[0], expected);
}

static void test_unknown_section_and_unknown_keys_are_errors(void **state)
{
    fixture *f = *state;
    load_fails(f, "[agent]\n"
                  "stat_dir = /x\n"
                  "region = us-east-1\n"
                  "[agnet]\n"
                  "anything = 1\n"
                  "[source d]\n"
                  "type = docker\n"
                  "group = /g\n"
                  "colour = blue\n"
                  "flush_interval = 5s\n");
    EXPECT_ERROR(f, f->main_path, 2, "[agent] stat_dir: unknown key");
    EXPECT_ERROR(f, f->main_path, 3, "[agent] region: unknown key", "[cloudwatch]");
    EXPECT_ERROR(f, f->main_path, 4, "unknown section [agnet]");
    EXPECT_ERROR(f, f->main_path, 9, "[source d] colour: unknown key");
    EXPECT_ERROR(f, f->main_path, 10, "[source d] flush_interval: unknown key", "[cloudwatch]");
    /* keys of an unknown section are not reported one by one */
    assert_false(has_error(f, "anything"));
    assert_int_equal(f->errs.n, 5);
}

static void test_key_of_another_source_type_is_an_error(void **state)
{
    fixture *f = *state;
    load_fails(f, "[source d]\n"
                  "type = docker\n"
                  "group = /g\n"
                  "match = _SYSTEMD_UNIT=x.service\n"
                  "time_format = %H\n"
                  "[source j]\n"
                  "include_containers = a\n"
                  "multiline_pattern = ^x\n"
                  "type = journald\n"
                  "group = /g\n");
    EXPECT_ERROR(f, f->main_path, 4, "[source d] match: only valid for type = journald");
    EXPECT_ERROR(f, f->main_path, 5, "[source d] time_format: only valid for type = file");
    /* checked even when `type` comes after the key */
    EXPECT_ERROR(f, f->main_path, 7, "[source j] include_containers: only valid for type = docker");
    EXPECT_ERROR(f, f->main_path, 8,
                 "[source j] multiline_pattern: only valid for type = docker, cri or file");
    assert_int_equal(f->errs.n, 4);
}

static void test_bad_values_name_line_key_and_value(void **state)
{
    fixture *f = *state;
    load_fails(f, "[agent]\n"                   /* 1 */
                  "log_level = loud\n"          /* 2 */
                  "total_buffer_limit = lots\n" /* 3 */
                  "rescan_interval = 5\n"       /* 4 */
                  "checkpoint_interval = 5x\n"  /* 5 */
                  "state_dir = relative/dir\n"  /* 6 */
                  "[cloudwatch]\n"              /* 7 */
                  "create_group = maybe\n"      /* 8 */
                  "retention_days = 31\n"       /* 9 */
                  "max_event_size = 512\n"      /* 10 */
                  "endpoint = ftp://x\n"        /* 11 */
                  "[source d]\n"                /* 12 */
                  "type = docker\n"             /* 13 */
                  "group = /g\n"                /* 14 */
                  "drop = middle\n"             /* 15 */
                  "max_buffer_size = 8k\n"      /* 16 */
                  "start_at = now\n"            /* 17 */
                  "multiline_timeout = 0\n"     /* 18 */
                  "[source j]\n"                /* 19 */
                  "type = journal\n"            /* 20 */
                  "group = /g\n"                /* 21 */
                  "[source k]\n"                /* 22 */
                  "type = journald\n"           /* 23 */
                  "group = /g\n"                /* 24 */
                  "priority = 8\n"              /* 25 */
                  "match = lowercase=x\n");     /* 26 */
    const char *p = f->main_path;
    EXPECT_ERROR(f, p, 2, "[agent] log_level: invalid value \"loud\"", "debug");
    EXPECT_ERROR(f, p, 3, "[agent] total_buffer_limit: invalid size \"lots\"");
    EXPECT_ERROR(f, p, 4, "[agent] rescan_interval: ", "\"5\"", "missing unit");
    EXPECT_ERROR(f, p, 5, "[agent] checkpoint_interval: invalid duration \"5x\"");
    EXPECT_ERROR(f, p, 6, "[agent] state_dir: ", "not an absolute path");
    EXPECT_ERROR(f, p, 8, "[cloudwatch] create_group: invalid value \"maybe\"");
    EXPECT_ERROR(f, p, 9, "[cloudwatch] retention_days: invalid value \"31\"", "30, 60");
    EXPECT_ERROR(f, p, 10, "[cloudwatch] max_event_size: ", "\"512\"", "1024 to 1048550");
    EXPECT_ERROR(f, p, 11, "[cloudwatch] endpoint: invalid URL \"ftp://x\"");
    EXPECT_ERROR(f, p, 15, "[source d] drop: invalid value \"middle\" (expected oldest or newest)");
    EXPECT_ERROR(f, p, 16, "[source d] max_buffer_size: ", "\"8k\"", "too small", "16384");
    EXPECT_ERROR(f, p, 17,
                 "[source d] start_at: invalid value \"now\" (expected end or beginning)");
    EXPECT_ERROR(f, p, 18, "[source d] multiline_timeout: ", "greater than 0");
    EXPECT_ERROR(f, p, 20, "[source j] type: invalid value \"journal\"",
                 "docker, cri, file or journald");
    EXPECT_ERROR(f, p, 25, "[source k] priority: invalid value \"8\"", "0..7");
    EXPECT_ERROR(f, p, 26, "[source k] match: invalid match \"lowercase=x\"");
    assert_int_equal(f->errs.n, 16);
}

static bool has_warning(const fixture *f, const char *needle)
{
    for (size_t i = 0; i < f->cfg->n_warnings; i++)
        if (strstr(f->cfg->warnings[i], needle))
            return true;
    return false;
}

/* Issue 14: a container's own max-buffer-size has an operator's ceiling; a
 * journald source's streams are capped. */
static void test_container_max_buffer_size_and_max_streams(void **state)
{
    fixture *f = *state;
    load_ok(f, "[source d]\ntype = docker\ngroup = /g\nmax_buffer_size = 4m\n"
               "[source e]\ntype = docker\ngroup = /g\ncontainer_max_buffer_size = 64m\n"
               "[source j]\ntype = journald\ngroup = /g\nmax_streams = 25\n");
    assert_int_equal(f->cfg->sources[0].container_max_buffer_size, 0); /* max_buffer_size */
    assert_int_equal(f->cfg->sources[0].max_streams, 1000);
    assert_int_equal(f->cfg->sources[1].container_max_buffer_size, 64 * 1024 * 1024);
    assert_int_equal(f->cfg->sources[2].max_streams, 25);
    load_fails(f, "[source d]\n"                     /* 1 */
                  "type = docker\n"                  /* 2 */
                  "group = /g\n"                     /* 3 */
                  "container_max_buffer_size = 1k\n" /* 4 */
                  "max_streams = 5\n"                /* 5 */
                  "[source j]\n"                     /* 6 */
                  "type = journald\n"                /* 7 */
                  "group = /g\n"                     /* 8 */
                  "max_streams = 0\n"                /* 9 */
                  "container_max_buffer_size = 1m\n" /* 10 */
                  "[source k]\n"                     /* 11 */
                  "type = journald\n"                /* 12 */
                  "group = /g\n"                     /* 13 */
                  "max_streams = many\n");           /* 14 */
    const char *p = f->main_path;
    EXPECT_ERROR(f, p, 4, "[source d] container_max_buffer_size: ", "\"1k\"", "too small");
    EXPECT_ERROR(f, p, 5, "[source d] max_streams: only valid for type = journald");
    EXPECT_ERROR(f, p, 9,
                 "[source j] max_streams: invalid value \"0\" (expected a number of "
                 "streams, 1 to 1000000)");
    EXPECT_ERROR(f, p, 10, "[source j] container_max_buffer_size: only valid for type = docker");
    EXPECT_ERROR(f, p, 14, "[source k] max_streams: invalid value \"many\"");
    assert_int_equal(f->errs.n, 5);
}

/* Issue 14: CONTAINER_NAME and COM_AMAZONAWS_ECS_* come from any local
 * writer; names made of them without a _SYSTEMD_UNIT / _UID match warn. */
static void test_journald_names_from_spoofable_fields_warn_without_a_writer_match(void **state)
{
    fixture *f = *state;
    load_ok(f, "[source j]\n"                          /* 1 */
               "type = journald\n"                     /* 2 */
               "group = /ecs/{ecs_task_family}\n"      /* 3 */
               "stream = {journal:CONTAINER_NAME}\n"); /* 4 */
    assert_int_equal(f->cfg->n_warnings, 2);
    _cleanup_free_ char *g = xasprintf("%s:3: [source j] group: warning: names use journal "
                                       "fields that any local process can set",
                                       f->main_path);
    _cleanup_free_ char *st = xasprintf("%s:4: [source j] stream: warning:", f->main_path);
    assert_true(has_warning(f, g));
    assert_true(has_warning(f, st));
    assert_true(has_warning(f, "add a match on _SYSTEMD_UNIT= or _UID="));
    /* A writer match, as units or match, or names that no writer chooses: none. */
    static const char *const quiet[] = {
        "[source j]\ntype = journald\ngroup = /g\nstream = {container_name}\nunits = docker\n",
        "[source j]\ntype = journald\ngroup = /g\nstream = {container_name}\n"
        "match = _UID=0\n",
        "[source j]\ntype = journald\ngroup = /g\nstream = {container_name}\n"
        "match = _SYSTEMD_UNIT=docker.service\n",
        "[source j]\ntype = journald\ngroup = /g\n", /* {journal:_SYSTEMD_UNIT} */
        "[source d]\ntype = docker\ngroup = /g/{ecs_task_family}\n",
    };
    for (size_t i = 0; i < ARRAY_SIZE(quiet); i++) {
        load_ok(f, quiet[i]);
        assert_int_equal(f->cfg->n_warnings, 0);
    }
}

static void test_value_limits_accept_their_boundaries(void **state)
{
    fixture *f = *state;
    load_ok(f, "[cloudwatch]\nmax_event_size = 1k\nretention_days = 3653\n"
               "[source d]\ntype = docker\ngroup = /g\nmax_buffer_size = 16k\n"
               "[source j]\ntype = journald\ngroup = /g\npriority = 0\n");
    assert_int_equal(f->cfg->max_event_size, 1024);
    assert_int_equal(f->cfg->retention_days, 3653);
    assert_int_equal(f->cfg->sources[0].max_buffer_size, 16384);
    assert_int_equal(f->cfg->sources[1].priority, 0);

    load_ok(f, "[cloudwatch]\nmax_event_size = 1048550\n"
               "[source j]\ntype = journald\ngroup = /g\npriority = debug\n");
    assert_int_equal(f->cfg->max_event_size, 1048550);
    assert_int_equal(f->cfg->sources[0].priority, 7);

    load_fails(f, "[cloudwatch]\nmax_event_size = 1048551\n[source j]\ntype = journald\n"
                  "group = /g\n");
    EXPECT_ERROR(f, f->main_path, 2, "max_event_size", "out of range");
    load_fails(f, "[cloudwatch]\nmax_event_size = 1023\n[source j]\ntype = journald\n"
                  "group = /g\n");
    EXPECT_ERROR(f, f->main_path, 2, "max_event_size", "out of range");
}

static void test_missing_required_keys_are_reported_at_the_header(void **state)
{
    fixture *f = *state;
    load_fails(f, "[source a]\n" /* 1 */
                  "mode = blocking\n"
                  "\n"
                  "[source b]\n" /* 4 */
                  "type = file\n"
                  "\n"
                  "[source c]\n"); /* 7: empty section */
    const char *p = f->main_path;
    EXPECT_ERROR(f, p, 1, "[source a] type: missing required key");
    EXPECT_ERROR(f, p, 1, "[source a] group: missing required key");
    EXPECT_ERROR(f, p, 4, "[source b] group: missing required key");
    EXPECT_ERROR(f, p, 4, "[source b] path: missing required key");
    EXPECT_ERROR(f, p, 7, "[source c] type: missing required key");
    EXPECT_ERROR(f, p, 7, "[source c] group: missing required key");
    assert_int_equal(f->errs.n, 6);
}

static void test_key_set_twice_in_one_section_is_an_error(void **state)
{
    fixture *f = *state;
    load_fails(f, "[agent]\n"
                  "state_dir = /a\n"
                  "state_dir = /b\n"
                  "[source d]\n"
                  "type = docker\n"
                  "group = /g\n"
                  "group = /h\n");
    EXPECT_ERROR(f, f->main_path, 3, "[agent] state_dir: set twice", "line 2");
    EXPECT_ERROR(f, f->main_path, 7, "[source d] group: set twice", "line 6");
    assert_int_equal(f->errs.n, 2);
}

static void test_same_key_in_a_second_agent_section_overrides(void **state)
{
    fixture *f = *state;
    load_ok(f, "[agent]\nstate_dir = /a\n[agent]\nstate_dir = /b\n[source d]\ntype = docker\n"
               "group = /g\n");
    assert_string_equal(f->cfg->state_dir, "/b");
}

static void test_syntax_errors_name_their_line(void **state)
{
    fixture *f = *state;
    load_fails(f, "[agent]\n"
                  "state_dir /x\n"
                  "[source d\n"
                  "= value\n"
                  "[source e] trailing\n"
                  "type = docker\n"
                  "group = /g\n"
                  "  /indented/continuation\n");
    const char *p = f->main_path;
    EXPECT_ERROR(f, p, 2, "syntax error", "key = value");
    EXPECT_ERROR(f, p, 3, "closing ']'");
    EXPECT_ERROR(f, p, 4, "missing key name");
    EXPECT_ERROR(f, p, 5, "unexpected text after section header", "trailing");
    EXPECT_ERROR(f, p, 8, "syntax error");
    assert_int_equal(f->errs.n, 5);
}

static void test_key_before_any_section_is_an_error(void **state)
{
    fixture *f = *state;
    load_fails(f, "\nstate_dir = /x\n[source d]\ntype = docker\ngroup = /g\n");
    EXPECT_ERROR(f, f->main_path, 2, "state_dir: key outside of any section");
}

static void test_state_sync_takes_normal_or_full_only(void **state)
{
    fixture *f = *state;
    load_fails(f, "[agent]\nstate_sync = always\n");
    EXPECT_ERROR(f, f->main_path, 2, "[agent] state_sync: invalid value \"always\" (expected normal "
                                     "or full)");
}

static void test_bad_source_names_are_errors(void **state)
{
    fixture *f = *state;
    load_fails(f, "[source]\ntype = docker\n[source a/b]\n[source ok.name_1-x]\ntype = docker\n"
                  "group = /g\n");
    EXPECT_ERROR(f, f->main_path, 1, "needs a name");
    EXPECT_ERROR(f, f->main_path, 3, "invalid source name \"a/b\"");
    assert_int_equal(f->errs.n, 2);
}

static void test_invalid_multiline_pattern_reports_regerror_text(void **state)
{
    fixture *f = *state;
    const char *pattern = "^(unclosed";
    regex_t re;
    int rc = regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB);
    assert_int_not_equal(rc, 0);
    char text[256];
    regerror(rc, &re, text, sizeof text);

    _cleanup_free_ char *conf = xasprintf(
        "[source f]\ntype = file\npath = /x\ngroup = /g\nmultiline_pattern = %s\n", pattern);
    load_fails(f, conf);
    EXPECT_ERROR(f, f->main_path, 5, "[source f] multiline_pattern: ", pattern, text);
}

static void test_multiline_pattern_and_datetime_format_together_are_an_error(void **state)
{
    fixture *f = *state;
    load_fails(f, "[source d]\ntype = docker\ngroup = /g\nmultiline_pattern = ^x\n"
                  "datetime_format = %Y\n");
    EXPECT_ERROR(f, f->main_path, 5, "[source d] datetime_format: ", "multiline_pattern", "line 4");
    assert_int_equal(f->errs.n, 1);
}

static void test_unsupported_time_format_directive_is_an_error(void **state)
{
    fixture *f = *state;
    load_fails(f, "[source f]\ntype = file\npath = /x\ngroup = /g\ntime_format = %Y-%Q\n");
    EXPECT_ERROR(f, f->main_path, 5, "[source f] time_format: ", "%Q", "supported");
    assert_int_equal(f->errs.n, 1);
}

static void test_config_without_sources_is_an_error(void **state)
{
    fixture *f = *state;
    load_fails(f, "[agent]\nlog_level = info\n");
    _cleanup_free_ char *prefix = xasprintf("%s: ", f->main_path);
    assert_int_equal(f->errs.n, 1);
    assert_true(strncmp(f->errs.msgs[0], prefix, strlen(prefix)) == 0);
    assert_non_null(strstr(f->errs.msgs[0], "no [source] sections"));
}

static void test_static_keys_must_come_in_pairs_and_are_never_echoed(void **state)
{
    fixture *f = *state;
    load_fails(f, "[cloudwatch]\n"
                  "secret_access_key = SuperSecretValue123\n"
                  "session_token = TokenValue456\n"
                  "secret_access_key = SuperSecretValue789\n"
                  "[source d]\ntype = docker\ngroup = /g\n");
    EXPECT_ERROR(f, f->main_path, 2, "[cloudwatch] secret_access_key: ", "access_key_id");
    EXPECT_ERROR(f, f->main_path, 3, "[cloudwatch] session_token: ", "access_key_id");
    EXPECT_ERROR(f, f->main_path, 4, "secret_access_key: set twice");
    assert_false(has_error(f, "SuperSecret"));
    assert_false(has_error(f, "TokenValue"));
}

static void test_templates_with_unknown_variables_or_bad_braces_are_errors(void **state)
{
    fixture *f = *state;
    load_fails(f, "[source a]\ntype = docker\n"
                  "group = /ecs/{cluster}/{ecs_task_family}\n" /* 3 */
                  "stream = {container_name\n"                 /* 4 */
                  "[source b]\ntype = journald\n"
                  "group = /x}\n"                           /* 7 */
                  "stream = {journal:_systemd_unit}/{}\n"); /* 8 */
    const char *p = f->main_path;
    EXPECT_ERROR(f, p, 3, "[source a] group: unknown variable {cluster}");
    EXPECT_ERROR(f, p, 4, "[source a] stream: unbalanced '{'");
    EXPECT_ERROR(f, p, 7, "[source b] group: unbalanced '}'");
    EXPECT_ERROR(f, p, 8, "[source b] stream: invalid journal field", "_systemd_unit");
    EXPECT_ERROR(f, p, 8, "[source b] stream: unknown variable {}");
    assert_int_equal(f->errs.n, 5);
}

static void test_template_fallbacks_are_variables_but_the_last_may_be_text(void **state)
{
    fixture *f = *state;
    load_ok(f, "[source a]\ntype = docker\n"
               "group = /ecs/{ecs_cluster|docker}/{ecs_task_family|container_name}\n"
               "stream = {label:com.example.stream|ecs_container_name|container_name}\n");
    load_fails(f, "[source a]\ntype = docker\n"
                  "group = /ecs/{cluster|container_name}\n" /* 3 */
                  "stream = {journal:bad|x}\n");            /* 4 */
    EXPECT_ERROR(f, f->main_path, 3, "[source a] group: unknown variable {cluster} in template",
                 "only the last");
    EXPECT_ERROR(f, f->main_path, 4, "[source a] stream: invalid journal field in {journal:bad}");
    assert_int_equal(f->errs.n, 2);
}

static void test_templates_accept_every_documented_variable(void **state)
{
    fixture *f = *state;
    load_ok(f,
            "[source a]\ntype = docker\n"
            "group = {instance_id}{hostname}{region}{source}{container_id}"
            "{container_id_short}{container_name}\n"
            "stream = {ecs_cluster}{ecs_task_id}{ecs_task_family}{ecs_container_name}"
            "{label:com.amazonaws.ecs.cluster}{file}{file_name}{journal:__REALTIME_TIMESTAMP}\n");
    assert_int_equal(f->cfg->n_sources, 1);
}

static void test_all_errors_are_collected_in_one_load(void **state)
{
    fixture *f = *state;
    _cleanup_free_ char *drop = write_file(f, "conf.d/50.conf",
                                           "[source d]\ngroup = /z\n"
                                           "bogus = 1\n");
    load_fails(f, "[agent]\n"
                  "log_level = chatty\n" /* 2 */
                  "[source d]\n"         /* 3 */
                  "type = docker\n"
                  "group = /g\n"
                  "mode = fast\n"          /* 6 */
                  "max_buffer_size = 1q\n" /* 7 */
                  "oops\n"                 /* 8 */
                  "[source e]\n"           /* 9: no type, no group */
                  "drop = oldest\n");
    const char *p = f->main_path;
    EXPECT_ERROR(f, p, 2, "log_level");
    EXPECT_ERROR(f, p, 6, "mode");
    EXPECT_ERROR(f, p, 7, "max_buffer_size");
    EXPECT_ERROR(f, p, 8, "syntax error");
    EXPECT_ERROR(f, p, 9, "type: missing");
    EXPECT_ERROR(f, p, 9, "group: missing");
    EXPECT_ERROR(f, drop, 1, "duplicate source");
    assert_int_equal(f->errs.n, 7);

    /* reported in file and line order */
    static const unsigned lines[] = {2, 6, 7, 8, 9, 9};
    for (size_t i = 0; i < ARRAY_SIZE(lines); i++) {
        _cleanup_free_ char *prefix = xasprintf("%s:%u: ", p, lines[i]);
        assert_true(strncmp(f->errs.msgs[i], prefix, strlen(prefix)) == 0);
    }
    _cleanup_free_ char *last = xasprintf("%s:1: ", drop);
    assert_true(strncmp(f->errs.msgs[6], last, strlen(last)) == 0);
}

static void test_line_too_long_is_an_error_and_later_lines_keep_their_numbers(void **state)
{
    fixture *f = *state;
    buf b = {0};
    buf_printf(&b, "[source f]\ntype = file\ngroup = /g\npath = /");
    for (int i = 0; i < 400; i++)
        buf_appendc(&b, 'a' + i % 26);
    buf_printf(&b, "\nmode = fast\n[source ");
    for (int i = 0; i < 300; i++)
        buf_appendc(&b, 'n');
    buf_printf(&b, "]\ntype = docker\n[source ok]\ntype = docker\ngroup = /g\ndrop = x\n");
    buf_appendc(&b, '\0');
    load_fails(f, b.data);
    buf_free(&b);
    const char *p = f->main_path;
    EXPECT_ERROR(f, p, 4, "[source f] path: line too long");
    EXPECT_ERROR(f, p, 5, "[source f] mode: invalid value \"fast\"");
    EXPECT_ERROR(f, p, 6, "line too long");
    EXPECT_ERROR(f, p, 11, "[source ok] drop: invalid value \"x\"");
    /* the rest of the long line is not parsed as a line of its own, and the
     * keys under the unreadable header are not charged to [source f] */
    assert_false(has_error(f, "syntax error"));
    assert_false(has_error(f, "set twice"));
    assert_int_equal(f->errs.n, 4);
}

static void test_line_of_150_characters_is_accepted(void **state)
{
    fixture *f = *state;
    char path[151];
    path[0] = '/';
    memset(path + 1, 'p', sizeof path - 2);
    path[150] = '\0';
    _cleanup_free_ char *conf = xasprintf("[source f]\ntype = file\ngroup = /g\npath = %s\n", path);
    load_ok(f, conf);
    assert_string_equal(f->cfg->sources[0].paths[0], path);
}

/* ---- value parsers ------------------------------------------------------ */

static void test_sizes_use_docker_binary_units(void **state)
{
    static const struct {
        const char *in;
        uint64_t out;
    } ok[] = {
        {"4m", 4ULL << 20},
        {"25m", 25ULL << 20},
        {"512k", 512ULL << 10},
        {"1g", 1ULL << 30},
        {"1.5m", 1572864},
        {"100", 100},
        {"10b", 10},
        {"10KB", 10240},
        {"2T", 2ULL << 40},
        {"1kib", 1024},
        {"0", 0},
        {"10 m", 10ULL << 20},
        {"0.5k", 512},
        {"1.999", 1},
        {"16777215t", 16777215ULL << 40},
    };
    for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
        uint64_t v = 0;
        if (config_parse_size(ok[i].in, &v) != 0)
            print_message("rejected: \"%s\"\n", ok[i].in);
        assert_int_equal(config_parse_size(ok[i].in, &v), 0);
        assert_int_equal(v, ok[i].out);
    }

    static const char *const bad[] = {"",    "-1k", "k",   "1.",  ".5m", "1x",  "1kk",
                                      "10 ", " 10", "1 0", "1e3", "m1",  "1bb", "1i"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        uint64_t v = 77;
        if (config_parse_size(bad[i], &v) != -EINVAL)
            print_message("accepted: \"%s\"\n", bad[i]);
        assert_int_equal(config_parse_size(bad[i], &v), -EINVAL);
        assert_int_equal(v, 77);
    }
    uint64_t v;
    assert_int_equal(config_parse_size("16777216t", &v), -ERANGE);
    assert_int_equal(config_parse_size("99999999999999999999", &v), -ERANGE);
    assert_int_equal(config_parse_size("18446744073709551615", &v), 0);
    assert_int_equal(v, UINT64_MAX);
}

static void test_durations_need_units_except_zero(void **state)
{
    static const struct {
        const char *in;
        uint64_t ms;
    } ok[] = {
        {"250ms", 250}, {"5s", 5000}, {"2m", 120000}, {"1h", 3600000},        {"1m30s", 90000},
        {"0", 0},       {"0s", 0},    {"1.5s", 1500}, {"1h2m3s4ms", 3723004},
    };
    for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
        uint64_t v = 0;
        if (config_parse_duration_ms(ok[i].in, &v) != 0)
            print_message("rejected: \"%s\"\n", ok[i].in);
        assert_int_equal(config_parse_duration_ms(ok[i].in, &v), 0);
        assert_int_equal(v, ok[i].ms);
    }
    static const char *const bad[] = {"5", "-1s", "5x", "", "1m30", "s", "1.s", "5 s", "5S", "1us"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        uint64_t v = 77;
        if (config_parse_duration_ms(bad[i], &v) != -EINVAL)
            print_message("accepted: \"%s\"\n", bad[i]);
        assert_int_equal(config_parse_duration_ms(bad[i], &v), -EINVAL);
        assert_int_equal(v, 77);
    }
    uint64_t v;
    assert_int_equal(config_parse_duration_ms("99999999999999999999h", &v), -ERANGE);
    assert_int_equal(config_parse_duration_ms("5124095576030432h", &v), -ERANGE);
}

static void test_bools_accept_the_usual_spellings(void **state)
{
    static const char *const yes[] = {"true", "yes", "on", "1", "TRUE", "Yes"};
    static const char *const no[] = {"false", "no", "off", "0", "Off"};
    for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
        bool b = false;
        assert_int_equal(config_parse_bool(yes[i], &b), 0);
        assert_true(b);
    }
    for (size_t i = 0; i < ARRAY_SIZE(no); i++) {
        bool b = true;
        assert_int_equal(config_parse_bool(no[i], &b), 0);
        assert_false(b);
    }
    static const char *const bad[] = {"", "y", "2", "truee", "enabled"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        bool b = true;
        assert_int_equal(config_parse_bool(bad[i], &b), -EINVAL);
    }
}

static void test_source_type_names_round_trip(void **state)
{
    assert_string_equal(source_type_to_string(SOURCE_DOCKER), "docker");
    assert_string_equal(source_type_to_string(SOURCE_CRI), "cri");
    assert_string_equal(source_type_to_string(SOURCE_FILE), "file");
    assert_string_equal(source_type_to_string(SOURCE_JOURNALD), "journald");
    assert_string_equal(source_type_to_string((source_type)42), "unknown");
}

static void test_free_functions_accept_null_and_empty(void **state)
{
    config_free(NULL);
    config_errors_free(NULL);
    config_errors e = {0};
    config_errors_free(&e);
    assert_int_equal(e.n, 0);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

static void test_journal_fields_follow_the_journals_rules(void **state)
{
    fixture *f = *state;
    load_fails(f, "[source j]\ntype = journald\ngroup = g\n"
                  "match = __CURSOR=x\n"
                  "match = 1ABC=y\n"
                  "match = OK_FIELD=z\n"
                  "stream = {journal:9X}\n");
    EXPECT_ERROR(f, f->main_path, 4, "match", "__CURSOR=x");
    EXPECT_ERROR(f, f->main_path, 5, "match", "1ABC=y");
    EXPECT_ERROR(f, f->main_path, 7, "stream", "journal:9X");
    assert_false(has_error(f, "OK_FIELD"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_full_config_sets_every_key),
        T(test_absent_keys_take_documented_defaults),
        T(test_path_lists_split_on_whitespace_and_commas_across_lines),
        T(test_empty_exclude_containers_still_counts_as_set),
        T(test_inline_semicolon_after_space_is_a_comment_but_not_inside_a_value),
        T(test_indented_key_is_a_key_not_a_continuation),
        T(test_byte_order_mark_and_crlf_are_accepted),
        T(test_colon_separates_key_and_value_like_inih),
        T(test_dropins_load_in_strcmp_order_and_later_value_wins),
        T(test_missing_or_empty_conf_d_is_fine),
        T(test_dropin_errors_name_the_dropin_file),
        T(test_source_declared_twice_names_both_places),
        T(test_main_file_that_cannot_be_opened_returns_errno),
        T(test_unknown_section_and_unknown_keys_are_errors),
        T(test_key_of_another_source_type_is_an_error),
        T(test_bad_values_name_line_key_and_value),
        T(test_value_limits_accept_their_boundaries),
        T(test_missing_required_keys_are_reported_at_the_header),
        T(test_key_set_twice_in_one_section_is_an_error),
        T(test_same_key_in_a_second_agent_section_overrides),
        T(test_syntax_errors_name_their_line),
        T(test_key_before_any_section_is_an_error),
        T(test_state_sync_takes_normal_or_full_only),
        T(test_bad_source_names_are_errors),
        T(test_invalid_multiline_pattern_reports_regerror_text),
        T(test_multiline_pattern_and_datetime_format_together_are_an_error),
        T(test_unsupported_time_format_directive_is_an_error),
        T(test_config_without_sources_is_an_error),
        T(test_static_keys_must_come_in_pairs_and_are_never_echoed),
        T(test_templates_with_unknown_variables_or_bad_braces_are_errors),
        T(test_template_fallbacks_are_variables_but_the_last_may_be_text),
        T(test_templates_accept_every_documented_variable),
        T(test_all_errors_are_collected_in_one_load),
        T(test_line_too_long_is_an_error_and_later_lines_keep_their_numbers),
        T(test_line_of_150_characters_is_accepted),
        cmocka_unit_test(test_sizes_use_docker_binary_units),
        cmocka_unit_test(test_durations_need_units_except_zero),
        cmocka_unit_test(test_bools_accept_the_usual_spellings),
        cmocka_unit_test(test_source_type_names_round_trip),
        cmocka_unit_test(test_free_functions_accept_null_and_empty),
        T(test_journal_fields_follow_the_journals_rules),
        T(test_container_max_buffer_size_and_max_streams),
        T(test_journald_names_from_spoofable_fields_warn_without_a_writer_match),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
