# Helpers shared by the packaging tests (sourced, not run).
# A test prints what it checks, exits 0 when all passed, 1 at the first
# failure and 77 (CTest's SKIP_RETURN_CODE) when a tool it needs is missing.

set -euo pipefail

src="${CWLOGD_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
version="$(sed -n 's/^project(cwlogd VERSION \([0-9][0-9.]*\).*/\1/p' "$src/CMakeLists.txt")"
n_checks=0

pass() {
    n_checks=$((n_checks + 1))
    echo "ok: $*"
}

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

skip() {
    echo "SKIP: $*"
    exit 77
}

need_tools() {
    local t
    for t in "$@"; do
        command -v "$t" >/dev/null 2>&1 ||
            skip "$t is not installed (scripts/deps installs it where the system has it)"
    done
}

# The files every package and `cmake --install` must install, with the unit
# directory written as usr/lib/systemd/system, man pages uncompressed and no
# leading slash.
expected_files() {
    cat <<'LIST'
etc/cwlogd/cwlogd.conf
usr/bin/cwlogd
usr/lib/systemd/system/cwlogd.service
usr/lib/sysusers.d/cwlogd.conf
usr/share/man/man5/cwlogd.conf.5
usr/share/man/man8/cwlogd.8
LIST
}

# Read paths of installed files (not directories) on stdin and write them in
# the form of expected_files, leaving out what only one kind of package adds
# (Debian's copyright, changelog and lintian overrides, RPM's build-id links).
normalize_files() {
    sed -e 's|^\./||' -e 's|^/||' -e 's|^lib/|usr/lib/|' -e 's|\.gz$||' |
        { grep -v -e '^usr/share/doc/cwlogd/' -e '^usr/share/lintian/overrides/cwlogd$' \
            -e '^usr/lib/\.build-id/' || true; } | sort
}

# compare_files WHAT < list: fail unless the list is the expected file set.
compare_files() {
    local what="$1" got
    got="$(normalize_files)"
    if [ "$got" != "$(expected_files | sort)" ]; then
        diff -u <(expected_files | sort) <(printf '%s\n' "$got") >&2 || true
        fail "$what does not install the expected files (- expected, + installed)"
    fi
    pass "$what installs exactly the expected files"
}

finish() {
    echo "$n_checks passed, 0 failed"
}
