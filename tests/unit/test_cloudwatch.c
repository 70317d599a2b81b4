/* test_cloudwatch.c: request bodies decoded back with jansson, the error classification table,
 * PutLogEvents response parsing, endpoint handling, and whole requests against the fake
 * CloudWatch Logs endpoint (tests/fake_aws.py), which checks every signature itself. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <curl/curl.h>
#include <jansson.h>

#include "cloudwatch.h"
#include "config.h"
#include "credentials.h"
#include "http.h"
#include "imds.h"
#include "loop.h"
#include "util.h"

#include "fake_aws_child.h"

/* ---- helpers ---------------------------------------------------------------------------- */

static json_t *decode(const buf *b)
{
    json_error_t jerr;
    json_t *root = json_loadb(b->data, b->len, 0, &jerr);
    if (!root)
        fail_msg("body is not JSON (%s at %d): %.*s", jerr.text, jerr.position, (int)b->len,
                 b->data);
    return root;
}

static const char *str_member(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    assert_true(json_is_string(v));
    return json_string_value(v);
}

static bool contains(const buf *b, const char *needle)
{
    return memmem(b->data, b->len, needle, strlen(needle)) != NULL;
}

/* ---- bodies ----------------------------------------------------------------------------- */

/* Names that need escaping, and one byte that is not UTF-8 at all. */
static const char TRICKY_GROUP[] = "/ecs/\"quoted\"\\back/slash/\xc3\xa9t\xc3\xa9";
static const char TRICKY_STREAM[] = "tab\there\x01\x1f/new\nline/\xe6\x97\xa5\xe6\x9c\xac/bad\xff!";
static const char TRICKY_STREAM_DECODED[] =
    "tab\there\x01\x1f/new\nline/\xe6\x97\xa5\xe6\x9c\xac/bad\xef\xbf\xbd!";

static void test_put_body_escapes_group_and_stream_names(void **state)
{
    buf b = {0};
    cw_body_put_begin(&b, TRICKY_GROUP, TRICKY_STREAM);
    cw_body_put_event(&b, true, 1700000000123, "x", 1);
    cw_body_put_end(&b);

    json_t *root = decode(&b);
    assert_int_equal(json_object_size(root), 3);
    assert_string_equal(str_member(root, "logGroupName"), TRICKY_GROUP);
    assert_string_equal(str_member(root, "logStreamName"), TRICKY_STREAM_DECODED);
    json_t *evs = json_object_get(root, "logEvents");
    assert_true(json_is_array(evs));
    assert_int_equal(json_array_size(evs), 1);
    json_decref(root);
    buf_free(&b);
}

static void test_put_body_copies_escaped_messages_byte_for_byte(void **state)
{
    static const struct {
        const char *esc;     /* as it sits in the ring */
        const char *decoded; /* what CloudWatch stores */
    } msgs[] = {
        {"plain text", "plain text"},
        {"say \\\"hi\\\" to C:\\\\path", "say \"hi\" to C:\\path"},
        {"ctl \\u0001\\u001f\\b\\f\\n\\r\\t end", "ctl \x01\x1f\b\f\n\r\t end"},
        {"caf\\u00e9 \xc3\xa9 \\ud83d\\ude00 \xf0\x9f\x98\x80",
         "caf\xc3\xa9 \xc3\xa9 \xf0\x9f\x98\x80 \xf0\x9f\x98\x80"},
        {"slash \\/ kept", "slash / kept"},
        {"", ""},
    };
    buf b = {0};
    cw_body_put_begin(&b, "g", "s");
    for (size_t i = 0; i < ARRAY_SIZE(msgs); i++)
        cw_body_put_event(&b, i == 0, 1000 + (int64_t)i, msgs[i].esc, strlen(msgs[i].esc));
    cw_body_put_end(&b);

    for (size_t i = 0; i < ARRAY_SIZE(msgs); i++) {
        /* The escaped bytes appear unchanged between the message's quotes. */
        _cleanup_free_ char *quoted = xasprintf("\"message\":\"%s\"}", msgs[i].esc);
        assert_true(contains(&b, quoted));
    }
    json_t *root = decode(&b);
    json_t *evs = json_object_get(root, "logEvents");
    assert_int_equal(json_array_size(evs), ARRAY_SIZE(msgs));
    for (size_t i = 0; i < ARRAY_SIZE(msgs); i++) {
        json_t *ev = json_array_get(evs, i);
        assert_int_equal(json_object_size(ev), 2);
        assert_int_equal(json_integer_value(json_object_get(ev, "timestamp")), 1000 + (int64_t)i);
        json_t *m = json_object_get(ev, "message");
        assert_true(json_is_string(m));
        assert_int_equal(json_string_length(m), strlen(msgs[i].decoded));
        assert_memory_equal(json_string_value(m), msgs[i].decoded, strlen(msgs[i].decoded));
    }
    json_decref(root);
    buf_free(&b);
}

static void test_put_body_formats_every_timestamp_exactly(void **state)
{
    static const int64_t stamps[] = {
        0,  1,   9,         10,        99, 100, 1700000000000, 1700000000999, 999999999999999,
        -1, -10, INT64_MAX, INT64_MIN,
    };
    buf b = {0};
    cw_body_put_begin(&b, "g", "s");
    for (size_t i = 0; i < ARRAY_SIZE(stamps); i++)
        cw_body_put_event(&b, i == 0, stamps[i], "m", 1);
    /* A long run through every digit count, again and again. */
    int64_t run[2000], t = 7;
    for (size_t i = 0; i < ARRAY_SIZE(run); i++) {
        run[i] = t;
        t = t > INT64_MAX / 4 ? (int64_t)i : t * 3 + (int64_t)i;
        cw_body_put_event(&b, false, run[i], "m", 1);
    }
    cw_body_put_end(&b);

    json_t *root = decode(&b);
    json_t *evs = json_object_get(root, "logEvents");
    assert_int_equal(json_array_size(evs), ARRAY_SIZE(stamps) + ARRAY_SIZE(run));
    for (size_t i = 0; i < ARRAY_SIZE(stamps); i++) {
        json_t *ts = json_object_get(json_array_get(evs, i), "timestamp");
        assert_true(json_is_integer(ts));
        assert_true(json_integer_value(ts) == stamps[i]);
    }
    for (size_t i = 0; i < ARRAY_SIZE(run); i++) {
        json_t *ts = json_object_get(json_array_get(evs, ARRAY_SIZE(stamps) + i), "timestamp");
        assert_true(json_integer_value(ts) == run[i]);
    }
    json_decref(root);
    buf_free(&b);
}

static void test_put_body_appends_after_existing_bytes(void **state)
{
    buf b = {0};
    buf_append(&b, "PREFIX", 6);
    cw_body_put_begin(&b, "g", "s");
    cw_body_put_event(&b, true, 5, "a", 1);
    cw_body_put_event(&b, false, 6, "b", 1);
    cw_body_put_end(&b);
    assert_memory_equal(b.data, "PREFIX", 6);
    buf rest = {.data = b.data + 6, .len = b.len - 6};
    json_t *root = decode(&rest);
    json_t *evs = json_object_get(root, "logEvents");
    assert_int_equal(json_array_size(evs), 2);
    assert_string_equal(str_member(json_array_get(evs, 1), "message"), "b");
    json_decref(root);
    buf_free(&b);
}

static void test_describe_group_body_and_its_retention_in_the_answer(void **state)
{
    buf b = {0};
    cw_body_describe_group(&b, TRICKY_GROUP);
    json_t *root = decode(&b);
    assert_int_equal(json_object_size(root), 2);
    assert_string_equal(str_member(root, "logGroupNamePrefix"), TRICKY_GROUP);
    assert_int_equal(json_integer_value(json_object_get(root, "limit")), 1);
    json_decref(root);
    buf_free(&b);

    int days = -1;
    const char *with = "{\"logGroups\":[{\"logGroupName\":\"/g\",\"retentionInDays\":30}]}";
    assert_int_equal(cw_parse_group_retention(with, strlen(with), "/g", &days), 0);
    assert_int_equal(days, 30);
    const char *none = "{\"logGroups\":[{\"logGroupName\":\"/g\",\"creationTime\":1}]}";
    assert_int_equal(cw_parse_group_retention(none, strlen(none), "/g", &days), 0);
    assert_int_equal(days, 0); /* never expires */
    /* Only the prefix matched: another group, not this one. */
    const char *other = "{\"logGroups\":[{\"logGroupName\":\"/g2\",\"retentionInDays\":7}]}";
    assert_int_equal(cw_parse_group_retention(other, strlen(other), "/g", &days), -ENOENT);
    const char *empty = "{\"logGroups\":[]}";
    assert_int_equal(cw_parse_group_retention(empty, strlen(empty), "/g", &days), -ENOENT);
    assert_int_equal(cw_parse_group_retention("<html>", 6, "/g", &days), -EPROTO);
    assert_int_equal(cw_parse_group_retention(NULL, 0, "/g", &days), -EPROTO);
}

