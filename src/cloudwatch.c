/* cloudwatch.c: CloudWatch Logs over JSON 1.1: request bodies assembled from
 * already-escaped bytes, SigV4-signed POSTs on the shared http instance, and
 * error responses sorted into what the uploader has to do next. */
#include "cloudwatch.h"

#include <assert.h>
#include <ctype.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "jsonstr.h"
#include "log.h"
#include "sigv4.h"

#define CW_SERVICE "logs"
#define CW_TARGET_PREFIX "Logs_20140328."
#define CW_CONTENT_TYPE "application/x-amz-json-1.1"
#define CW_TIMEOUT_MS 30000
#define CW_CONNECT_TIMEOUT_MS 5000

/* Host, Content-Type, X-Amz-Target, then what the signer adds. */
#define CW_MAX_HEADERS (3 + SIGV4_MAX_ADDED_HEADERS)

struct cw_call {
    cw_client *client;
    http_call *http;
    cw_call *prev, *next; /* the client's calls in flight */
    cw_done_fn fn;
    void *userdata;
    bool in_callback;
    /* "Name: value" lines: the storage and the pointers into it handed to http. */
    buf header_text;
    size_t header_off[CW_MAX_HEADERS];
    const char *headers[CW_MAX_HEADERS];
    size_t n_headers;
};

struct cw_client {
    http *http;
    creds *creds;
    char *region; /* NULL until known */
    char *ca_file;
    char *endpoint; /* the override as configured, or NULL */
    /* From the endpoint (override or regional), as the request goes out. */
    char *url;
    char *host_header; /* Host value, as curl would put it */
    char *path;        /* what the signer sees */
    sigv4_signer *signer;
    /* Which credentials the signer holds: a digest rather than a copy, so the
     * secret and token live in one place only. */
    unsigned char creds_digest[32];
    bool have_creds;
    sigv4_result sig;
    cw_call *calls;
};

const char *cw_strerror(cw_result r)
{
    switch (r) {
    case CW_OK:
        return "success";
    case CW_RETRY:
        return "temporary failure, retry later";
    case CW_AUTH:
        return "credentials refused";
    case CW_CLOCK:
        return "request time too far from the service's clock";
    case CW_NOT_FOUND:
        return "log group or stream does not exist";
    case CW_ALREADY_EXISTS:
        return "resource already exists";
    case CW_EVENT_TOO_LARGE:
        return "log event too large";
    case CW_INVALID:
        return "request refused as invalid";
    case CW_DENIED:
        return "access denied";
    case CW_UNEXPECTED:
        return "unexpected response";
    }
    return "unknown result";
}

/* ---- request bodies ------------------------------------------------------------------------- */

/* Decimal digits of v at the end of out[21]; returns where they start. */
static char *format_i64(int64_t v, char out[21])
{
    char *p = out + 21;
    /* Work on the magnitude as unsigned so INT64_MIN needs no special case. */
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    return p;
}

static void append_lit(buf *b, const char *s)
{
    buf_append(b, s, strlen(s));
}

static void append_i64(buf *b, int64_t v)
{
    char tmp[21];
    char *p = format_i64(v, tmp);
    buf_append(b, p, (size_t)(tmp + sizeof(tmp) - p));
}

static void append_string(buf *b, const char *s)
{
    size_t utf8_len;
    buf_appendc(b, '"');
    jsonstr_escape(b, s, strlen(s), &utf8_len);
    buf_appendc(b, '"');
}

static void append_group(buf *b, const char *group)
{
    append_lit(b, "{\"logGroupName\":");
    append_string(b, group);
}

void cw_body_put_begin(buf *b, const char *group, const char *stream)
{
    assert(b && group && stream);
    append_group(b, group);
    append_lit(b, ",\"logStreamName\":");
    append_string(b, stream);
    append_lit(b, ",\"logEvents\":[");
}

