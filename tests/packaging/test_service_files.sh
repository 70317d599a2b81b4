#!/usr/bin/env bash
# The systemd unit, the sysusers.d entry, the man pages and the shipped
# configuration, checked offline (no running systemd needed):
# - `systemd-analyze verify` reports nothing, and does report a broken copy;
# - `systemd-analyze security --offline=true` exposure is at most 1.5;
# - the unit keeps the settings the service relies on;
# - systemd-sysusers accepts the sysusers.d entry;
# - the man pages format without warnings, cwlogd.conf(5) documents every key
#   that src/config.c accepts, and its examples pass --check-config;
# - `cmake --install` installs the same file set as the packages.
# Needs CWLOGD_BIN (the built cwlogd); CTest sets it.
. "$(dirname "$0")/lib.sh"

need_tools systemd-analyze systemd-sysusers man cmake
bin="${CWLOGD_BIN:?set CWLOGD_BIN to the built cwlogd}"
[ -x "$bin" ] || fail "CWLOGD_BIN=$bin is not executable"
unit="$src/systemd/cwlogd.service"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/cwlogd-service-test.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

# ---- systemd-analyze verify -------------------------------------------------
# verify checks that ExecStart= exists and that Documentation= man pages are
# found, so point the copy at the built binary and MANPATH at the sources.
mkdir -p "$tmp/man/man5" "$tmp/man/man8" "$tmp/unit" "$tmp/broken"
cp "$src/man/cwlogd.8" "$tmp/man/man8/"
cp "$src/man/cwlogd.conf.5" "$tmp/man/man5/"
sed "s|/usr/bin/cwlogd|$bin|g" "$unit" >"$tmp/unit/cwlogd.service"

verify() {
    MANPATH="$tmp/man" SYSTEMD_LOG_COLOR=0 systemd-analyze verify "$1" 2>&1
}
out="$(verify "$tmp/unit/cwlogd.service")" || fail "systemd-analyze verify failed: $out"
[ -z "$out" ] || fail "systemd-analyze verify is not clean:
$out"
pass "systemd-analyze verify is clean"

# verify exits 0 on settings it ignores: prove that this test sees them.
sed -e 's/^Type=notify$/Type=notfy/' -e 's|^Documentation=.*|& man:cwlogd-missing(8)|' \
    "$tmp/unit/cwlogd.service" >"$tmp/broken/cwlogd.service"
out="$(verify "$tmp/broken/cwlogd.service" || true)"
case "$out" in
*"service type"*cwlogd-missing* | *cwlogd-missing*"service type"*) ;;
*) fail "systemd-analyze verify did not report a bad Type= and a missing man page: $out" ;;
esac
pass "systemd-analyze verify reports a broken copy of the unit"

# ---- systemd-analyze security ---------------------------------------------
out="$(systemd-analyze security --offline=true "$unit" 2>&1)" ||
    fail "systemd-analyze security failed: $out"
score="$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')"
[ -n "$score" ] || fail "no exposure level in: $out"
if ! systemd-analyze security --offline=true --threshold=15 "$unit" >/dev/null 2>&1; then
    printf '%s\n' "$out" | grep '✗' >&2 || true
    fail "exposure level $score is above 1.5"
fi
pass "systemd-analyze security: exposure $score (at most 1.5)"

# ---- settings the service relies on -----------------------------------------
for setting in \
    Type=notify NotifyAccess=main WatchdogSec=30s Restart=on-failure \
    RestartPreventExitStatus=78 'ExecReload=/bin/kill -HUP $MAINPID' \
    ExecStart=/usr/bin/cwlogd User=cwlogd SupplementaryGroups=systemd-journal \
    StateDirectory=cwlogd RuntimeDirectory=cwlogd \
    CapabilityBoundingSet=CAP_DAC_READ_SEARCH AmbientCapabilities=CAP_DAC_READ_SEARCH \
    NoNewPrivileges=yes ProtectSystem=strict MemoryDenyWriteExecute=yes LimitCORE=0 \
    'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6' SystemCallFilter=@system-service \
    SystemCallArchitectures=native WantedBy=multi-user.target; do
    grep -qxF -- "$setting" "$unit" || fail "$unit: no line '$setting'"
done
pass "the unit has Type=notify, the watchdog, restart policy and hardening settings"

# The state and runtime directories in the unit are the configuration's defaults.
grep -qx 'state_dir = /var/lib/cwlogd' "$src/conf/cwlogd.conf" ||
    fail "conf/cwlogd.conf: state_dir is not /var/lib/cwlogd (StateDirectory=cwlogd)"
