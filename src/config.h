/* config.h: the agent's configuration, read from INI files with inih. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"

typedef enum source_type {
    SOURCE_DOCKER,
    SOURCE_CRI,
    SOURCE_FILE,
    SOURCE_JOURNALD,
} source_type;

typedef enum source_mode {
    MODE_BLOCKING,
    MODE_NON_BLOCKING,
} source_mode;

typedef enum drop_policy {
    DROP_OLDEST,
    DROP_NEWEST,
} drop_policy;

typedef enum start_at {
    START_AT_DEFAULT, /* not set: the type's default (see source_config) */
    START_AT_END,
    START_AT_BEGINNING,
} start_at;

/* How cwlogd creates a log group (CreateLogGroup, then PutRetentionPolicy).
 * Set in [cloudwatch] as defaults, overridden per [source]; a group that
 * already exists is left as it is. */
typedef struct group_options {
    int retention_days; /* retention_days = one of CloudWatch's values, 0 = never expire;
                         * in a [source], -1 = not set there */
    char *group_class;  /* group_class = STANDARD | INFREQUENT_ACCESS, NULL = the service's
                         * default (STANDARD) */
    char *kms_key_id;   /* kms_key_id = a KMS key ARN, NULL = none */
    char **tags;        /* group_tags = key=value, repeatable; a source's tags are added to
                         * [cloudwatch]'s (same key: the source's value) */
    size_t n_tags;
} group_options;

typedef struct source_config {
    char *name;       /* from [source NAME] */
    source_type type; /* type = docker | cri | file | journald (required) */
    /* path = ...: docker: containers directory (default /var/lib/docker/containers);
     * cri: glob(s) (default: the .log files in /var/log/containers); file: glob(s), required;
     * journald: journal directory (default: the local journal).
     * Several globs are separated by whitespace or given on repeated path lines. */
    char **paths;
    size_t n_paths;
    char *group;  /* group = template (required) */
    char *stream; /* stream = template (default per type, see config.c) */
    source_mode mode;        /* mode = blocking (default) | non-blocking */
    drop_policy drop;        /* drop = oldest (default) | newest */
    uint64_t max_buffer_size; /* max_buffer_size = size (default 1m) */
    start_at start;          /* start_at = end | beginning */
    char *multiline_pattern; /* multiline_pattern = POSIX ERE, or NULL */
    char *datetime_format;   /* datetime_format = strftime format, or NULL */
    uint64_t multiline_timeout_ms; /* multiline_timeout = duration (default 1s) */
    char *time_format;       /* time_format = strftime format for plain files, or NULL */
    char **matches;          /* match = FIELD=value (journald; repeatable) */
    size_t n_matches;
    char **units;            /* units = a.service b.service (journald) */
    size_t n_units;
    int priority;            /* priority = 0..7 or a syslog name (journald); -1 = unset */
    char **include_containers; /* include_containers = glob list (docker) */
    size_t n_include_containers;
    char **exclude_containers; /* exclude_containers = glob list (docker) */
    size_t n_exclude_containers;
    bool exclude_containers_set; /* false: the built-in ECS agent exclusions apply */
    /* What this source sets itself (-1/NULL: not set); `groups` is what
     * applies: these over [cloudwatch]'s, resolved once everything is read. */
    group_options own_groups;
    group_options groups;
    /* container_max_buffer_size = size (docker): the ceiling of a container's
     * own max-buffer-size log option; 0 (default): max_buffer_size */
    uint64_t container_max_buffer_size;
    size_t max_streams; /* max_streams = count (journald, default 1000): streams it may name */
    char *file; /* where the section was declared, for messages */
    unsigned line;
} source_config;

typedef struct config {
    /* What is valid but unsafe, "FILE:LINE: [section] key: warning: ..."
     * (--check-config prints them). */
    char **warnings;
    size_t n_warnings;
    /* [agent] */
    char *state_dir;             /* state_dir = path (default /var/lib/cwlogd) */
    log_level level;             /* log_level = error|warning|info|debug (default info) */
    char *control_socket;        /* control_socket = path (default /run/cwlogd/control.sock) */
    uint64_t total_buffer_limit; /* total_buffer_limit = size (default 256m) */
    uint64_t rescan_interval_ms; /* rescan_interval = duration (default 10s) */
    /* checkpoint_interval = duration: obsolete (positions are committed as
     * soon as they are acknowledged); accepted so old files still load, and
     * a warning says it is ignored. */
    uint64_t checkpoint_interval_ms;
    bool checkpoint_interval_set;
    bool state_sync_full; /* state_sync = normal|full (default normal): fsync each commit */
    char *placeholder;           /* placeholder = text for a template variable with no value
                                    (default "unknown") */
    /* [cloudwatch] */
    char *region;       /* region = name | auto (default auto) */
    char *endpoint;     /* endpoint = URL (default empty: https://logs.REGION.amazonaws.com) */
    char *imds_endpoint; /* imds_endpoint = URL (default empty: http://169.254.169.254) */
    char *ca_file;      /* ca_file = path */
    char *access_key_id, *secret_access_key, *session_token; /* static keys (discouraged) */
    bool create_group;  /* create_group = true|false (default true) */
    int retention_days; /* retention_days (the default group_options' copy; see groups) */
    group_options groups; /* group_class, group_tags, kms_key_id, retention_days defaults */
    uint64_t flush_interval_ms; /* flush_interval = duration (default 5s) */
    uint64_t max_event_size;    /* max_event_size = size (default 1048550 = 1 MiB - 26) */

    source_config *sources;
    size_t n_sources;
} config;

/* Errors found while loading; each message names file, line and key. */
typedef struct config_errors {
    char **msgs;
    size_t n;
} config_errors;

/* Load `path` and then every `*.conf` in `<dirname(path)>/conf.d/` in lexical
 * order (a missing conf.d is fine). Returns 0 with *out set, or -EINVAL with
 * every error collected in *errs (never stops at the first), or another
 * negative errno when the main file cannot be read (also described in *errs). */
int config_load(const char *path, config **out, config_errors *errs);
void config_free(config *c);
void config_errors_free(config_errors *e);

/* Docker's size units: "512", "512b", "4k", "4kb", "25m", "1g" (case-insensitive,
 * binary multiples, optional fraction "1.5m"). 0 or -EINVAL/-ERANGE. */
int config_parse_size(const char *s, uint64_t *out);
/* "250ms", "5s", "2m", "1h" (also "1m30s"); a bare "0" is zero. 0 or -EINVAL/-ERANGE. */
int config_parse_duration_ms(const char *s, uint64_t *out);
/* "true|false|yes|no|on|off|1|0". 0 or -EINVAL. */
int config_parse_bool(const char *s, bool *out);

const char *source_type_to_string(source_type t);