static void test_create_and_retention_bodies_hold_exactly_their_fields(void **state)
{
    buf b = {0};
    cw_body_create_group(&b, TRICKY_GROUP);
    json_t *root = decode(&b);
    assert_int_equal(json_object_size(root), 1);
    assert_string_equal(str_member(root, "logGroupName"), TRICKY_GROUP);
    json_decref(root);

    /* Class, key and tags, tags with characters JSON escapes. */
    char *tags[] = {"team=payments", "cost center=42", "note=a \"quoted\" ü=x", "empty="};
    cw_group_settings gs = {.group_class = "INFREQUENT_ACCESS",
                            .kms_key_id = "arn:aws:kms:us-east-1:123456789012:key/1234abcd",
                            .tags = tags, .n_tags = ARRAY_SIZE(tags)};
    b.len = 0;
    cw_body_create_group_with(&b, TRICKY_GROUP, &gs);
    root = decode(&b);
    assert_int_equal(json_object_size(root), 4);
    assert_string_equal(str_member(root, "logGroupName"), TRICKY_GROUP);
    assert_string_equal(str_member(root, "logGroupClass"), "INFREQUENT_ACCESS");
    assert_string_equal(str_member(root, "kmsKeyId"), gs.kms_key_id);
    json_t *t = json_object_get(root, "tags");
    assert_int_equal(json_object_size(t), 4);
    assert_string_equal(str_member(t, "team"), "payments");
    assert_string_equal(str_member(t, "cost center"), "42");
    assert_string_equal(str_member(t, "note"), "a \"quoted\" ü=x");
    assert_string_equal(str_member(t, "empty"), "");
    json_decref(root);

    b.len = 0;
    cw_body_create_stream(&b, TRICKY_GROUP, TRICKY_STREAM);
    root = decode(&b);
    assert_int_equal(json_object_size(root), 2);
    assert_string_equal(str_member(root, "logGroupName"), TRICKY_GROUP);
    assert_string_equal(str_member(root, "logStreamName"), TRICKY_STREAM_DECODED);
    json_decref(root);

    static const int days[] = {1, 30, 3653};
    for (size_t i = 0; i < ARRAY_SIZE(days); i++) {
        b.len = 0;
        cw_body_retention(&b, "/g", days[i]);
        root = decode(&b);
        assert_int_equal(json_object_size(root), 2);
        assert_string_equal(str_member(root, "logGroupName"), "/g");
        json_t *d = json_object_get(root, "retentionInDays");
        assert_true(json_is_integer(d));
        assert_int_equal(json_integer_value(d), days[i]);
        json_decref(root);
    }
    buf_free(&b);
}

/* ---- classification --------------------------------------------------------------------- */

typedef struct classify_case {
    long status;
    int transport_error;
    const char *error;
    const char *body;
    cw_result kind;
    const char *type;    /* expected err.type */
    const char *message; /* expected substring of err.message, or NULL */
    uint64_t limit;
} classify_case;

#define ERR_BODY(t, m) "{\"__type\":\"" t "\",\"message\":\"" m "\"}"

static const classify_case CLASSIFY_CASES[] = {
    /* transport */
    {0, 56, "Recv failure: Connection reset by peer", "", CW_RETRY, "", "reset by peer", 0},
    {0, 28, "Operation timed out after 30000 milliseconds", "", CW_RETRY, "", "timed out", 0},
    {0, 7, "Failed to connect to 127.0.0.1 port 1: Connection refused", "", CW_RETRY, "", "refused",
     0},
    {0, 52, NULL, "", CW_RETRY, "", "52", 0},
    {0, 0, NULL, "", CW_RETRY, "", NULL, 0},
    {200, 18, "transfer closed with 10 bytes remaining", "{}", CW_RETRY, "", "closed", 0},
    /* success, whatever the body: the caller parses it */
    {200, 0, NULL, "{\"nextSequenceToken\":\"1\"}", CW_OK, "", NULL, 0},
    {200, 0, NULL, "\xff\xfe garbage", CW_OK, "", NULL, 0},
    {204, 0, NULL, "", CW_OK, "", NULL, 0},
    /* server side */
    {500, 0, NULL, ERR_BODY("InternalFailure", "oops"), CW_RETRY, "InternalFailure", "oops", 0},
    {503, 0, NULL, "<html>Service Unavailable</html>", CW_RETRY, "", NULL, 0},
    {502, 0, NULL, "", CW_RETRY, "", NULL, 0},
    /* throttling and friends */
    {400, 0, NULL, ERR_BODY("com.amazonaws.logs#ThrottlingException", "Rate exceeded"), CW_RETRY,
     "ThrottlingException", "Rate exceeded", 0},
    {400, 0, NULL, ERR_BODY("LimitExceededException", "Resource limit exceeded."), CW_RETRY,
     "LimitExceededException", "limit", 0},
    {400, 0, NULL, ERR_BODY("ServiceUnavailableException", "try later"), CW_RETRY,
     "ServiceUnavailableException", "later", 0},
    {429, 0, NULL, "Too Many Requests", CW_RETRY, "", NULL, 0},
    /* credentials */
    {400, 0, NULL,
     ERR_BODY("ExpiredTokenException", "The security token included in the request is expired"),
     CW_AUTH, "ExpiredTokenException", "expired", 0},
    {400, 0, NULL,
     ERR_BODY("UnrecognizedClientException",
              "The security token included in the request is invalid."),
     CW_AUTH, "UnrecognizedClientException", "invalid", 0},
    {400, 0, NULL,
     ERR_BODY("InvalidSignatureException",
              "The request signature we calculated does not match the signature you provided."),
     CW_AUTH, "InvalidSignatureException", "does not match", 0},
    {400, 0, NULL,
     ERR_BODY("IncompleteSignatureException", "Authorization header requires 'Signature'"), CW_AUTH,
     "IncompleteSignatureException", NULL, 0},
    {400, 0, NULL, ERR_BODY("MissingAuthenticationTokenException", "Missing Authentication Token"),
     CW_AUTH, "MissingAuthenticationTokenException", NULL, 0},
    {403, 0, NULL,
     ERR_BODY("InvalidClientTokenId", "The security token included in the request is invalid"),
     CW_AUTH, "InvalidClientTokenId", NULL, 0},
    /* the clock */
    {400, 0, NULL,
     ERR_BODY("InvalidSignatureException", "Signature expired: 20240101T000000Z is now earlier "
                                           "than 20240101T000500Z (20240101T001000Z - 5 min.)"),
     CW_CLOCK, "InvalidSignatureException", "Signature expired", 0},
    {400, 0, NULL,
     ERR_BODY("InvalidSignatureException",
              "Signature not yet current: 20240101T002000Z is still later than 20240101T001500Z "
              "(20240101T001000Z + 5 min.)"),
     CW_CLOCK, "InvalidSignatureException", "not yet current", 0},
    {403, 0, NULL,
     ERR_BODY("RequestTimeTooSkewed",
              "The difference between the request time and the current time is too large."),
     CW_CLOCK, "RequestTimeTooSkewed", NULL, 0},
    {400, 0, NULL, ERR_BODY("RequestExpired", "Request has expired."), CW_CLOCK, "RequestExpired",
     NULL, 0},
    /* resources */
    {400, 0, NULL,
     ERR_BODY("ResourceNotFoundException", "The specified log stream does not exist."),
     CW_NOT_FOUND, "ResourceNotFoundException", "log stream", 0},
    {400, 0, NULL,
     ERR_BODY("ResourceAlreadyExistsException", "The specified log group already exists"),
     CW_ALREADY_EXISTS, "ResourceAlreadyExistsException", "already exists", 0},
    /* the request itself */
    {400, 0, NULL,
     ERR_BODY("InvalidParameterException",
              "Log event too large: 300000 bytes exceeds limit of 262144"),
     CW_EVENT_TOO_LARGE, "InvalidParameterException", "too large", 262144},
    {400, 0, NULL,
     ERR_BODY("com.amazonaws.logs#InvalidParameterException",
              "Log event too large: 1048551 bytes exceeds limit of 1048550"),
     CW_EVENT_TOO_LARGE, "InvalidParameterException", NULL, 1048550},
    {400, 0, NULL,
     ERR_BODY("InvalidParameterException", "Log event too large: many bytes exceeds limit of 5"),
     CW_INVALID, "InvalidParameterException", NULL, 0},
    {400, 0, NULL,
     ERR_BODY("InvalidParameterException", "Log event too large: 10 bytes exceeds limit of"),
     CW_INVALID, "InvalidParameterException", NULL, 0},
    {400, 0, NULL,
     ERR_BODY("InvalidParameterException",
              "Upload too large: 1048600 bytes exceeds limit of 1048576"),
     CW_INVALID, "InvalidParameterException", "Upload too large", 0},
    {400, 0, NULL,
     ERR_BODY("InvalidParameterException",
              "Log events in a single PutLogEvents request must be in chronological order."),
     CW_INVALID, "InvalidParameterException", "chronological", 0},
    {400, 0, NULL, ERR_BODY("SerializationException", "Unexpected value type"), CW_INVALID,
     "SerializationException", NULL, 0},
    {400, 0, NULL, ERR_BODY("DataAlreadyAcceptedException", "already accepted"), CW_INVALID,
     "DataAlreadyAcceptedException", NULL, 0},
    /* permissions, with the capitalised spelling of the message */
    {400, 0, NULL,
     "{\"__type\":\"AccessDeniedException\",\"Message\":\"User: arn:aws:sts::1:assumed-role/r is "
     "not authorized to perform: logs:PutLogEvents\"}",
     CW_DENIED, "AccessDeniedException", "not authorized", 0},
    /* type spellings */
    {400, 0, NULL,
     ERR_BODY("ThrottlingException:http://internal.amazon.com/coral/com.amazon.coral.availability/",
              "x"),
     CW_RETRY, "ThrottlingException", NULL, 0},
    {400, 0, NULL, ERR_BODY("aws.protocol#ResourceNotFoundException:http://internal/", "x"),
     CW_NOT_FOUND, "ResourceNotFoundException", NULL, 0},
    {400, 0, NULL, "{\"code\":\"ExpiredTokenException\",\"message\":\"x\"}", CW_AUTH,
     "ExpiredTokenException", NULL, 0},
    /* nothing AWS would say */
    {400, 0, NULL, "<html>Bad Request</html>", CW_UNEXPECTED, "", "400", 0},
    {400, 0, NULL, "", CW_UNEXPECTED, "", NULL, 0},
    {400, 0, NULL, "[\"__type\",\"ThrottlingException\"]", CW_UNEXPECTED, "", NULL, 0},
    {400, 0, NULL, "{\"__type\":42,\"message\":\"x\"}", CW_UNEXPECTED, "", NULL, 0},
    {400, 0, NULL, ERR_BODY("FrobnicationException", "what"), CW_UNEXPECTED,
     "FrobnicationException", "what", 0},
    {404, 0, NULL, "<html>Not Found</html>", CW_UNEXPECTED, "", NULL, 0},
    {301, 0, NULL, "", CW_UNEXPECTED, "", NULL, 0},
};

