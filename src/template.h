/* template.h: expansion of group/stream templates ({container_name}, {label:KEY}, ...)
 * into names CloudWatch accepts. */
#pragma once

#include <stdbool.h>

typedef enum template_kind {
    TEMPLATE_GROUP,  /* 1-512 of [A-Za-z0-9_./#-] */
    TEMPLATE_STREAM, /* 1-512 bytes, no ':' or '*' */
} template_kind;

typedef struct template_vars {
    const char *instance_id, *hostname, *region, *source;
    const char *container_id, *container_name;
    const char *ecs_cluster, *ecs_task_arn, *ecs_task_family, *ecs_container_name;
    const char *file;
    /* {label:KEY} and {journal:FIELD}: kind is "label" or "journal"; NULL = no value. */
    const char *(*lookup)(void *userdata, const char *kind, const char *key);
    void *userdata;
    const char *placeholder; /* for variables without a value; default "unknown" */
} template_vars;

/* Expand and sanitise. A variable may list fallbacks: {ecs_task_family|container_name}
 * takes the first that has a value; a last alternative that is not a variable
 * is literal text ({label:team|shared}). Characters CloudWatch does not allow become '_', the
 * result is cut to 512 bytes (on a UTF-8 boundary), and an empty result
 * becomes the placeholder. Never fails; returns a malloc'd string. */
char *template_expand(const char *tmpl, const template_vars *v, template_kind kind);

/* Is `name` a variable (without braces) that template_expand knows? */
bool template_known_variable(const char *name);
