/* trust.c: which files a source may read: symlinks only from root or from
 * the owner of their target, and never pseudo file systems (see trust.h). */
#include "trust.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "util.h"

#define TRUST_MAX_LINKS 40 /* as the kernel's ELOOP */

/* Drop the last component of a resolved path ("/a/b" -> "/a", "/a" -> ""). */
static void drop_last(char *resolved)
{
    char *slash = strrchr(resolved, '/');
    if (slash)
        *slash = 0;
}

int trust_path(const char *path, struct stat *target, char *why, size_t why_len)
{
    /* `done` is resolved, without a trailing '/' ("" is the root); `rest`
     * is what is left to walk, a symlink's target put in front of it. */
    buf done = {0}, rest = {0};
    int r = 0, links = 0;
    if (path[0] != '/')
        buf_append(&done, ".", 1);
    buf_append(&rest, path, strlen(path));
    buf_appendc(&rest, 0);
    buf_appendc(&done, 0);
    done.len--;
    size_t pos = 0;
    while (r == 0) {
        while (rest.data[pos] == '/')
            pos++;
        if (!rest.data[pos])
            break;
        size_t n = strcspn(rest.data + pos, "/");
        _cleanup_free_ char *comp = xstrndup(rest.data + pos, n);
        pos += n;
        if (strcmp(comp, ".") == 0)
            continue;
        if (strcmp(comp, "..") == 0) {
            drop_last(done.data);
            done.len = strlen(done.data);
            continue;
        }
        size_t keep = done.len;
        buf_appendc(&done, '/');
        buf_append(&done, comp, n);
        buf_appendc(&done, 0);
        done.len--;
        struct stat lst, tst;
        if (lstat(done.data, &lst) < 0) {
            r = -errno;
            break;
        }
        if (!S_ISLNK(lst.st_mode))
            continue;
        if (++links > TRUST_MAX_LINKS) {
            r = -ELOOP;
            break;
        }
        if (stat(done.data, &tst) < 0) {
            r = -errno;
            break;
        }
        if (lst.st_uid != 0 && lst.st_uid != tst.st_uid) {
            snprintf(why, why_len,
                     "%s is a symlink owned by uid %u to a file owned by uid %u (only links "
                     "owned by root or by their target's owner are followed)",
                     done.data, (unsigned)lst.st_uid, (unsigned)tst.st_uid);
            r = -EPERM;
            break;
        }
        char link[PATH_MAX];
        ssize_t ln = readlink(done.data, link, sizeof link - 1);
        if (ln < 0) {
            r = -errno;
            break;
        }
        /* The link's target goes in front of what is left. */
        buf next = {0};
        buf_append(&next, link, (size_t)ln);
        buf_appendc(&next, '/');
        buf_append(&next, rest.data + pos, strlen(rest.data + pos));
        buf_appendc(&next, 0);
        buf_free(&rest);
        rest = next;
        pos = 0;
        if (link[0] == '/')
            keep = 0;
        done.len = keep;
        buf_appendc(&done, 0);
        done.len--;
    }
    if (r == 0 && stat(path, target) < 0)
        r = -errno;
    buf_free(&done);
    buf_free(&rest);
    return r;
}

int trust_fs(int fd, const char **fs_name)
{
    /* Values of <linux/magic.h>: file systems whose files are made up by
     * the kernel as they are read, and may say size 0 and return data. */
    static const struct {
        unsigned long magic;
        const char *name;
    } pseudo[] = {
        {0x9fa0, "procfs"},          {0x62656572, "sysfs"},      {0x64626720, "debugfs"},
        {0x74726163, "tracefs"},     {0x73636673, "securityfs"}, {0x27e0eb, "cgroup"},
        {0x63677270, "cgroup2"},     {0xcafe4a11, "bpf"},        {0x62656570, "configfs"},
        {0x6165676c, "pstore"},      {0xde5e81e4, "efivarfs"},   {0xf97cff8c, "selinuxfs"},
        {0x43415d53, "smackfs"},     {0x1cd1, "devpts"},         {0x65735543, "fusectl"},
        {0x42494e4d, "binfmt_misc"}, {0x6e736673, "nsfs"},       {0x19800202, "mqueue"},
        {0x7655821, "resctrl"},
    };
    struct statfs sf;
    if (fstatfs(fd, &sf) < 0)
        return -errno;
    for (size_t i = 0; i < ARRAY_SIZE(pseudo); i++)
        if ((unsigned long)sf.f_type == pseudo[i].magic) {
            *fs_name = pseudo[i].name;
            return -EPERM;
        }
    return 0;
}