static http_response response_of(const classify_case *c)
{
    return (http_response){
        .status = c->status,
        .transport_error = c->transport_error,
        .error = c->error,
        .body = c->body,
        .body_len = strlen(c->body),
    };
}

static void test_classify_table(void **state)
{
    for (size_t i = 0; i < ARRAY_SIZE(CLASSIFY_CASES); i++) {
        const classify_case *c = &CLASSIFY_CASES[i];
        http_response r = response_of(c);
        cw_error err;
        memset(&err, 0xa5, sizeof(err));
        cw_result got = cw_classify(&r, &err);
        if (got != c->kind || err.kind != c->kind)
            fail_msg("case %zu (%ld, %s): got %s, want %s", i, c->status, c->body, cw_strerror(got),
                     cw_strerror(c->kind));
        assert_int_equal(err.status, c->status);
        if (strcmp(err.type, c->type) != 0)
            fail_msg("case %zu: type \"%s\", want \"%s\"", i, err.type, c->type);
        if (c->message && !strstr(err.message, c->message))
            fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, err.message, c->message);
        assert_true(err.limit == c->limit);
        assert_string_equal(err.request_id, "");
    }
}

/* Throttling is told apart from the other retryable failures: the uploader
 * paces on it, and only on it. */
static void test_classify_marks_throttling_and_only_throttling(void **state)
{
    static const struct {
        long status;
        const char *body;
        bool throttled;
    } cases[] = {
        {400, ERR_BODY("ThrottlingException", "Rate exceeded"), true},
        {400, ERR_BODY("com.amazonaws.logs#ThrottlingException", "Rate exceeded"), true},
        {400, ERR_BODY("TooManyRequestsException", "slow down"), true},
        {400, ERR_BODY("RequestLimitExceeded", "slow down"), true},
        {429, "Too Many Requests", true},
        {400, ERR_BODY("LimitExceededException", "Resource limit exceeded."), false},
        {400, ERR_BODY("ServiceUnavailableException", "try later"), false},
        {503, "<html>Service Unavailable</html>", false},
        {500, ERR_BODY("InternalFailure", "oops"), false},
        {408, "Request Timeout", false},
        {400, ERR_BODY("ResourceNotFoundException", "no group"), false},
        {200, "{}", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        http_response r = {.status = cases[i].status, .body = cases[i].body,
                           .body_len = strlen(cases[i].body)};
        cw_error err;
        cw_result k = cw_classify(&r, &err);
        if (err.throttled != cases[i].throttled)
            fail_msg("case %zu (%s): throttled %d, want %d", i, cases[i].body, err.throttled,
                     cases[i].throttled);
        if (cases[i].throttled)
            assert_int_equal(k, CW_RETRY);
    }
}

static void test_classify_accepts_null_error_and_truncates_long_messages(void **state)
{
    http_response r = response_of(&CLASSIFY_CASES[0]);
    assert_int_equal(cw_classify(&r, NULL), CW_RETRY);

    buf body = {0};
    buf_printf(&body, "{\"__type\":\"com.example.very.long.namespace.");
    for (int i = 0; i < 20; i++)
        buf_printf(&body, "segment%d.", i);
    buf_printf(&body, "#InvalidParameterException\",\"message\":\"");
    for (int i = 0; i < 2000; i++)
        buf_appendc(&body, (char)('a' + i % 26));
    buf_printf(&body, "\"}");
    r = (http_response){.status = 400, .body = body.data, .body_len = body.len};
    cw_error err;
    assert_int_equal(cw_classify(&r, &err), CW_INVALID);
    assert_string_equal(err.type, "InvalidParameterException");
    assert_int_equal(strlen(err.message), sizeof(err.message) - 1);
    assert_memory_equal(err.message, "abcdefghij", 10);
    buf_free(&body);
}

static void test_classify_keeps_only_the_first_line_of_messages(void **state)
{
    /* What a signature mismatch says: the canonical request, token included. */
    static const char body[] =
        "{\"__type\":\"InvalidSignatureException\",\"message\":\"The request signature we "
        "calculated does not match the signature you provided.  \\n\\nThe Canonical String for "
        "this request should have been\\n'POST\\n/\\n\\nhost:logs.us-east-1.amazonaws.com\\n"
        "x-amz-security-token:IQoJsecretTOKEN\\n'\"}";
    http_response r = {.status = 400, .body = body, .body_len = strlen(body)};
    cw_error err;
    assert_int_equal(cw_classify(&r, &err), CW_AUTH);
    assert_string_equal(err.message, "The request signature we calculated does not match the "
                                     "signature you provided.");

    static const char tabbed[] = "{\"__type\":\"X\",\"message\":\"a\\tb\\u001bc\\u007fd\"}";
    r = (http_response){.status = 400, .body = tabbed, .body_len = strlen(tabbed)};
    assert_int_equal(cw_classify(&r, &err), CW_UNEXPECTED);
    assert_string_equal(err.message, "a b c d");
}

static void test_strerror_names_every_result(void **state)
{
    for (int i = CW_OK; i <= CW_UNEXPECTED; i++) {
        const char *s = cw_strerror((cw_result)i);
        assert_non_null(s);
        assert_true(strlen(s) > 0);
        for (int j = CW_OK; j < i; j++)
            assert_string_not_equal(s, cw_strerror((cw_result)j));
    }
}

/* ---- PutLogEvents responses ------------------------------------------------------------- */

static void test_put_response_parses_rejected_indices(void **state)
{
    static const struct {
        const char *body;
        int64_t too_new, too_old, expired;
    } cases[] = {
        {"{}", -1, -1, -1},
        {"{\"nextSequenceToken\":\"4959\"}", -1, -1, -1},
        {"{\"nextSequenceToken\":\"1\",\"rejectedLogEventsInfo\":{\"tooNewLogEventStartIndex\":7,"
         "\"tooOldLogEventEndIndex\":2,\"expiredLogEventEndIndex\":3}}",
         7, 2, 3},
        {"{\"rejectedLogEventsInfo\":{\"tooOldLogEventEndIndex\":0}}", -1, 0, -1},
        {"{\"rejectedLogEventsInfo\":{\"tooNewLogEventStartIndex\":9999}}", 9999, -1, -1},
        {"{\"rejectedLogEventsInfo\":{\"tooNewLogEventStartIndex\":null}}", -1, -1, -1},
        {"{\"rejectedLogEventsInfo\":null}", -1, -1, -1},
        {"{\"rejectedLogEventsInfo\":{}}", -1, -1, -1},
        {" \n{\"rejectedEntityInfo\":{\"errorType\":\"InvalidEntity\"}} \n", -1, -1, -1},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        cw_put_result out;
        memset(&out, 0x5a, sizeof(out));
        int r = cw_parse_put_response(cases[i].body, strlen(cases[i].body), &out);
        if (r != 0)
            fail_msg("case %zu (%s): %d", i, cases[i].body, r);
        assert_true(out.too_new_start == cases[i].too_new);
        assert_true(out.too_old_end == cases[i].too_old);
        assert_true(out.expired_end == cases[i].expired);
    }
}

static void test_put_response_refuses_garbage(void **state)
{
    static const char *const bodies[] = {
        "",
        "nope",
        "[]",
        "\"{}\"",
        "123",
        "null",
        "{",
        "{} trailing",
        "\xff\xfe\x00\x01",
        "{\"rejectedLogEventsInfo\":\"all of them\"}",
        "{\"rejectedLogEventsInfo\":[1,2]}",
        "{\"rejectedLogEventsInfo\":{\"tooOldLogEventEndIndex\":-1}}",
        "{\"rejectedLogEventsInfo\":{\"tooNewLogEventStartIndex\":\"3\"}}",
        "{\"rejectedLogEventsInfo\":{\"expiredLogEventEndIndex\":1.5}}",
        "{\"rejectedLogEventsInfo\":{\"tooOldLogEventEndIndex\":2,\"expiredLogEventEndIndex\":true}"
        "}",
    };
    for (size_t i = 0; i < ARRAY_SIZE(bodies); i++) {
        cw_put_result out;
        memset(&out, 0x5a, sizeof(out));
        size_t len = i == 8 ? 4 : strlen(bodies[i]);
        int r = cw_parse_put_response(bodies[i], len, &out);
        if (r != -EPROTO)
            fail_msg("case %zu (%s): %d, want -EPROTO", i, bodies[i], r);
        assert_true(out.too_new_start == -1 && out.too_old_end == -1 && out.expired_end == -1);
    }
}

static void test_put_response_reads_only_len_bytes(void **state)
{
    static const char body[] = "{}{\"this\": is not read}";
    cw_put_result out;
    assert_int_equal(cw_parse_put_response(body, 2, &out), 0);
    assert_int_equal(cw_parse_put_response(body, sizeof(body) - 1, &out), -EPROTO);
    assert_int_equal(cw_parse_put_response(NULL, 0, &out), -EPROTO);
}

/* ---- the client, offline ---------------------------------------------------------------- */

static void test_client_url_follows_region_or_endpoint(void **state)
{
    loop *l = loop_new();
    http *h = http_new(l);
    static const struct {
        const char *region, *endpoint, *url;
    } cases[] = {
        {"us-east-1", NULL, "https://logs.us-east-1.amazonaws.com/"},
        {"eu-central-2", "", "https://logs.eu-central-2.amazonaws.com/"},
        {"cn-north-1", NULL, "https://logs.cn-north-1.amazonaws.com.cn/"},
        {"us-east-1", "http://127.0.0.1:4566", "http://127.0.0.1:4566/"},
        {"us-east-1", "https://vpce-1.logs.us-east-1.vpce.amazonaws.com/",
         "https://vpce-1.logs.us-east-1.vpce.amazonaws.com/"},
        {"us-east-1", "https://logs-fips.us-east-1.amazonaws.com:443", /* curl drops it */
         "https://logs-fips.us-east-1.amazonaws.com/"},
        {"us-east-1", "http://localhost:80/", "http://localhost/"},
        {"us-east-1", "https://example.test:8443/prefix/", "https://example.test:8443/prefix/"},
        {"us-east-1", "http://[::1]:9000", "http://[::1]:9000/"},
        {"us-east-1", "logs.example.test", "https://logs.example.test/"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        cw_client *cl = cw_client_new(h, NULL, cases[i].region, cases[i].endpoint, NULL);
        assert_non_null(cl);
        assert_string_equal(cw_client_url(cl), cases[i].url);
        cw_client_free(cl);
    }
    http_free(h);
    loop_free(l);
}

static void test_client_refuses_bad_endpoints_and_regions(void **state)
{
    loop *l = loop_new();
    http *h = http_new(l);
    static const char *const endpoints[] = {
        "ftp://logs.example.test/",
        "http://user:secret@logs.example.test/",
        "https://logs.example.test/?x=1",
        "https://logs.example.test/#frag",
        "http://",
        "https://exa mple.test/",
    };
    for (size_t i = 0; i < ARRAY_SIZE(endpoints); i++)
        if (cw_client_new(h, NULL, "us-east-1", endpoints[i], NULL))
            fail_msg("endpoint \"%s\" was accepted", endpoints[i]);
    static const char *const regions[] = {"US-EAST-1", "us east 1", "us-east-1/x", "a.b"};
    for (size_t i = 0; i < ARRAY_SIZE(regions); i++)
        if (cw_client_new(h, NULL, regions[i], NULL, NULL))
            fail_msg("region \"%s\" was accepted", regions[i]);
    http_free(h);
    loop_free(l);
}

static void never_called(cw_result r, const cw_error *err, const char *body, size_t len,
                         void *userdata)
{
    fail_msg("callback after a refused send");
}

static void test_client_without_region_waits_for_one(void **state)
{
    loop *l = loop_new();
    http *h = http_new(l);
    cw_call *call = (cw_call *)1;

    cw_client *cl = cw_client_new(h, NULL, NULL, NULL, NULL);
    assert_non_null(cl);
    assert_null(cw_client_url(cl));
    assert_int_equal(cw_send(cl, "PutLogEvents", "{}", 2, never_called, NULL, &call), -EINVAL);
    assert_null(call);
    assert_int_equal(cw_client_set_region(cl, "Not A Region"), -EINVAL);
    assert_null(cw_client_url(cl));
    assert_int_equal(cw_client_set_region(cl, "ap-southeast-2"), 0);
    assert_string_equal(cw_client_url(cl), "https://logs.ap-southeast-2.amazonaws.com/");
    /* A region, but no credentials to sign with. */
    call = (cw_call *)1;
    assert_int_equal(cw_send(cl, "PutLogEvents", "{}", 2, never_called, NULL, &call), -ENOKEY);
    assert_null(call);
    assert_int_equal(cw_client_set_region(cl, "eu-west-1"), 0);
    assert_string_equal(cw_client_url(cl), "https://logs.eu-west-1.amazonaws.com/");
    assert_int_equal(cw_client_set_region(cl, "bad region"), -EINVAL);
    assert_string_equal(cw_client_url(cl), "https://logs.eu-west-1.amazonaws.com/");
    cw_client_free(cl);

    /* An endpoint override still needs the region to sign with. */
    cl = cw_client_new(h, NULL, NULL, "http://127.0.0.1:9", NULL);
    assert_non_null(cl);
    assert_string_equal(cw_client_url(cl), "http://127.0.0.1:9/");
    assert_int_equal(cw_send(cl, "PutLogEvents", "{}", 2, never_called, NULL, &call), -EINVAL);
    cw_client_free(cl);
    cw_client_free(NULL);

    http_free(h);
    loop_free(l);
}

/* ---- against the fake endpoint ---------------------------------------------------------- */

#define AKID "AKIDCWTEST"
#define SECRET "cwtest/secret+KEY0123456789abcdefghijkl"
#define TOKEN_AKID "ASIACWTOKEN"
#define TOKEN_SECRET "tokensecret0123456789"
#define TOKEN "IQoJ/token+with=odd/chars"
#define MAX_EVENT 4096 /* the fake's --max-event-size */
#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)
#define WAIT_MS 15000

static fake_child fake = {.pid = -1};

/* A control request to the fake; its JSON answer (the caller decrefs). */
static json_t *fake_control(const char *method, const char *path, const char *body)
{
    buf out = {0};
    long status = fake_child_request(&fake, method, path, body, &out);
    if (status != 200)
        fail_msg("fake %s %s: HTTP %ld: %.*s", method, path, status, (int)out.len,
                 out.data ? out.data : "");
    json_error_t jerr;
    json_t *root = json_loadb(out.data, out.len, 0, &jerr);
    buf_free(&out);
    assert_non_null(root);
    return root;
}

static void fake_post(const char *path, const char *body)
{
    json_decref(fake_control("POST", path, body));
}

static int fake_start(void **state)
{
    const char *args[] = {"--static-key", AKID ":" SECRET, "--static-key",
                          TOKEN_AKID ":" TOKEN_SECRET ":" TOKEN, "--max-event-size",
                          STRINGIFY(MAX_EVENT), NULL};
    if (!fake_child_start(&fake, args))
        return -1;
    /* Nothing in these tests may leave the machine or find another provider. */
    setenv("NO_PROXY", "*", 1);
    setenv("no_proxy", "*", 1);
    unsetenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    unsetenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    unsetenv("AWS_EC2_METADATA_DISABLED");
    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", fake.imds_endpoint, 1);
    return 0;
}

static int fake_stop(void **state)
{
    fake_child_stop(&fake);
    return 0;
}

static int fake_reset(void **state)
{
    fake_post("/_fake/reset", NULL);
    fake_post("/_fake/config", "{\"clock_offset\":0,\"credential_lifetime\":21600,"
                               "\"rotation_window\":null}");
    return 0;
}

/* One event loop with everything the client needs, credentials from the
 * environment (or from the fake's IMDS when akid is NULL). */
typedef struct world {
    loop *l;
    http *h;
    imds *m;
    config cfg;
    creds *c;
    cw_client *cl;
    loop_timer *watchdog;
    int creds_changes;
    void (*on_creds)(struct world *w);
    /* the last answer */
    int n_done;
    cw_result r;
    cw_error err;
    buf body;
    void *scratch;
} world;

static void on_watchdog(loop *l, void *userdata)
{
    loop_quit(l, -ETIMEDOUT);
}

static void on_creds_changed(void *userdata)
{
    world *w = userdata;
    w->creds_changes++;
    if (w->on_creds)
        w->on_creds(w);
}

static world *world_new(const char *akid, const char *secret, const char *token, bool start)
{
    world *w = xcalloc(1, sizeof(*w));
    if (akid) {
        setenv("AWS_ACCESS_KEY_ID", akid, 1);
        setenv("AWS_SECRET_ACCESS_KEY", secret, 1);
    } else {
        unsetenv("AWS_ACCESS_KEY_ID");
        unsetenv("AWS_SECRET_ACCESS_KEY");
    }
    if (token)
        setenv("AWS_SESSION_TOKEN", token, 1);
    else
        unsetenv("AWS_SESSION_TOKEN");
    w->l = loop_new();
    assert_non_null(w->l);
    w->h = http_new(w->l);
    assert_non_null(w->h);
    w->m = imds_new(w->l, w->h, fake.imds_endpoint);
    /* config's strings are not const; these are only read. */
    w->cfg = (config){.region = (char *)fake.region,
                      .endpoint = (char *)fake.endpoint,
                      .imds_endpoint = (char *)fake.imds_endpoint};
    w->c = creds_new(w->l, w->h, w->m, &w->cfg, on_creds_changed, w);
    assert_non_null(w->c);
    if (start)
        creds_start(w->c);
    w->cl = cw_client_new(w->h, w->c, fake.region, fake.endpoint, NULL);
    assert_non_null(w->cl);
    w->watchdog = loop_timer_new(w->l, on_watchdog, w);
    return w;
}

static void world_free(world *w)
{
    cw_client_free(w->cl);
    creds_free(w->c);
    imds_free(w->m);
    http_free(w->h);
    loop_timer_free(w->watchdog);
    loop_free(w->l);
    buf_free(&w->body);
    free(w);
}

static void record(world *w, cw_result r, const cw_error *err, const char *body, size_t len)
{
    w->n_done++;
    w->r = r;
    w->err = *err;
    w->body.len = 0;
    buf_append(&w->body, body, len);
    buf_appendc(&w->body, '\0');
    w->body.len--;
}

static void done_quit(cw_result r, const cw_error *err, const char *body, size_t len,
                      void *userdata)
{
    world *w = userdata;
    record(w, r, err, body, len);
    loop_quit(w->l, 0);
}

/* The loop quits for good once asked, so a world serves one run: until a
 * callback quits it (a timeout fails the test)... */
static void run(world *w)
{
    loop_timer_arm(w->watchdog, WAIT_MS, 0);
    assert_int_equal(loop_run(w->l), 0);
}

/* ...or for a while, to see that nothing calls back. */
static void run_for(world *w, uint64_t ms)
{
    loop_timer_arm(w->watchdog, ms, 0);
    assert_int_equal(loop_run(w->l), -ETIMEDOUT);
}

/* One request on a new world. */
static world *request(const char *akid, const char *secret, const char *token, const char *op,
                      const buf *body)
{
    world *w = world_new(akid, secret, token, true);
    cw_call *call = NULL;
    assert_int_equal(cw_send(w->cl, op, body->data, body->len, done_quit, w, &call), 0);
    assert_non_null(call);
    run(w);
    assert_int_equal(w->n_done, 1);
    return w;
}

static cw_result request_result(const char *op, const buf *body, cw_error *err)
{
    world *w = request(AKID, SECRET, NULL, op, body);
    cw_result r = w->r;
    if (err)
        *err = w->err;
    world_free(w);
    return r;
}

static void expect(cw_result got, const cw_error *err, cw_result want)
{
    if (got != want)
        fail_msg("got %s (%s: %s, HTTP %ld), want %s", cw_strerror(got), err->type, err->message,
                 err->status, cw_strerror(want));
}

static buf put_body(const char *group, const char *stream, const int64_t *ts, const char **esc,
                    size_t n)
{
    buf b = {0};
    cw_body_put_begin(&b, group, stream);
    for (size_t i = 0; i < n; i++)
        cw_body_put_event(&b, i == 0, ts[i], esc[i], strlen(esc[i]));
    cw_body_put_end(&b);
    return b;
}

static void create(const char *group, const char *stream)
{
    buf b = {0};
    cw_error err;
    cw_body_create_group(&b, group);
    cw_result r = request_result("CreateLogGroup", &b, &err);
    expect(r, &err, CW_OK);
    if (stream) {
        b.len = 0;
        cw_body_create_stream(&b, group, stream);
        r = request_result("CreateLogStream", &b, &err);
        expect(r, &err, CW_OK);
    }
    buf_free(&b);
}

static void install_faults(const char *rules)
{
    fake_post("/_fake/faults", rules);
}

#define E2E_GROUP "/cwlogd/test-1#x"
#define E2E_STREAM "web/\xc3\xbc \"quoted\" \\ tab\t"

static void test_events_reach_the_service_as_sent(void **state)
{
    buf b = {0};
    cw_error err;

    cw_body_create_group(&b, E2E_GROUP);
    world *w = request(AKID, SECRET, NULL, "CreateLogGroup", &b);
    expect(w->r, &w->err, CW_OK);
    assert_int_equal(w->err.status, 200);
    assert_true(strlen(w->err.request_id) > 0); /* from x-amzn-RequestId */
    world_free(w);

    expect(request_result("CreateLogGroup", &b, &err), &err, CW_ALREADY_EXISTS);
    assert_string_equal(err.type, "ResourceAlreadyExistsException");
    assert_true(strlen(err.request_id) > 0);

    b.len = 0;
    cw_body_retention(&b, E2E_GROUP, 7);
    expect(request_result("PutRetentionPolicy", &b, &err), &err, CW_OK);

    int64_t now = now_realtime_ms();
    const int64_t ts[] = {now - 2000, now - 1000, now};
    const char *esc[] = {
        "first \\\"line\\\"",
        "caf\\u00e9 \xe2\x82\xac \\ud83d\\ude00 \\t\\\\",
        "multi\\nline\\u0001end",
    };
    const char *decoded[] = {
        "first \"line\"",
        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \t\\",
        "multi\nline\x01"
        "end",
    };
    buf put = put_body(E2E_GROUP, E2E_STREAM, ts, esc, 3);
    expect(request_result("PutLogEvents", &put, &err), &err, CW_NOT_FOUND);
    assert_string_equal(err.type, "ResourceNotFoundException");

    b.len = 0;
    cw_body_create_stream(&b, E2E_GROUP, E2E_STREAM);
    expect(request_result("CreateLogStream", &b, &err), &err, CW_OK);
    expect(request_result("CreateLogStream", &b, &err), &err, CW_ALREADY_EXISTS);

    w = request(AKID, SECRET, NULL, "PutLogEvents", &put);
    expect(w->r, &w->err, CW_OK);
    cw_put_result pr;
    assert_int_equal(cw_parse_put_response(w->body.data, w->body.len, &pr), 0);
    assert_true(pr.too_new_start == -1 && pr.too_old_end == -1 && pr.expired_end == -1);
    world_free(w);

    json_t *got = fake_control("GET", "/_fake/events", NULL);
    json_t *evs = json_object_get(got, "events");
    assert_int_equal(json_array_size(evs), 3);
    for (size_t i = 0; i < 3; i++) {
        json_t *ev = json_array_get(evs, i);
        assert_string_equal(str_member(ev, "group"), E2E_GROUP);
        assert_string_equal(str_member(ev, "stream"), E2E_STREAM);
        assert_true(json_integer_value(json_object_get(ev, "timestamp")) == ts[i]);
        assert_string_equal(str_member(ev, "message"), decoded[i]);
    }
    json_decref(got);
    buf_free(&put);
    buf_free(&b);
}

static void test_session_token_is_sent_and_signed(void **state)
{
    buf b = {0};
    cw_body_create_group(&b, "/cwlogd/token");
    world *w = request(TOKEN_AKID, TOKEN_SECRET, TOKEN, "CreateLogGroup", &b);
    expect(w->r, &w->err, CW_OK);
    world_free(w);

    /* The fake wants the token it issued with the key. */
    w = request(TOKEN_AKID, TOKEN_SECRET, "IQoJ/another-token", "CreateLogGroup", &b);
    expect(w->r, &w->err, CW_AUTH);
    assert_string_equal(w->err.type, "UnrecognizedClientException");
    world_free(w);
    buf_free(&b);
}

static void test_wrong_secret_is_an_auth_error(void **state)
{
    buf b = {0};
    cw_body_create_group(&b, "/cwlogd/auth");
    world *w = request(AKID, "not-the-secret", NULL, "CreateLogGroup", &b);
    expect(w->r, &w->err, CW_AUTH);
    assert_int_equal(w->err.status, 400);
    assert_string_equal(w->err.type, "InvalidSignatureException");
    assert_non_null(strstr(w->err.message, "signature"));
    assert_true(strlen(w->err.request_id) > 0);
    world_free(w);

    /* The fake, like the service, answers with the canonical request it
     * expected, which holds the session token: none of it reaches err. */
    w = request(TOKEN_AKID, "not-the-secret", TOKEN, "CreateLogGroup", &b);
    expect(w->r, &w->err, CW_AUTH);
    assert_string_equal(w->err.type, "InvalidSignatureException");
    assert_non_null(strstr(w->body.data, TOKEN));
    assert_null(strstr(w->err.message, TOKEN));
    assert_null(strstr(w->err.message, "Canonical"));
    world_free(w);

    w = request("AKIDUNKNOWN", SECRET, NULL, "CreateLogGroup", &b);
    expect(w->r, &w->err, CW_AUTH);
    assert_string_equal(w->err.type, "UnrecognizedClientException");
    world_free(w);
    buf_free(&b);
}

static void test_throttling_is_retried_and_the_retry_lands_once(void **state)
{
    create("/cwlogd/throttle", "s");
    const int64_t ts[] = {now_realtime_ms()};
    const char *esc[] = {"once"};
    buf put = put_body("/cwlogd/throttle", "s", ts, esc, 1);
    cw_error err;

    install_faults("[{\"op\":\"PutLogEvents\",\"kind\":\"throttle\",\"count\":1}]");
    expect(request_result("PutLogEvents", &put, &err), &err, CW_RETRY);
    assert_string_equal(err.type, "ThrottlingException");
    assert_string_equal(err.message, "Rate exceeded");
    assert_int_equal(err.status, 400);
    expect(request_result("PutLogEvents", &put, &err), &err, CW_OK);

    json_t *got = fake_control("GET", "/_fake/events", NULL);
    assert_int_equal(json_integer_value(json_object_get(got, "count")), 1);
    json_decref(got);
    buf_free(&put);
}

static void test_resets_5xx_and_foreign_errors_are_told_apart(void **state)
{
    create("/cwlogd/faults", "s");
    const int64_t ts[] = {now_realtime_ms()};
    const char *esc[] = {"m"};
    buf put = put_body("/cwlogd/faults", "s", ts, esc, 1);
    cw_error err;

    install_faults("[{\"op\":\"PutLogEvents\",\"kind\":\"reset_before\",\"count\":1}]");
    expect(request_result("PutLogEvents", &put, &err), &err, CW_RETRY);
    assert_int_equal(err.status, 0);
    assert_true(strlen(err.message) > 0);

    install_faults("[{\"op\":\"PutLogEvents\",\"kind\":\"503\",\"count\":1}]");
    expect(request_result("PutLogEvents", &put, &err), &err, CW_RETRY);
    assert_int_equal(err.status, 503);
    assert_string_equal(err.type, "ServiceUnavailableException");

    install_faults("[{\"op\":\"PutLogEvents\",\"kind\":\"html\",\"status\":400,\"count\":1}]");
    expect(request_result("PutLogEvents", &put, &err), &err, CW_UNEXPECTED);
    assert_int_equal(err.status, 400);
    assert_string_equal(err.type, "");

    install_faults("[{\"op\":\"PutLogEvents\",\"kind\":\"error\",\"status\":400,"
                   "\"type\":\"AccessDeniedException\",\"message\":\"no logs:PutLogEvents\","
                   "\"count\":1}]");
    expect(request_result("PutLogEvents", &put, &err), &err, CW_DENIED);
    assert_string_equal(err.message, "no logs:PutLogEvents");

    /* A 2xx that is not JSON: classified OK, refused by the response parser. */
    install_faults("[{\"op\":\"PutLogEvents\",\"kind\":\"garbage\",\"count\":1}]");
    world *w = request(AKID, SECRET, NULL, "PutLogEvents", &put);
    expect(w->r, &w->err, CW_OK);
    cw_put_result pr;
    assert_int_equal(cw_parse_put_response(w->body.data, w->body.len, &pr), -EPROTO);
    world_free(w);
    buf_free(&put);
}

static void test_too_large_event_reports_the_service_limit(void **state)
{
    create("/cwlogd/large", "s");
    buf big = {0};
    for (size_t i = 0; i < MAX_EVENT + 1; i++)
        buf_appendc(&big, (char)('a' + i % 26));
    buf_appendc(&big, '\0');
    const int64_t ts[] = {now_realtime_ms()};
    const char *esc[] = {big.data};
    buf put = put_body("/cwlogd/large", "s", ts, esc, 1);
    cw_error err;
    expect(request_result("PutLogEvents", &put, &err), &err, CW_EVENT_TOO_LARGE);
    assert_true(err.limit == MAX_EVENT);
    assert_string_equal(err.type, "InvalidParameterException");

    /* Exactly at the limit goes through. */
    big.data[MAX_EVENT] = '\0';
    buf_free(&put);
    put = put_body("/cwlogd/large", "s", ts, esc, 1);
    expect(request_result("PutLogEvents", &put, &err), &err, CW_OK);
    buf_free(&put);
    buf_free(&big);
}

static void test_rejected_old_and_new_events_come_back_as_indices(void **state)
{
    create("/cwlogd/old", "s");
    const int64_t day = 24LL * 3600 * 1000, hour = 3600LL * 1000;
    int64_t now = now_realtime_ms();
    /* A batch spans at most 24 h, so the too old and the too new go apart. */
    const int64_t old_ts[] = {now - 14 * day - 2 * hour, now - 14 * day - hour,
                              now - 14 * day + hour};
    const int64_t new_ts[] = {now + hour, now + 3 * hour};
    const char *old_esc[] = {"ancient", "older", "old enough"};
    const char *new_esc[] = {"soon", "too soon"};
    cw_put_result pr;

    buf put = put_body("/cwlogd/old", "s", old_ts, old_esc, 3);
    world *w = request(AKID, SECRET, NULL, "PutLogEvents", &put);
    expect(w->r, &w->err, CW_OK);
    assert_int_equal(cw_parse_put_response(w->body.data, w->body.len, &pr), 0);
    assert_true(pr.too_old_end == 2 && pr.too_new_start == -1 && pr.expired_end == -1);
    world_free(w);
    buf_free(&put);

    put = put_body("/cwlogd/old", "s", new_ts, new_esc, 2);
    w = request(AKID, SECRET, NULL, "PutLogEvents", &put);
    expect(w->r, &w->err, CW_OK);
    assert_int_equal(cw_parse_put_response(w->body.data, w->body.len, &pr), 0);
    assert_true(pr.too_old_end == -1 && pr.too_new_start == 1 && pr.expired_end == -1);
    world_free(w);
    buf_free(&put);

    json_t *got = fake_control("GET", "/_fake/events", NULL);
    json_t *evs = json_object_get(got, "events");
    assert_int_equal(json_array_size(evs), 2);
    assert_string_equal(str_member(json_array_get(evs, 0), "message"), "old enough");
    assert_string_equal(str_member(json_array_get(evs, 1), "message"), "soon");
    json_decref(got);
}

static void test_skewed_clock_is_a_clock_error(void **state)
{
    buf b = {0};
    cw_body_create_group(&b, "/cwlogd/clock");
    cw_error err;
    fake_post("/_fake/config", "{\"clock_offset\":900}");
    expect(request_result("CreateLogGroup", &b, &err), &err, CW_CLOCK);
    assert_string_equal(err.type, "InvalidSignatureException");
    assert_non_null(strstr(err.message, "Signature expired"));
    fake_post("/_fake/config", "{\"clock_offset\":-900}");
    expect(request_result("CreateLogGroup", &b, &err), &err, CW_CLOCK);
    assert_non_null(strstr(err.message, "not yet current"));
    buf_free(&b);
}

/* Instance-role credentials: the first set expires (the fake's clock moves
 * past it), the service refuses it, and the next request is signed with the
 * set fetched after creds_invalidate(). */
typedef struct rotation {
    const char *op;
    buf body;
    int step;
    cw_result results[3];
    char types[3][96];
} rotation;

static void rotation_done(cw_result r, const cw_error *err, const char *body, size_t len,
                          void *userdata);

static void rotation_send(world *w)
{
    rotation *rot = w->scratch;
    cw_call *call;
    int r = cw_send(w->cl, rot->op, rot->body.data, rot->body.len, rotation_done, w, &call);
    if (r < 0)
        loop_quit(w->l, r);
}

static void rotation_creds(world *w)
{
    rotation *rot = w->scratch;
    /* First set: send. After the refusal: the new set, send again. */
    if (rot->step == 0 || rot->step == 2)
        rotation_send(w);
}

static void rotation_done(cw_result r, const cw_error *err, const char *body, size_t len,
                          void *userdata)
{
    world *w = userdata;
    rotation *rot = w->scratch;
    rot->results[rot->step] = r;
    snprintf(rot->types[rot->step], sizeof(rot->types[0]), "%s", err->type);
    rot->step++;
    if (rot->step == 1) {
        /* The group is there; now the fake's clock passes the set's expiry
         * (but stays within the signature's five minutes of skew). */
        fake_post("/_fake/config", "{\"clock_offset\":250}");
        rot->op = "CreateLogStream";
        rot->body.len = 0;
        cw_body_create_stream(&rot->body, "/cwlogd/rotation", "s");
        rotation_send(w);
    } else if (rot->step == 2) {
        if (r == CW_AUTH)
            creds_invalidate(w->c); /* rotation_creds sends again */
        else
            loop_quit(w->l, 0);
    } else {
        loop_quit(w->l, 0);
    }
}

static void test_new_instance_credentials_are_used_once_they_change(void **state)
{
    fake_post("/_fake/config", "{\"credential_lifetime\":200,\"rotation_window\":10}");
    fake_post("/_fake/rotate", NULL);

    rotation rot = {.op = "CreateLogGroup"};
    cw_body_create_group(&rot.body, "/cwlogd/rotation");
    world *w = world_new(NULL, NULL, NULL, false);
    w->scratch = &rot;
    w->on_creds = rotation_creds;
    creds_start(w->c);
    run(w);

    assert_int_equal(rot.step, 3);
    expect(rot.results[0], &(cw_error){0}, CW_OK);
    expect(rot.results[1], &(cw_error){0}, CW_AUTH);
    assert_string_equal(rot.types[1], "ExpiredTokenException");
    expect(rot.results[2], &(cw_error){0}, CW_OK);
    assert_int_equal(w->creds_changes, 2);
    world_free(w);
    buf_free(&rot.body);
}

static void test_send_without_credentials_is_enokey(void **state)
{
    world *w = world_new(NULL, NULL, NULL, false);
    cw_call *call = (cw_call *)1;
    assert_int_equal(cw_send(w->cl, "CreateLogGroup", "{}", 2, never_called, w, &call), -ENOKEY);
    assert_null(call);
    world_free(w);
}

static void count_done(cw_result r, const cw_error *err, const char *body, size_t len,
                       void *userdata)
{
    world *w = userdata;
    record(w, r, err, body, len);
}

static void test_cancelled_and_orphaned_calls_never_call_back(void **state)
{
    buf b = {0};
    cw_body_create_group(&b, "/cwlogd/cancel");
    install_faults("[{\"op\":\"logs\",\"kind\":\"latency\",\"seconds\":0.4}]");

    world *w = world_new(AKID, SECRET, NULL, true);
    cw_call *a = NULL, *c = NULL;
    assert_int_equal(cw_send(w->cl, "CreateLogGroup", b.data, b.len, count_done, w, &a), 0);
    assert_int_equal(cw_send(w->cl, "CreateLogGroup", b.data, b.len, count_done, w, &c), 0);
    assert_ptr_not_equal(a, c);
    cw_cancel(a);
    cw_cancel(NULL);
    run_for(w, 1500);
    assert_int_equal(w->n_done, 1);
    expect(w->r, &w->err, CW_OK);
    world_free(w);

    /* Freeing the client drops what it has in flight. */
    w = world_new(AKID, SECRET, NULL, true);
    for (int i = 0; i < 3; i++)
        assert_int_equal(cw_send(w->cl, "CreateLogGroup", b.data, b.len, count_done, w, &a), 0);
    cw_client_free(w->cl);
    w->cl = NULL;
    run_for(w, 800);
    assert_int_equal(w->n_done, 0);
    world_free(w);
    buf_free(&b);
}

static void free_client_done(cw_result r, const cw_error *err, const char *body, size_t len,
                             void *userdata)
{
    world *w = userdata;
    record(w, r, err, body, len);
    /* The uploader may shut down from a callback. */
    cw_client_free(w->cl);
    w->cl = NULL;
    if (w->n_done == 1)
        loop_quit(w->l, 0);
}

static void test_callback_may_free_the_client(void **state)
{
    buf b = {0};
    cw_body_create_group(&b, "/cwlogd/free");
    world *w = world_new(AKID, SECRET, NULL, true);
    cw_call *call;
    assert_int_equal(cw_send(w->cl, "CreateLogGroup", b.data, b.len, free_client_done, w, &call),
                     0);
    install_faults("[{\"op\":\"logs\",\"kind\":\"latency\",\"seconds\":0.3}]");
    assert_int_equal(cw_send(w->cl, "CreateLogGroup", b.data, b.len, free_client_done, w, &call),
                     0);
    run(w);
    assert_int_equal(w->n_done, 1);
    assert_null(w->cl);
    world_free(w);
    buf_free(&b);
}

/* ---- against a canned answer, to see the request and exotic responses ------------------- */

typedef struct canned {
    int lfd;
    int port;
    char *response;
    buf request;
    pthread_t thread;
} canned;

static void *canned_serve(void *arg)
{
    canned *c = arg;
    struct pollfd p = {.fd = c->lfd, .events = POLLIN};
    if (poll(&p, 1, 10000) <= 0)
        return NULL;
    int fd = accept4(c->lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t need = SIZE_MAX;
    while (c->request.len < need) {
        p = (struct pollfd){.fd = fd, .events = POLLIN};
        char chunk[4096];
        if (poll(&p, 1, 10000) <= 0)
            break;
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n <= 0)
            break;
        buf_append(&c->request, chunk, (size_t)n);
        buf_appendc(&c->request, '\0');
        c->request.len--;
        const char *end = strstr(c->request.data, "\r\n\r\n");
        const char *cl = strcasestr(c->request.data, "\r\nContent-Length:");
        if (end && cl)
            need = (size_t)(end + 4 - c->request.data) + strtoul(cl + 17, NULL, 10);
    }
    if (write(fd, c->response, strlen(c->response)) < 0)
        perror("canned write");
    close(fd);
    return NULL;
}

/* head: the status line and headers; Content-Length and Connection are added. */
static void canned_start(canned *c, const char *head, const char *body)
{
    *c = (canned){.response = xasprintf("%s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                                        head, strlen(body), body)};
    c->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(c->lfd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(c->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(c->lfd, 4), 0);
    socklen_t sl = sizeof(sa);
    assert_int_equal(getsockname(c->lfd, (struct sockaddr *)&sa, &sl), 0);
    c->port = ntohs(sa.sin_port);
    assert_int_equal(pthread_create(&c->thread, NULL, canned_serve, c), 0);
}

static void canned_stop(canned *c)
{
    pthread_join(c->thread, NULL);
    close(c->lfd);
    free(c->response);
    c->response = NULL;
}

static world *canned_request(canned *c, const char *token, const char *op, const char *body)
{
    world *w = world_new(AKID, SECRET, token, true);
    cw_client_free(w->cl);
    _cleanup_free_ char *endpoint = xasprintf("http://127.0.0.1:%d", c->port);
    w->cl = cw_client_new(w->h, w->c, "eu-west-3", endpoint, NULL);
    assert_non_null(w->cl);
    cw_call *call;
    assert_int_equal(cw_send(w->cl, op, body, strlen(body), done_quit, w, &call), 0);
    run(w);
    assert_int_equal(w->n_done, 1);
    return w;
}

static void test_request_carries_signed_json_headers(void **state)
{
    canned c;
    canned_start(&c,
                 "HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\n"
                 "x-amzn-RequestId: 0f2c-canned",
                 "{}");
    world *w = canned_request(&c, TOKEN, "DescribeLogGroups", "{\"limit\":1}");
    expect(w->r, &w->err, CW_OK);
    assert_string_equal(w->err.request_id, "0f2c-canned");
    assert_string_equal(w->body.data, "{}");
    world_free(w);
    canned_stop(&c);

    assert_non_null(c.request.data);
    const char *req = c.request.data;
    _cleanup_free_ char *host = xasprintf("\r\nHost: 127.0.0.1:%d\r\n", c.port);
    assert_true(strncmp(req, "POST / HTTP/1.1\r\n", 17) == 0);
    assert_non_null(strstr(req, host));
    assert_non_null(strstr(req, "\r\nContent-Type: application/x-amz-json-1.1\r\n"));
    assert_non_null(strstr(req, "\r\nX-Amz-Target: Logs_20140328.DescribeLogGroups\r\n"));
    assert_non_null(strstr(req, "\r\nX-Amz-Security-Token: " TOKEN "\r\n"));
    assert_non_null(strstr(req, "\r\nX-Amz-Date: "));
    assert_non_null(strstr(req, "\r\nAuthorization: AWS4-HMAC-SHA256 Credential=" AKID "/"));
    assert_non_null(strstr(req, "/eu-west-3/logs/aws4_request, "
                                "SignedHeaders=content-type;host;x-amz-date;"
                                "x-amz-security-token;x-amz-target, Signature="));
    assert_non_null(strstr(req, "\r\n\r\n{\"limit\":1}"));
    buf_free(&c.request);
}

static void test_error_type_from_header_alone_is_understood(void **state)
{
    static const struct {
        const char *head, *body;
        cw_result kind;
        const char *type, *message;
    } cases[] = {
        {"HTTP/1.1 400 Bad Request\r\n"
         "x-amzn-ErrorType: "
         "ThrottlingException:http://internal.amazon.com/coral/com.amazon.coral.availability/\r\n"
         "x-amzn-RequestId: rid-1",
         "{\"message\":\"Rate exceeded\"}", CW_RETRY, "ThrottlingException", "Rate exceeded"},
        /* The header wins over a body that says something else. */
        {"HTTP/1.1 400 Bad Request\r\n"
         "X-Amzn-ErrorType: "
         "ResourceNotFoundException:http://internal.amazon.com/coral/com.amazonaws.logs/\r\n"
         "x-amzn-requestid: rid-2",
         "{\"__type\":\"Bogus\",\"Message\":\"no such stream\"}", CW_NOT_FOUND,
         "ResourceNotFoundException", "no such stream"},
        {"HTTP/1.1 400 Bad Request\r\nx-amzn-ErrorType:   ExpiredTokenException  \r\n"
         "x-amzn-RequestId: rid-3",
         "not json!", CW_AUTH, "ExpiredTokenException", ""},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        canned c;
        canned_start(&c, cases[i].head, cases[i].body);
        world *w = canned_request(&c, NULL, "PutLogEvents", "{}");
        expect(w->r, &w->err, cases[i].kind);
        assert_string_equal(w->err.type, cases[i].type);
        assert_string_equal(w->err.message, cases[i].message);
        _cleanup_free_ char *rid = xasprintf("rid-%zu", i + 1);
        assert_string_equal(w->err.request_id, rid);
        world_free(w);
        canned_stop(&c);
        /* No token, so none is sent or signed. */
        assert_non_null(c.request.data);
        assert_null(strcasestr(c.request.data, "x-amz-security-token"));
        buf_free(&c.request);
    }
}

int main(void)
{
    const struct CMUnitTest offline[] = {
        cmocka_unit_test(test_classify_marks_throttling_and_only_throttling),
        cmocka_unit_test(test_put_body_escapes_group_and_stream_names),
        cmocka_unit_test(test_put_body_copies_escaped_messages_byte_for_byte),
        cmocka_unit_test(test_put_body_formats_every_timestamp_exactly),
        cmocka_unit_test(test_put_body_appends_after_existing_bytes),
        cmocka_unit_test(test_create_and_retention_bodies_hold_exactly_their_fields),
        cmocka_unit_test(test_describe_group_body_and_its_retention_in_the_answer),
        cmocka_unit_test(test_classify_table),
        cmocka_unit_test(test_classify_accepts_null_error_and_truncates_long_messages),
        cmocka_unit_test(test_classify_keeps_only_the_first_line_of_messages),
        cmocka_unit_test(test_strerror_names_every_result),
        cmocka_unit_test(test_put_response_parses_rejected_indices),
        cmocka_unit_test(test_put_response_refuses_garbage),
        cmocka_unit_test(test_put_response_reads_only_len_bytes),
        cmocka_unit_test(test_client_url_follows_region_or_endpoint),
        cmocka_unit_test(test_client_refuses_bad_endpoints_and_regions),
        cmocka_unit_test(test_client_without_region_waits_for_one),
    };
    const struct CMUnitTest against_fake[] = {
        cmocka_unit_test_setup(test_events_reach_the_service_as_sent, fake_reset),
        cmocka_unit_test_setup(test_session_token_is_sent_and_signed, fake_reset),
        cmocka_unit_test_setup(test_wrong_secret_is_an_auth_error, fake_reset),
        cmocka_unit_test_setup(test_throttling_is_retried_and_the_retry_lands_once, fake_reset),
        cmocka_unit_test_setup(test_resets_5xx_and_foreign_errors_are_told_apart, fake_reset),
        cmocka_unit_test_setup(test_too_large_event_reports_the_service_limit, fake_reset),
        cmocka_unit_test_setup(test_rejected_old_and_new_events_come_back_as_indices, fake_reset),
        cmocka_unit_test_setup(test_skewed_clock_is_a_clock_error, fake_reset),
        cmocka_unit_test_setup(test_new_instance_credentials_are_used_once_they_change, fake_reset),
        cmocka_unit_test_setup(test_send_without_credentials_is_enokey, fake_reset),
        cmocka_unit_test_setup(test_cancelled_and_orphaned_calls_never_call_back, fake_reset),
        cmocka_unit_test_setup(test_callback_may_free_the_client, fake_reset),
        cmocka_unit_test_setup(test_request_carries_signed_json_headers, fake_reset),
        cmocka_unit_test_setup(test_error_type_from_header_alone_is_understood, fake_reset),
    };
    int failed = cmocka_run_group_tests_name("cloudwatch offline", offline, NULL, NULL);
    failed += cmocka_run_group_tests_name("cloudwatch against fake_aws", against_fake, fake_start,
                                          fake_stop);
    return failed;
}
