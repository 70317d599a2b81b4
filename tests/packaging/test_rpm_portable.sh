#!/usr/bin/env bash
# The RPM for Amazon Linux 2023, built on a host that is not (Debian in CI):
# scripts/package rpm, and scripts/package rpm --arch arm64 when the cross
# tools are installed, must give packages whose every requirement
# (`rpm -qpR`) and every (library, symbol version) the packaged binary needs
# (`objdump -p`, `objdump -T`) is one Amazon Linux 2023 provides: the
# allow-list al2023-requires.txt, with where each fact comes from. No glibc
# symbol newer than GLIBC_2.34, no libinih (linked statically), no Debian
# libcurl symbol version, no RPATH. Nothing is installed: no Amazon Linux
# userspace is reachable from the build machine.
. "$(dirname "$0")/lib.sh"

need_tools rpmbuild rpm rpm2archive objdump tar
if rpm -q rpm >/dev/null 2>&1; then
    skip "this is an RPM-based system: scripts/package rpm builds the native package here, not the portable one"
fi

allow="$src/tests/packaging/al2023-requires.txt"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/cwlogd-rpm-portable.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
grep -v -e '^#' -e '^[[:space:]]*$' "$allow" | sed 's/.*/^(&)$/' >"$tmp/allow.ere"

# not_allowed < lines: print the lines no pattern of the allow-list matches.
not_allowed() {
    grep -v -E -f "$tmp/allow.ere" || true
}

# ---- the allow-list refuses what the issue found, and what would be too new --
bad="libcurl.so.4(CURL_OPENSSL_4)(64bit)
libinih.so.1()(64bit)
libinih.so.0()(64bit)
libc.so.6(GLIBC_2.35)(64bit)
libc.so.6(GLIBC_2.38)(64bit)
libc.so.6(GLIBC_PRIVATE)(64bit)
libcrypto.so.3(OPENSSL_3.2.0)(64bit)
libsystemd.so.0(LIBSYSTEMD_253)(64bit)
libz.so.1(ZLIB_1.2.12)(64bit)
libssl.so.3()(64bit)
libcurl.so.4()"
[ "$(printf '%s\n' "$bad" | not_allowed)" = "$bad" ] ||
    fail "the allow-list accepts requirements Amazon Linux 2023 does not provide:
$(printf '%s\n' "$bad" | grep -E -f "$tmp/allow.ere")"
good="libc.so.6(GLIBC_2.34)(64bit)
libc.so.6(GLIBC_2.2.5)(64bit)
libc.so.6(GLIBC_2.3.4)(64bit)
libsystemd.so.0(LIBSYSTEMD_252)(64bit)
libcurl.so.4()(64bit)"
[ -z "$(printf '%s\n' "$good" | not_allowed)" ] ||
    fail "the allow-list refuses what Amazon Linux 2023 provides: $(printf '%s\n' "$good" | not_allowed)"
pass "the allow-list refuses CURL_OPENSSL_4, libinih, GLIBC_2.35+, OPENSSL_3.2.0, LIBSYSTEMD_253"