void cw_body_put_event(buf *b, bool first, int64_t timestamp_ms, const char *esc, size_t esc_len)
{
    static const char ts_key[] = "{\"timestamp\":";
    static const char msg_key[] = ",\"message\":\"";
    char tmp[21];

    assert(b && (esc || esc_len == 0));
    char *digits = format_i64(timestamp_ms, tmp);
    size_t n_digits = (size_t)(tmp + sizeof(tmp) - digits);

    /* One reservation, then plain copies: this runs once per event. */
    buf_reserve(b, 1 + sizeof(ts_key) - 1 + n_digits + sizeof(msg_key) - 1 + esc_len + 2);
    char *p = b->data + b->len;
    if (!first)
        *p++ = ',';
    memcpy(p, ts_key, sizeof(ts_key) - 1);
    p += sizeof(ts_key) - 1;
    memcpy(p, digits, n_digits);
    p += n_digits;
    memcpy(p, msg_key, sizeof(msg_key) - 1);
    p += sizeof(msg_key) - 1;
    if (esc_len) {
        memcpy(p, esc, esc_len);
        p += esc_len;
    }
    *p++ = '"';
    *p++ = '}';
    b->len = (size_t)(p - b->data);
}

void cw_body_put_end(buf *b)
{
    assert(b);
    append_lit(b, "]}");
}

void cw_body_create_group(buf *b, const char *group)
{
    cw_body_create_group_with(b, group, &(cw_group_settings){0});
}

void cw_body_create_group_with(buf *b, const char *group, const cw_group_settings *g)
{
    assert(b && group && g);
    append_group(b, group);
    if (g->group_class) {
        append_lit(b, ",\"logGroupClass\":");
        append_string(b, g->group_class);
    }
    if (g->kms_key_id) {
        append_lit(b, ",\"kmsKeyId\":");
        append_string(b, g->kms_key_id);
    }
    if (g->n_tags) {
        append_lit(b, ",\"tags\":{");
        for (size_t i = 0; i < g->n_tags; i++) {
            const char *eq = strchr(g->tags[i], '=');
            assert(eq);
            _cleanup_free_ char *key = xstrndup(g->tags[i], (size_t)(eq - g->tags[i]));
            if (i)
                buf_appendc(b, ',');
            append_string(b, key);
            buf_appendc(b, ':');
            append_string(b, eq + 1);
        }
        buf_appendc(b, '}');
    }
    buf_appendc(b, '}');
}

void cw_body_describe_group(buf *b, const char *group)
{
    assert(b && group);
    /* Names come in order: the group itself is the first with its name as prefix. */
    append_lit(b, "{\"logGroupNamePrefix\":");
    append_string(b, group);
    append_lit(b, ",\"limit\":1}");
}

void cw_body_create_stream(buf *b, const char *group, const char *stream)
{
    assert(b && group && stream);
    append_group(b, group);
    append_lit(b, ",\"logStreamName\":");
    append_string(b, stream);
    buf_appendc(b, '}');
}

void cw_body_retention(buf *b, const char *group, int days)
{
    assert(b && group);
    append_group(b, group);
    append_lit(b, ",\"retentionInDays\":");
    append_i64(b, days);
    buf_appendc(b, '}');
}

/* ---- responses ------------------------------------------------------------------------------ */

static void copy_text(char *dst, size_t size, const char *src, size_t len)
{
    if (size == 0)
        return;
    len = MIN(len, size - 1);
    memcpy(dst, src, len);
    dst[len] = '\0';
}

/* The first line only: a signature mismatch goes on with the canonical
 * request the service expected, session token included, and the message ends
 * up in log lines. */
