/* trust.h: whether a file a source found may be read. cwlogd can read every
 * file on the host (CAP_DAC_READ_SEARCH): a symlink that a container or a
 * local user placed where it looks must not make it read what they cannot,
 * and pseudo file systems are not logs. */
#pragma once

#include <stddef.h>
#include <sys/stat.h>

/* Resolves path as open() would, and checks every symlink met on the way
 * (in any component, links to links included): it is followed only when
 * root owns it or its owner owns what it leads to. 0 with *target the
 * file's stat (to compare with what is then opened); -EPERM with the reason
 * in why; or the -errno of a lookup. */
int trust_path(const char *path, struct stat *target, char *why, size_t why_len);

/* Whether an open file is on a file system that holds logs: procfs, sysfs,
 * debugfs, cgroup and the like are refused. 0, or -EPERM with *fs_name set. */
int trust_fs(int fd, const char **fs_name);
