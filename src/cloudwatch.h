/* cloudwatch.h: the CloudWatch Logs JSON 1.1 protocol: request bodies built by
 * copying already-escaped bytes, signed requests, and responses classified
 * into what the uploader must do next. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "credentials.h"
#include "http.h"
#include "loop.h"
#include "util.h"

/* PutLogEvents limits (the API reference). */
#define CW_EVENT_OVERHEAD 26
#define CW_MAX_BATCH_BYTES 1048576
#define CW_MAX_BATCH_EVENTS 10000
#define CW_MAX_SPAN_MS (24LL * 3600 * 1000)

/* What a response means for the caller. */
typedef enum cw_result {
    CW_OK = 0,
    CW_RETRY,          /* throttling, 5xx, connection reset, timeout: same request later */
    CW_AUTH,           /* expired or unknown credentials, bad signature: refresh and retry */
    CW_CLOCK,          /* signature expired / request time too skewed: the clock is off */
    CW_NOT_FOUND,      /* ResourceNotFoundException: create the group or stream, retry */
    CW_ALREADY_EXISTS, /* ResourceAlreadyExistsException (fine for Create*) */
    CW_EVENT_TOO_LARGE,/* "Log event too large: N bytes exceeds limit of L": cw_error.limit = L */
    CW_INVALID,        /* InvalidParameterException and other 400s about the request itself */
    CW_DENIED,         /* AccessDeniedException: permissions; retry slowly, log loudly */
    CW_UNEXPECTED,     /* a 2xx whose body makes no sense, or an unknown error */
} cw_result;

const char *cw_strerror(cw_result r);

typedef struct cw_error {
    cw_result kind;
    long status;
    char type[96];     /* AWS __type without its namespace prefix, e.g. "ThrottlingException" */
    char message[512]; /* the service's message, or the transport error */
    uint64_t limit;    /* for CW_EVENT_TOO_LARGE */
    bool throttled;    /* CW_RETRY because the service is over a rate quota
                        * (ThrottlingException and kin, HTTP 429): pace, do not
                        * just retry */
    char request_id[80];
} cw_error;

/* Classify a finished request. */
cw_result cw_classify(const http_response *r, cw_error *err);

/* PutLogEvents response: indices from rejectedLogEventsInfo, -1 when absent. */
typedef struct cw_put_result {
    int64_t too_new_start; /* events from this index on are too new */
    int64_t too_old_end;   /* events before this index are too old */
    int64_t expired_end;   /* events before this index are past retention */
} cw_put_result;

/* 0, or -EPROTO when the body is not the JSON object PutLogEvents returns. */
int cw_parse_put_response(const char *body, size_t len, cw_put_result *out);

/* Request bodies. Group and stream are escaped here; messages are passed
 * already JSON-escaped (as they sit in the ring) and copied as they are. */
void cw_body_put_begin(buf *b, const char *group, const char *stream);
void cw_body_put_event(buf *b, bool first, int64_t timestamp_ms, const char *esc, size_t esc_len);
void cw_body_put_end(buf *b);
void cw_body_create_group(buf *b, const char *group);
/* What CreateLogGroup can set only when a group is created. */
typedef struct cw_group_settings {
    const char *group_class; /* logGroupClass, NULL: the service's default */
    const char *kms_key_id;  /* kmsKeyId (a key ARN), NULL: none */
    char *const *tags;       /* "key=value" each */
    size_t n_tags;
} cw_group_settings;
void cw_body_create_group_with(buf *b, const char *group, const cw_group_settings *g);
void cw_body_create_stream(buf *b, const char *group, const char *stream);
/* DescribeLogGroups for one group (prefix = its name, limit 1). */
void cw_body_describe_group(buf *b, const char *group);
/* From a DescribeLogGroups answer, the group's retentionInDays (0: none, it
 * never expires). 0, -ENOENT (not in the answer), -EPROTO (not that JSON). */
int cw_parse_group_retention(const char *body, size_t len, const char *group, int *days);
void cw_body_retention(buf *b, const char *group, int days);

/* A client for one region: builds the URL (endpoint override or
 * https://logs.REGION.amazonaws.com), signs with SigV4 (service "logs") using
 * the current credentials, and sends on the shared http instance. */
typedef struct cw_client cw_client;
typedef struct cw_call cw_call;

/* Called once per successful cw_send, from the loop. body: the response body. */
typedef void (*cw_done_fn)(cw_result r, const cw_error *err, const char *body, size_t len,
                           void *userdata);

cw_client *cw_client_new(http *h, creds *c, const char *region, const char *endpoint,
                         const char *ca_file);
void cw_client_free(cw_client *cl);
int cw_client_set_region(cw_client *cl, const char *region); /* region learnt later (IMDS) */
const char *cw_client_url(const cw_client *cl);

/* Send `op` (e.g. "PutLogEvents") with a JSON body that must stay valid until
 * the callback or cancel. 0 and *out, or -ENOKEY when there are no valid
 * credentials yet (nothing sent; retry when creds_changed fires), or -EINVAL
 * without a region. */
int cw_send(cw_client *cl, const char *op, const void *body, size_t len, cw_done_fn fn,
            void *userdata, cw_call **out);
void cw_cancel(cw_call *call);
/* The cw_call handle is valid until its callback starts; cw_cancel() on it from
 * inside its own callback is a no-op. cw_client_free() cancels every call still
 * in flight without calling back, and may be called from a callback. */