static void set_message(cw_error *err, const char *msg, size_t len)
{
    size_t n = 0;
    while (n < len && msg[n] != '\n' && msg[n] != '\r' && msg[n] != '\0')
        n++;
    while (n && isspace((unsigned char)msg[n - 1]))
        n--;
    copy_text(err->message, sizeof(err->message), msg, n);
    for (char *p = err->message; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
}

/* "com.amazonaws.logs#ThrottlingException:http://internal.amazon.com/..." ->
 * "ThrottlingException". */
static void set_type(cw_error *err, const char *raw)
{
    size_t n = strcspn(raw, ":");
    const char *start = raw;
    for (size_t i = 0; i < n; i++)
        if (raw[i] == '#')
            start = raw + i + 1;
    n -= (size_t)(start - raw);
    while (n && isspace((unsigned char)*start)) {
        start++;
        n--;
    }
    while (n && isspace((unsigned char)start[n - 1]))
        n--;
    copy_text(err->type, sizeof(err->type), start, n);
}

static bool type_is(const char *type, const char *const *names)
{
    for (; *names; names++)
        if (strcmp(type, *names) == 0)
            return true;
    return false;
}

static bool contains_nocase(const char *haystack, const char *needle)
{
    return strcasestr(haystack, needle) != NULL;
}

static bool parse_u64(const char **pp, uint64_t *out)
{
    const char *p = *pp;
    uint64_t v = 0;
    if (*p < '0' || *p > '9')
        return false;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    *pp = p;
    *out = v;
    return true;
}

static const char *skip_spaces(const char *p)
{
    while (*p == ' ')
        p++;
    return p;
}

/* "Log event too large: N bytes exceeds limit of L" -> L. */
static bool parse_too_large(const char *msg, uint64_t *limit)
{
    static const char head[] = "Log event too large:";
    static const char mid[] = "bytes exceeds limit of";
    const char *p = strstr(msg, head);
    uint64_t n;
    if (!p)
        return false;
    p = skip_spaces(p + sizeof(head) - 1);
    if (!parse_u64(&p, &n))
        return false;
    p = skip_spaces(p);
    if (strncmp(p, mid, sizeof(mid) - 1) != 0)
        return false;
    p = skip_spaces(p + sizeof(mid) - 1);
    return parse_u64(&p, limit) && *limit > 0;
}

/* The time in the request is off from the service's: retrying with a new
 * signature only helps once the clock is right. */
static bool is_clock_error(const char *type, const char *msg)
{
    static const char *const types[] = {
        "RequestTimeTooSkewed",
        "RequestExpired",
        "RequestInTheFuture",
        NULL,
    };
    return type_is(type, types) || contains_nocase(msg, "Signature expired") ||
           contains_nocase(msg, "Signature not yet current") ||
           contains_nocase(msg, "RequestTimeTooSkewed") || contains_nocase(msg, "too skewed");
}

static cw_result classify_type(const char *type, const char *msg, cw_error *err)
{
    static const char *const throttled[] = {
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestThrottled",
        "RequestThrottledException",
        "RequestLimitExceeded",
        NULL,
    };
    static const char *const retry[] = {
        "LimitExceededException",
        "ServiceUnavailableException",
        "ServiceUnavailable",
        "OperationAbortedException",
        "InternalFailure",
        "InternalServerError",
        "ServiceException",
        NULL,
    };
    static const char *const auth[] = {
        "ExpiredTokenException",
        "ExpiredToken",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "IncompleteSignatureException",
        "MissingAuthenticationToken",
        "MissingAuthenticationTokenException",
        "InvalidClientTokenId",
        "InvalidAccessKeyId",
        "InvalidToken",
        NULL,
    };
    static const char *const invalid[] = {
        "InvalidParameterException",
        "SerializationException",
        "DataAlreadyAcceptedException",
        "InvalidSequenceTokenException",
        "ValidationException",
        "InvalidOperationException",
        "UnknownOperationException",
        "InvalidAction",
        "MalformedQueryString",
        "MissingParameter",
        "InvalidParameterValue",
        "InvalidParameterCombination",
        NULL,
    };
    static const char *const denied[] = {
        "AccessDeniedException",
        "AccessDenied",
        NULL,
    };

    if (is_clock_error(type, msg))
        return CW_CLOCK;
    if (type_is(type, throttled)) {
        err->throttled = true;
        return CW_RETRY;
    }
    if (type_is(type, retry))
        return CW_RETRY;
    if (type_is(type, auth))
        return CW_AUTH;
    if (strcmp(type, "ResourceNotFoundException") == 0)
        return CW_NOT_FOUND;
    if (strcmp(type, "ResourceAlreadyExistsException") == 0)
        return CW_ALREADY_EXISTS;
    if (strcmp(type, "InvalidParameterException") == 0 && parse_too_large(msg, &err->limit))
        return CW_EVENT_TOO_LARGE;
    if (type_is(type, invalid))
        return CW_INVALID;
    if (type_is(type, denied))
        return CW_DENIED;
    return CW_UNEXPECTED;
}

/* __type/code and message/Message from an AWS JSON error body. */
static void parse_error_body(const http_response *r, cw_error *err)
{
    if (!r->body || r->body_len == 0)
        return;
    json_error_t jerr;
    json_t *root = json_loadb(r->body, r->body_len, 0, &jerr);
    if (!json_is_object(root)) {
        json_decref(root);
        return;
    }
    if (!err->type[0]) {
        const char *t = json_string_value(json_object_get(root, "__type"));
        if (!t)
            t = json_string_value(json_object_get(root, "code"));
        if (t)
            set_type(err, t);
    }
    json_t *m = json_object_get(root, "message");
    if (!json_is_string(m))
        m = json_object_get(root, "Message");
    if (json_is_string(m))
        set_message(err, json_string_value(m), json_string_length(m));
    json_decref(root);
}

cw_result cw_classify(const http_response *r, cw_error *err)
{
    cw_error scratch;
    assert(r);
    if (!err)
        err = &scratch;
    *err = (cw_error){.status = r->status};

    if (r->transport_error || r->status == 0) {
        /* Resets, timeouts, refused connections, TLS trouble: none of them says
         * anything about the request itself. */
        if (r->error && *r->error)
            set_message(err, r->error, strlen(r->error));
        else if (r->transport_error)
            snprintf(err->message, sizeof(err->message), "transport error %d", r->transport_error);
        else
            set_message(err, "no response", strlen("no response"));
        return err->kind = CW_RETRY;
    }

    const char *rid = http_response_header(r, "x-amzn-RequestId");
    if (!rid)
        rid = http_response_header(r, "x-amz-request-id");
    if (rid)
        copy_text(err->request_id, sizeof(err->request_id), rid, strlen(rid));

    if (r->status >= 200 && r->status < 300)
        return err->kind = CW_OK;

    const char *type_header = http_response_header(r, "x-amzn-ErrorType");
    if (type_header && *type_header)
        set_type(err, type_header);
    parse_error_body(r, err);

    if (r->status >= 500)
        return err->kind = CW_RETRY;

    cw_result k = err->type[0] ? classify_type(err->type, err->message, err) : CW_UNEXPECTED;
    /* Rate limits and request timeouts from whatever answered (a proxy, a load
     * balancer) pass with time even when the body is not AWS's. */
    if (k == CW_UNEXPECTED && (r->status == 429 || r->status == 408))
        k = CW_RETRY;
    if (r->status == 429 && k == CW_RETRY)
        err->throttled = true;
    if (k == CW_UNEXPECTED && !err->message[0])
        snprintf(err->message, sizeof(err->message), "HTTP %ld without a known AWS error",
                 r->status);
    if (k != CW_EVENT_TOO_LARGE)
        err->limit = 0;
    return err->kind = k;
}

/* An index from rejectedLogEventsInfo: absent or null -> -1. */
static int get_index(json_t *info, const char *key, int64_t *out)
{
    json_t *v = json_object_get(info, key);
    *out = -1;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -EPROTO;
    *out = json_integer_value(v);
    return 0;
}

int cw_parse_group_retention(const char *body, size_t len, const char *group, int *days)
{
    assert(group && days);
    json_t *root = body && len ? json_loadb(body, len, 0, NULL) : NULL;
    json_t *groups = json_object_get(root, "logGroups");
    int r = json_is_array(groups) ? -ENOENT : -EPROTO;
    size_t i;
    json_t *g;
    json_array_foreach(groups, i, g) {
        const char *name = json_string_value(json_object_get(g, "logGroupName"));
        if (!name || strcmp(name, group) != 0)
            continue;
        json_t *ret = json_object_get(g, "retentionInDays");
        *days = json_is_integer(ret) ? (int)json_integer_value(ret) : 0;
        r = 0;
        break;
    }
    json_decref(root);
    return r;
}

int cw_parse_put_response(const char *body, size_t len, cw_put_result *out)
{
    assert(out);
    *out = (cw_put_result){.too_new_start = -1, .too_old_end = -1, .expired_end = -1};
    if (!body || len == 0)
        return -EPROTO;

    json_error_t jerr;
    json_t *root = json_loadb(body, len, 0, &jerr);
    if (!json_is_object(root)) {
        json_decref(root);
        return -EPROTO;
    }
    int r = 0;
    json_t *info = json_object_get(root, "rejectedLogEventsInfo");
    if (info && !json_is_null(info)) {
        if (!json_is_object(info))
            r = -EPROTO;
        if (r >= 0)
            r = get_index(info, "tooNewLogEventStartIndex", &out->too_new_start);
        if (r >= 0)
            r = get_index(info, "tooOldLogEventEndIndex", &out->too_old_end);
        if (r >= 0)
            r = get_index(info, "expiredLogEventEndIndex", &out->expired_end);
    }
    json_decref(root);
    if (r < 0)
        *out = (cw_put_result){.too_new_start = -1, .too_old_end = -1, .expired_end = -1};
    return r;
}

/* ---- the client ----------------------------------------------------------------------------- */

static bool region_valid(const char *region)
{
    if (!region || !*region || strlen(region) > 63)
        return false;
    for (const char *p = region; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
            return false;
    return true;
}

static void curl_urlp(CURLU **u)
{
    if (*u)
        curl_url_cleanup(*u);
}

static void curl_freep(char **p)
{
    if (*p)
        curl_free(*p);
}

/* Split a URL into what goes to curl, the Host header curl would send (the
 * port only when it is not the scheme's default) and the path to sign. */
static int parse_endpoint(const char *endpoint, char **url, char **host_header, char **path)
{
    _cleanup_(curl_urlp) CURLU *u = curl_url();
    _cleanup_(curl_freep) char *scheme = NULL, *host = NULL, *port = NULL, *p = NULL;
    _cleanup_(curl_freep) char *user = NULL, *query = NULL, *fragment = NULL;

    if (!u)
        return -ENOMEM;
    if (curl_url_set(u, CURLUPART_URL, endpoint, CURLU_DEFAULT_SCHEME) != CURLUE_OK)
        return -EINVAL;
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !*host)
        return -EINVAL;
    if (strcasecmp(scheme, "https") != 0 && strcasecmp(scheme, "http") != 0)
        return -EINVAL;
    /* Credentials, a query or a fragment in the endpoint would change what is
     * signed or leak into logs; CloudWatch takes none of them. */
    if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK ||
        curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK ||
        curl_url_get(u, CURLUPART_FRAGMENT, &fragment, 0) == CURLUE_OK)
        return -EINVAL;
    CURLUcode pc = curl_url_get(u, CURLUPART_PORT, &port, CURLU_NO_DEFAULT_PORT);
    if (pc != CURLUE_OK && pc != CURLUE_NO_PORT)
        return -EINVAL;
    if (curl_url_get(u, CURLUPART_PATH, &p, 0) != CURLUE_OK)
        return -EINVAL;

    const char *sign_path = (p && *p) ? p : "/";
    *host_header = port ? xasprintf("%s:%s", host, port) : xstrdup(host);
    *url = xasprintf("%s://%s%s", scheme, *host_header, sign_path);
    *path = xstrdup(sign_path);
    return 0;
}

