/* fuzz_cri.c: the CRI line parser and escaping of its raw message. */
#include <stddef.h>
#include <stdint.h>

#include "cri.h"
#include "jsonstr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cri_entry e;
    if (cri_parse_line((const char *)data, size, &e) < 0)
        return 0;
    if (e.msg < (const char *)data || e.msg + e.msg_len > (const char *)data + size)
        __builtin_trap();
    buf b = {0};
    size_t utf8;
    jsonstr_escape(&b, e.msg, e.msg_len, &utf8);
    size_t end, u2;
    bool nl;
    buf_appendc(&b, '"');
    if (jsonstr_scan(b.data, b.len, &end, &u2, &nl) != JSONSTR_OK || u2 != utf8)
        __builtin_trap();
    buf_free(&b);
    return 0;
}