grep -q '"/run/cwlogd/control.sock"' "$src/src/config.c" ||
    fail "src/config.c: the default control socket is not in /run/cwlogd (RuntimeDirectory=cwlogd)"
pass "StateDirectory= and RuntimeDirectory= match the configuration defaults"

# ---- sysusers.d -------------------------------------------------------------
mkdir -p "$tmp/root/etc"
out="$(systemd-sysusers --root="$tmp/root" --dry-run "$src/systemd/cwlogd.sysusers" 2>&1)" ||
    fail "systemd-sysusers rejects systemd/cwlogd.sysusers: $out"
case "$out" in
*"Creating user 'cwlogd'"*) ;;
*) fail "systemd/cwlogd.sysusers does not create the user cwlogd: $out" ;;
esac
pass "systemd-sysusers accepts the sysusers.d entry and creates the user cwlogd"

# ---- man pages --------------------------------------------------------------
for page in "$src/man/cwlogd.8" "$src/man/cwlogd.conf.5"; do
    out="$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l "$page" 2>&1 >/dev/null)" ||
        fail "man cannot format $page: $out"
    [ -z "$out" ] || fail "$page: formatter warnings:
$out"
done
pass "the man pages format without warnings"

# Every key in src/config.c's tables has an entry in cwlogd.conf(5).
keys="$(sed -n -e 's/^ *\[GK_[A-Z_]*\] = {"\([a-z_]*\)".*/\1/p' \
    -e 's/^ *\[SK_[A-Z_]*\] = {"\([a-z_]*\)".*/\1/p' "$src/src/config.c")"
[ "$(printf '%s\n' "$keys" | wc -l)" -ge 30 ] || fail "could not read the keys from src/config.c"
for key in $keys; do
    grep -q "^\.BI $key \"" "$src/man/cwlogd.conf.5" ||
        fail "cwlogd.conf(5) does not document the key $key"
done
pass "cwlogd.conf(5) documents all $(printf '%s\n' "$keys" | wc -l) keys of src/config.c"

# The examples in cwlogd.conf(5) (the .nf/.fi blocks under EXAMPLES) are valid.
mkdir -p "$tmp/examples"
awk -v dir="$tmp/examples" '
    /^\.SH/ { in_ex = ($0 ~ /EXAMPLES/) }
    in_ex && /^\.nf/ { n++; out = dir "/example" n ".conf"; next }
    in_ex && /^\.fi/ { out = ""; next }
    out != "" { gsub(/\\-/, "-"); print > out }
' "$src/man/cwlogd.conf.5"
n_examples=0
for ex in "$tmp"/examples/*.conf; do
    [ -e "$ex" ] || break
    n_examples=$((n_examples + 1))
    out="$("$bin" --check-config --config "$ex" 2>&1)" ||
        fail "cwlogd.conf(5) example $(basename "$ex") is not valid:
$out"
done
[ "$n_examples" -ge 2 ] || fail "found $n_examples examples in cwlogd.conf(5), expected 2"
pass "the $n_examples configuration examples in cwlogd.conf(5) pass --check-config"

out="$("$bin" --check-config --config "$src/conf/cwlogd.conf" 2>&1)" ||
    fail "conf/cwlogd.conf is not valid: $out"
pass "conf/cwlogd.conf passes --check-config"

# ---- cmake --install ----------------------------------------------------------
cmake -S "$src" -B "$tmp/build" -DCMAKE_INSTALL_PREFIX=/usr -DCWLOGD_TESTS=OFF \
    -DCWLOGD_SYSTEMD_UNITDIR=/usr/lib/systemd/system >"$tmp/cmake.log" 2>&1 ||
    fail "cmake configure failed: $(cat "$tmp/cmake.log")"
cmake --build "$tmp/build" -j"$(nproc)" >>"$tmp/cmake.log" 2>&1 ||
    fail "cmake build failed: $(tail -30 "$tmp/cmake.log")"
DESTDIR="$tmp/dest" cmake --install "$tmp/build" >>"$tmp/cmake.log" 2>&1 ||
    fail "cmake --install failed: $(tail -30 "$tmp/cmake.log")"
compare_files "cmake --install" < <(cd "$tmp/dest" && find . -type f -o -type l)
[ -d "$tmp/dest/etc/cwlogd/conf.d" ] || fail "cmake --install creates no /etc/cwlogd/conf.d"
cmp -s "$tmp/dest/usr/lib/systemd/system/cwlogd.service" "$unit" ||
    fail "cmake --install changed the unit although the prefix is /usr"
pass "cmake --install creates /etc/cwlogd/conf.d and installs the unit unchanged"

finish