/* Rebuild the URL, Host and signer after the endpoint or the region changed. */
static int client_configure(cw_client *cl, const char *region)
{
    _cleanup_free_ char *url = NULL, *host = NULL, *path = NULL, *regional = NULL;
    const char *endpoint = cl->endpoint;

    if (region && !region_valid(region))
        return log_error_errno(-EINVAL, "cloudwatch: invalid region \"%s\"", region);
    if (!endpoint) {
        if (!region) {
            /* Nothing to build until the region is known. */
            free(cl->url);
            free(cl->host_header);
            free(cl->path);
            cl->url = cl->host_header = cl->path = NULL;
            return 0;
        }
        /* China's partition lives under its own top-level domain. */
        regional = xasprintf("https://logs.%s.amazonaws.com%s", region,
                             strncmp(region, "cn-", 3) == 0 ? ".cn" : "");
        endpoint = regional;
    }
    int r = parse_endpoint(endpoint, &url, &host, &path);
    if (r < 0 && strchr(endpoint, '@'))
        return log_error_errno(r, "cloudwatch: invalid endpoint: user information is not "
                                  "allowed in the URL");
    if (r < 0)
        return log_error_errno(r, "cloudwatch: invalid endpoint \"%s\"", endpoint);

    if (region && (!cl->region || strcmp(region, cl->region) != 0)) {
        sigv4_free(cl->signer);
        cl->signer = sigv4_new(region, CW_SERVICE);
        cl->have_creds = false;
        free(cl->region);
        cl->region = xstrdup(region);
    }
    free(cl->url);
    free(cl->host_header);
    free(cl->path);
    cl->url = TAKE_PTR(url);
    cl->host_header = TAKE_PTR(host);
    cl->path = TAKE_PTR(path);
    return 0;
}

