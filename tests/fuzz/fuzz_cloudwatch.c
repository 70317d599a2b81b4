/* fuzz_cloudwatch.c: CloudWatch Logs responses: the PutLogEvents answer and
 * error classification from a status and a body. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cloudwatch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    /* First two bytes choose the status; the rest is the body. */
    static const long statuses[] = {200, 400, 403, 404, 413, 429, 500, 503};
    long status = statuses[data[0] % 8];
    buf body = {0};
    buf_append(&body, data + 2, size - 2);
    buf_appendc(&body, 0);
    http_response r = {.status = status, .body = body.data, .body_len = size - 2,
                       .transport_error = data[1] == 0xff ? 7 : 0};
    cw_error err;
    cw_result kind = cw_classify(&r, &err);
    if ((int)kind < CW_OK || kind > CW_UNEXPECTED || strlen(err.message) >= sizeof err.message)
        __builtin_trap();
    cw_put_result pr;
    if (cw_parse_put_response(body.data, size - 2, &pr) == 0 &&
        (pr.too_new_start < -1 || pr.too_old_end < -1 || pr.expired_end < -1))
        __builtin_trap();
    buf_free(&body);
    return 0;
}
