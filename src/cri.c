/* cri.c: CRI log lines as containerd and CRI-O write them,
 * "<RFC3339Nano> <stdout|stderr> <P|F>[:more tags] <message>". */
#include "cri.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

#include "timeparse.h"

int cri_parse_line(const char *line, size_t len, cri_entry *e)
{
    assert(line || len == 0);
    assert(e);

    const char *end = line + len;
    const char *sp = len ? memchr(line, ' ', len) : NULL;
    if (!sp)
        return -EINVAL;

    int64_t time_ms;
    if (timeparse_rfc3339_ms(line, (size_t)(sp - line), &time_ms) < 0)
        return -EINVAL;

    /* The writers use exactly one space between fields; the stream name must
     * be followed by one before the tag. */
    const char *p = sp + 1;
    int stream;
    if (end - p < 7 || p[6] != ' ')
        return -EINVAL;
    if (memcmp(p, "stdout", 6) == 0)
        stream = 1;
    else if (memcmp(p, "stderr", 6) == 0)
        stream = 2;
    else
        return -EINVAL;
    p += 7;

    const char *tag = p;
    const char *tag_end = memchr(tag, ' ', (size_t)(end - tag));
    if (!tag_end)
        tag_end = end;
    /* The tag may be a ':'-separated list; its first part is P or F. */
    const char *first_end = memchr(tag, ':', (size_t)(tag_end - tag));
    if (!first_end)
        first_end = tag_end;
    if (first_end - tag != 1 || (tag[0] != 'P' && tag[0] != 'F'))
        return -EINVAL;

    const char *msg = tag_end < end ? tag_end + 1 : end;
    *e = (cri_entry){
        .time_ms = time_ms,
        .stream = stream,
        .partial = tag[0] == 'P',
        .msg = msg,
        .msg_len = (size_t)(end - msg),
    };
    return 0;
}