cw_client *cw_client_new(http *h, creds *c, const char *region, const char *endpoint,
                         const char *ca_file)
{
    assert(h);
    cw_client *cl = xmalloc(sizeof(*cl));
    *cl = (cw_client){
        .http = h,
        .creds = c,
        .endpoint = endpoint && *endpoint ? xstrdup(endpoint) : NULL,
        .ca_file = ca_file && *ca_file ? xstrdup(ca_file) : NULL,
    };
    if (client_configure(cl, region && *region ? region : NULL) < 0) {
        cw_client_free(cl);
        return NULL;
    }
    return cl;
}

static void call_free(cw_call *call)
{
    /* The lines hold the session token. */
    if (call->header_text.data)
        OPENSSL_cleanse(call->header_text.data, call->header_text.len);
    buf_free(&call->header_text);
    free(call);
}

static void call_unlink(cw_call *call)
{
    if (!call->client)
        return;
    if (call->prev)
        call->prev->next = call->next;
    else
        call->client->calls = call->next;
    if (call->next)
        call->next->prev = call->prev;
    call->prev = call->next = NULL;
    call->client = NULL;
}

void cw_client_free(cw_client *cl)
{
    if (!cl)
        return;
    while (cl->calls)
        cw_cancel(cl->calls);
    sigv4_result_done(&cl->sig);
    sigv4_free(cl->signer);
    OPENSSL_cleanse(cl->creds_digest, sizeof(cl->creds_digest));
    free(cl->region);
    free(cl->ca_file);
    free(cl->endpoint);
    free(cl->url);
    free(cl->host_header);
    free(cl->path);
    free(cl);
}

