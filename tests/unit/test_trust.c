/* test_trust.c: which symlinks a source follows (root's, or the target
 * owner's; in every component, links to links included) and which file
 * systems it refuses (procfs, sysfs). The owner cases need root to give
 * links to another user, and skip without it. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "trust.h"
#include "util.h"

#define NOBODY 65534

typedef struct fixture {
    char dir[64];
} fixture;

static int setup(void **state)
{
    fixture *fx = xcalloc(1, sizeof *fx);
    strcpy(fx->dir, "/tmp/cwlogd-trust-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    _cleanup_free_ char *cmd = xasprintf("rm -rf '%s'", fx->dir);
    assert_int_equal(system(cmd), 0);
    free(fx);
    return 0;
}

static char *make_file(const fixture *fx, const char *name, uid_t owner)
{
    char *p = xasprintf("%s/%s", fx->dir, name);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "x\n", 2), 2);
    close(fd);
    assert_int_equal(chown(p, owner, owner), 0);
    return p;
}

static char *make_link(const fixture *fx, const char *name, const char *target, uid_t owner)
{
    char *p = xasprintf("%s/%s", fx->dir, name);
    assert_int_equal(symlink(target, p), 0);
    assert_int_equal(lchown(p, owner, owner), 0);
    return p;
}

static int check(const char *path, char *why, size_t n)
{
    struct stat st;
    why[0] = 0;
    return trust_path(path, &st, why, n);
}

static void test_links_from_root_or_the_targets_owner_are_followed_others_not(void **state)
{
    fixture *fx = *state;
    if (geteuid() != 0)
        skip(); /* giving a link to uid 65534 needs root */
    char why[512];
    _cleanup_free_ char *secret = make_file(fx, "secret", 0);
    _cleanup_free_ char *own = make_file(fx, "own", NOBODY);
    _cleanup_free_ char *bad = make_link(fx, "bad.log", secret, NOBODY);
    _cleanup_free_ char *rootl = make_link(fx, "root.log", secret, 0);
    _cleanup_free_ char *mine = make_link(fx, "mine.log", "own", NOBODY); /* relative */
    assert_int_equal(check(bad, why, sizeof why), -EPERM);
    _cleanup_free_ char *want = xasprintf("%s is a symlink owned by uid 65534 to a file owned "
                                          "by uid 0",
                                          bad);
    assert_non_null(strstr(why, want));
    assert_int_equal(check(rootl, why, sizeof why), 0);
    assert_int_equal(check(mine, why, sizeof why), 0);
    struct stat st, real;
    assert_int_equal(trust_path(mine, &st, why, sizeof why), 0);
    assert_int_equal(stat(own, &real), 0);
    assert_true(st.st_ino == real.st_ino && st.st_dev == real.st_dev);

    /* Root's link to nobody's link to root's file: the second link decides. */
    _cleanup_free_ char *hop = make_link(fx, "hop.log", bad, 0);
    assert_int_equal(check(hop, why, sizeof why), -EPERM);
    assert_non_null(strstr(why, want));

    /* A directory component: nobody's link to a root-only directory. */
    _cleanup_free_ char *priv = xasprintf("%s/priv", fx->dir);
    assert_int_equal(mkdir(priv, 0700), 0);
    _cleanup_free_ char *inner = xasprintf("%s/priv/app.log", fx->dir);
    free(make_file(fx, "priv/app.log", 0));
    _cleanup_free_ char *dl = make_link(fx, "dirlink", priv, NOBODY);
    _cleanup_free_ char *via = xasprintf("%s/dirlink/app.log", fx->dir);
    assert_int_equal(check(via, why, sizeof why), -EPERM);
    _cleanup_free_ char *via_root = xasprintf("%s/dirlink/../priv/app.log", fx->dir);
    assert_int_equal(check(via_root, why, sizeof why), -EPERM); /* ".." after the link */
    assert_int_equal(check(inner, why, sizeof why), 0);
    (void)dl;
}

static void test_plain_paths_missing_files_and_loops(void **state)
{
    fixture *fx = *state;
    char why[256];
    _cleanup_free_ char *f = make_file(fx, "plain.log", getuid());
    assert_int_equal(check(f, why, sizeof why), 0);
    _cleanup_free_ char *missing = xasprintf("%s/none.log", fx->dir);
    assert_int_equal(check(missing, why, sizeof why), -ENOENT);
    _cleanup_free_ char *a = xasprintf("%s/a", fx->dir), *b = xasprintf("%s/b", fx->dir);
    assert_int_equal(symlink(b, a), 0);
    assert_int_equal(symlink(a, b), 0);
    assert_int_equal(check(a, why, sizeof why), -ELOOP);
}

static void test_proc_and_sys_files_are_refused_regular_files_are_not(void **state)
{
    fixture *fx = *state;
    const char *fs = NULL;
    int fd = open("/proc/self/status", O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(trust_fs(fd, &fs), -EPERM);
    assert_string_equal(fs, "procfs");
    close(fd);
    fd = open("/sys/kernel/uevent_seqnum", O_RDONLY);
    if (fd >= 0) {
        assert_int_equal(trust_fs(fd, &fs), -EPERM);
        assert_string_equal(fs, "sysfs");
        close(fd);
    }
    _cleanup_free_ char *f = make_file(fx, "plain.log", getuid());
    fd = open(f, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(trust_fs(fd, &fs), 0);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_links_from_root_or_the_targets_owner_are_followed_others_not, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plain_paths_missing_files_and_loops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proc_and_sys_files_are_refused_regular_files_are_not,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
