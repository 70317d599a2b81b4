/* credentials.h: where the AWS credentials come from, first that answers:
 * static keys in the config, the environment, ECS container credentials, the
 * instance role over IMDSv2. Refreshed before they expire; secrets never
 * reach a log line. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "http.h"
#include "imds.h"
#include "loop.h"

typedef struct credentials {
    char *access_key_id, *secret_access_key, *session_token; /* token may be NULL */
    int64_t expiration_ms; /* realtime ms since the epoch; 0 = does not expire */
    const char *provider;  /* "config", "environment", "ecs", "imds" */
} credentials;

/* Wipe and free the strings of k. */
void credentials_clear(credentials *k);

/* Parse the JSON that ECS and IMDS answer with. 0 and *k filled (the caller
 * clears it), or -EPROTO with *why naming the problem (never a value). */
int creds_parse_json(const char *body, size_t len, const char *provider, credentials *k,
                     const char **why);

typedef struct creds creds;

/* Called (from the loop) whenever new credentials became current. */
typedef void (*creds_changed_fn)(void *userdata);

creds *creds_new(loop *l, http *h, imds *m, const config *cfg, creds_changed_fn fn,
                 void *userdata);
void creds_free(creds *c);

/* Begin resolving: immediate for config/environment keys, asynchronous for ECS
 * and IMDS (with retries and capped exponential backoff while they fail). */
void creds_start(creds *c);

/* Credentials valid now (not expired), or NULL while none are. */
const credentials *creds_current(const creds *c);

/* The service refused the current credentials (expired token, unknown key):
 * fetch new ones now (at most once per few seconds); the current ones stay
 * in use until replaced or expired. */
void creds_invalidate(creds *c);