int cw_client_set_region(cw_client *cl, const char *region)
{
    assert(cl);
    if (!region || !*region)
        return -EINVAL;
    return client_configure(cl, region);
}

const char *cw_client_url(const cw_client *cl)
{
    assert(cl);
    return cl->url;
}

static void digest_add(EVP_MD_CTX *ctx, const char *s)
{
    /* A NUL separates fields; a missing one is marked apart from an empty one. */
    if (s)
        EVP_DigestUpdate(ctx, s, strlen(s) + 1);
    else
        EVP_DigestUpdate(ctx, "\x01", 1);
}

static int creds_digest(const credentials *c, unsigned char out[32])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned n = 0;
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    if (ok) {
        digest_add(ctx, c->access_key_id);
        digest_add(ctx, c->secret_access_key);
        digest_add(ctx, c->session_token);
        ok = EVP_DigestFinal_ex(ctx, out, &n) && n == 32;
    }
    EVP_MD_CTX_free(ctx);
    return ok ? 0 : -EIO;
}

/* Hand the signer the current credentials when they are not the ones it has. */
static int client_update_creds(cw_client *cl)
{
    const credentials *c = cl->creds ? creds_current(cl->creds) : NULL;
    unsigned char digest[32];

    if (!c || !c->access_key_id || !c->secret_access_key)
        return -ENOKEY;
    int r = creds_digest(c, digest);
    if (r < 0)
        return r;
    if (cl->have_creds && CRYPTO_memcmp(digest, cl->creds_digest, sizeof(digest)) == 0)
        return 0;
    r = sigv4_set_credentials(cl->signer, c->access_key_id, c->secret_access_key, c->session_token);
    if (r < 0) {
        cl->have_creds = false;
        return log_error_errno(r, "cloudwatch: credentials from %s cannot be used for signing",
                               c->provider ? c->provider : "unknown provider");
    }
    memcpy(cl->creds_digest, digest, sizeof(digest));
    OPENSSL_cleanse(digest, sizeof(digest));
    cl->have_creds = true;
    return 0;
}

