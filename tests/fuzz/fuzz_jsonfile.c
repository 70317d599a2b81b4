/* fuzz_jsonfile.c: the json-file line parser and the string helpers it feeds. */
#include <stddef.h>
#include <stdint.h>

#include "jsonfile.h"
#include "jsonstr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    jsonfile_entry e;
    jsonfile_result r = jsonfile_parse_line((const char *)data, size, &e);
    if (r == JSONFILE_CORRUPT)
        return 0;
    buf b = {0};
    size_t utf8 = 0;
    if (r == JSONFILE_NEEDS_REPAIR) {
        jsonstr_repair(&b, e.log, e.log_len, &utf8);
    } else {
        buf_append(&b, e.log, e.log_len);
        utf8 = e.utf8_len;
    }
    /* Whatever is shipped must scan as valid and cut cleanly. */
    size_t end, u2;
    bool nl;
    buf_appendc(&b, '"');
    if (jsonstr_scan(b.data, b.len, &end, &u2, &nl) != JSONSTR_OK || u2 != utf8)
        __builtin_trap();
    size_t pu;
    size_t cut = jsonstr_cut(b.data, b.len - 1, 1024, &pu);
    if (cut > b.len - 1 || pu > 1024)
        __builtin_trap();
    buf u = {0};
    jsonstr_unescape(&u, b.data, b.len - 1);
    buf_free(&u);
    buf_free(&b);
    return 0;
}