# check_rpm RPM ARCH ELF_MACHINE: the requirements of RPM and of its
# /usr/bin/cwlogd, which must be built for ARCH (x86_64: 62, aarch64: 183).
check_rpm() {
    local rpm_file="$1" elf_arch="$2" elf_machine="$3" name d
    name="$(basename "$rpm_file")"
    d="$tmp/$name.d"
    mkdir -p "$d"

    rpm -qpR "$rpm_file" 2>/dev/null | sed 's/[[:space:]]*$//' | sort -u >"$d/requires"
    [ -s "$d/requires" ] || fail "rpm -qpR $name printed nothing"
    local out
    out="$(not_allowed <"$d/requires")"
    [ -z "$out" ] || fail "$name requires what Amazon Linux 2023 does not provide (not in $(basename "$allow")):
$out"
    grep -qx 'libcurl.so.4()(64bit)' "$d/requires" || fail "$name does not require libcurl.so.4 (linked?)"
    pass "$name: every rpm -qpR line is on the allow-list ($(wc -l <"$d/requires") lines)"

    rpm2archive - <"$rpm_file" | tar -xzf - -C "$d" ./usr/bin/cwlogd ||
        fail "cannot extract /usr/bin/cwlogd from $name"
    local bin="$d/usr/bin/cwlogd"
    # e_machine (objdump of another architecture may not name it)
    local machine
    machine="$(od -An -t u2 -j 18 -N 2 "$bin" | tr -d ' ')"
    [ "$machine" = "$elf_machine" ] || fail "$name's cwlogd is not $elf_arch (ELF machine $machine, expected $elf_machine)"
    objdump -p "$bin" >"$d/private"
    if grep -E '^ *(RPATH|RUNPATH) ' "$d/private"; then
        fail "$name's cwlogd carries a run-time library path"
    fi
    # NEEDED sonames and "required from LIB:" versions, written as rpm does.
    awk '$1 == "NEEDED" { print $2 "()(64bit)" }
         /^  required from / { lib = $3; sub(/:$/, "", lib); next }
         lib != "" && /^    0x/ { print lib "(" $4 ")(64bit)" }
         /^$/ { lib = "" }' "$d/private" | sort -u >"$d/elfneeds"
    grep -q '^libc\.so\.6(GLIBC_' "$d/elfneeds" || fail "objdump -p of $name's cwlogd shows no glibc version: parsing failed?"
    out="$(not_allowed <"$d/elfneeds")"
    [ -z "$out" ] || fail "$name's cwlogd needs what Amazon Linux 2023 does not provide (objdump -p):
$out"
    if grep -q libinih "$d/elfneeds"; then fail "$name's cwlogd links libinih dynamically"; fi

    # Each dynamic symbol's version (objdump -T): name the symbols that would
    # need a glibc newer than 2.34.
    objdump -T "$bin" | awk '$3 == "*UND*" && $(NF-1) ~ /^\(?GLIBC_/ {
            v = $(NF-1); gsub(/[()]/, "", v); print v, $NF }' >"$d/glibc-syms"
    [ -s "$d/glibc-syms" ] || fail "objdump -T of $name's cwlogd shows no glibc symbols: parsing failed?"
    out="$(awk '{ split(substr($1, 7), n, "."); if ($1 == "GLIBC_PRIVATE" || n[1] > 2 || (n[1] == 2 && n[2] > 34)) print }' \
        "$d/glibc-syms")"
    [ -z "$out" ] || fail "$name's cwlogd uses glibc symbols newer than GLIBC_2.34:
$out"
    if objdump -T "$bin" | grep -E '\(?CURL_[A-Z0-9_]+\)? +curl_'; then
        fail "$name's cwlogd references libcurl symbol versions (above)"
    fi
    pass "$name: cwlogd ($elf_arch) needs $(grep -c '()' "$d/elfneeds") sonames, all allowed; newest glibc symbol version $(cut -d' ' -f1 "$d/glibc-syms" | sort -V | tail -1); no CURL_* version, no libinih, no RPATH"
}

# ---- the package for this machine --------------------------------------------
"$src/scripts/package" rpm --outdir "$tmp/host" >"$tmp/host.log" 2>&1 ||
    fail "scripts/package rpm failed:
$(tail -40 "$tmp/host.log")"
host_rpm="$(ls "$tmp"/host/cwlogd-"$version"-*.rpm | grep -v '\.src\.rpm$' | head -1)"
[ -n "$host_rpm" ] || fail "scripts/package rpm built no binary package"
case "$(uname -m)" in
x86_64) check_rpm "$host_rpm" x86_64 62 ;;
aarch64) check_rpm "$host_rpm" aarch64 183 ;;
*) skip "no allow-list for $(uname -m): Amazon Linux 2023 runs on x86_64 and aarch64" ;;
esac

# ---- arm64, cross-built -----------------------------------------------------------
if [ "$(uname -m)" = x86_64 ]; then
    if command -v aarch64-linux-gnu-gcc >/dev/null && command -v aarch64-linux-gnu-pkg-config >/dev/null &&
        command -v qemu-aarch64-static >/dev/null && [ -e /lib/ld-linux-aarch64.so.1 ]; then
        "$src/scripts/package" rpm --arch arm64 --outdir "$tmp/arm64" >"$tmp/arm64.log" 2>&1 ||
            fail "scripts/package rpm --arch arm64 failed:
$(tail -40 "$tmp/arm64.log")"
        grep -q 'configuration is valid' "$tmp/arm64.log" ||
            fail "the arm64 build's %check (under qemu) did not validate the shipped configuration"
        arm_rpm="$tmp/arm64/cwlogd-$version-1.aarch64.rpm"
        [ -f "$arm_rpm" ] || fail "scripts/package rpm --arch arm64 built no cwlogd-$version-1.aarch64.rpm: $(ls "$tmp/arm64")"
        check_rpm "$arm_rpm" aarch64 183
    else
        echo "note: no arm64 cross tools (scripts/deps installs them on Debian/Ubuntu): the aarch64 RPM is not checked"
    fi
fi

finish