static void call_add_header(cw_call *call, const char *name, const char *value)
{
    assert(call->n_headers < CW_MAX_HEADERS);
    /* Offsets now, pointers once the text stops moving. */
    call->header_off[call->n_headers++] = call->header_text.len;
    append_lit(&call->header_text, name);
    append_lit(&call->header_text, ": ");
    append_lit(&call->header_text, value);
    buf_appendc(&call->header_text, '\0');
}

static void on_http_done(const http_response *resp, void *userdata)
{
    cw_call *call = userdata;
    cw_error err;
    cw_result r = cw_classify(resp, &err);

    /* From here on the call is no longer the client's: freeing the client or
     * cancelling from inside the callback leaves it alone. */
    call_unlink(call);
    call->http = NULL;
    call->in_callback = true;
    call->fn(r, &err, resp->body ? resp->body : "", resp->body ? resp->body_len : 0,
             call->userdata);
    call_free(call);
}

int cw_send(cw_client *cl, const char *op, const void *body, size_t len, cw_done_fn fn,
            void *userdata, cw_call **out)
{
    assert(cl && op && *op && fn && out);
    assert(body || len == 0);
    *out = NULL;

    if (!cl->signer || !cl->url)
        return -EINVAL;
    int r = client_update_creds(cl);
    if (r < 0)
        return r;

    _cleanup_free_ char *target = xasprintf(CW_TARGET_PREFIX "%s", op);
    const sigv4_header to_sign[] = {
        {"Host", cl->host_header},
        {"Content-Type", CW_CONTENT_TYPE},
        {"X-Amz-Target", target},
    };
    sigv4_request req = {
        .method = "POST",
        .path = cl->path,
        .headers = to_sign,
        .n_headers = ARRAY_SIZE(to_sign),
        .payload = body,
        .payload_len = len,
        .flags = SIGV4_NORMALIZE_PATH,
    };
    r = sigv4_sign(cl->signer, &req, time(NULL), &cl->sig);
    if (r < 0)
        return log_error_errno(r, "cloudwatch: cannot sign %s: %m", op);

    cw_call *call = xmalloc(sizeof(*call));
    *call = (cw_call){.fn = fn, .userdata = userdata};
    for (size_t i = 0; i < ARRAY_SIZE(to_sign); i++)
        call_add_header(call, to_sign[i].name, to_sign[i].value);
    for (size_t i = 0; i < cl->sig.n_headers; i++)
        call_add_header(call, cl->sig.headers[i].name, cl->sig.headers[i].value);
    for (size_t i = 0; i < call->n_headers; i++)
        call->headers[i] = call->header_text.data + call->header_off[i];

    http_request hreq = {
        .method = "POST",
        .url = cl->url,
        .headers = call->headers,
        .n_headers = call->n_headers,
        .body = body,
        .body_len = len,
        .timeout_ms = CW_TIMEOUT_MS,
        .connect_timeout_ms = CW_CONNECT_TIMEOUT_MS,
        .ca_file = cl->ca_file,
    };
    call->http = http_send(cl->http, &hreq, on_http_done, call);
    if (!call->http) {
        call_free(call);
        return -EIO;
    }

    call->client = cl;
    call->next = cl->calls;
    if (cl->calls)
        cl->calls->prev = call;
    cl->calls = call;
    *out = call;
    return 0;
}

void cw_cancel(cw_call *call)
{
    if (!call || call->in_callback)
        return;
    if (call->http)
        http_cancel(call->http);
    call_unlink(call);
    call_free(call);
}
