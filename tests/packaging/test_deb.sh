#!/usr/bin/env bash
# The Debian package: built with scripts/package deb, checked with lintian
# (no errors), its files and conffiles, then installed with dpkg -i on this
# machine (no running systemd needed): the installed cwlogd runs, accepts
# the installed configuration, the user exists, the service is enabled and
# the installed unit verifies. Purging removes it all again.
# Installing needs root; the test never touches a cwlogd that was already
# installed, and removes the user it caused to be created.
. "$(dirname "$0")/lib.sh"

need_tools dpkg-buildpackage dh dpkg-deb lintian
[ "$(id -u)" -eq 0 ] || skip "installing the package needs root"
if dpkg-query -W -f='${Status}' cwlogd 2>/dev/null | grep -q 'installed'; then
    skip "a cwlogd package is already installed on this machine; not replacing it"
fi

tmp="$(mktemp -d "${TMPDIR:-/tmp}/cwlogd-deb-test.XXXXXX")"
installed=no
user_existed=no
getent passwd cwlogd >/dev/null && user_existed=yes
cleanup() {
    if [ "$installed" = yes ]; then
        dpkg --purge cwlogd >/dev/null 2>&1 || true
    fi
    if [ "$user_existed" = no ] && getent passwd cwlogd >/dev/null; then
        userdel cwlogd >/dev/null 2>&1 || true
    fi
    if [ "$user_existed" = no ] && getent group cwlogd >/dev/null; then
        groupdel cwlogd >/dev/null 2>&1 || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

# ---- build ------------------------------------------------------------------
"$src/scripts/package" deb --outdir "$tmp/out" >"$tmp/build.log" 2>&1 ||
    fail "scripts/package deb failed:
$(tail -40 "$tmp/build.log")"
deb="$tmp/out/cwlogd_${version}_$(dpkg --print-architecture).deb"
[ -f "$deb" ] || fail "scripts/package deb did not produce $(basename "$deb"): $(ls "$tmp/out")"
pass "scripts/package deb built $(basename "$deb")"

# ---- lintian ----------------------------------------------------------------
rc=0
lintian --fail-on error "$deb" >"$tmp/lintian.log" 2>&1 || rc=$?
out="$(grep -v 'running with root privileges' "$tmp/lintian.log" || true)"
[ "$rc" -eq 0 ] || fail "lintian reports errors (exit status $rc):
$out"
if [ -n "$out" ]; then
    echo "lintian (no errors):"
    printf '  %s\n' "$out"
fi
pass "lintian reports no errors"

# ---- contents ---------------------------------------------------------------
dpkg-deb --fsys-tarfile "$deb" | tar -t >"$tmp/contents"
compare_files "the .deb" < <(grep -v '/$' "$tmp/contents")
grep -qx './etc/cwlogd/conf.d/' "$tmp/contents" || fail "the .deb has no /etc/cwlogd/conf.d"
[ "$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)" = /etc/cwlogd/cwlogd.conf ] ||
    fail "the .deb's conffiles are not exactly /etc/cwlogd/cwlogd.conf"
[ "$(dpkg-deb -f "$deb" Version)" = "$version" ] ||
    fail "the .deb's version is $(dpkg-deb -f "$deb" Version), CMakeLists.txt says $version"
depends="$(dpkg-deb -f "$deb" Depends)"
for d in systemd libcurl4 libsystemd0 libsqlite3-0 libinih1 libjansson4 libssl3; do
    case ", $depends," in
    *", $d "* | *", $d,"* | *" $d |"* | *"| $d,"*) ;;
    *) fail "the .deb does not depend on $d: $depends" ;;
    esac
done
pass "conffiles, version and dependencies are right"

# ---- install ----------------------------------------------------------------
installed=yes
out="$(DEBIAN_FRONTEND=noninteractive dpkg -i "$deb" 2>&1)" ||
    fail "dpkg -i failed (is a library it depends on missing?):
$out"
pass "dpkg -i installed the package"

out="$(/usr/bin/cwlogd --version)" || fail "the installed cwlogd --version failed"
[ "$out" = "cwlogd $version" ] || fail "the installed cwlogd --version says '$out', expected 'cwlogd $version'"
pass "the installed cwlogd --version prints cwlogd $version"

out="$(/usr/bin/cwlogd --check-config --config /etc/cwlogd/cwlogd.conf 2>&1)" ||
    fail "the installed configuration is not valid: $out"
out="$(/usr/bin/cwlogd --check-config 2>&1)" ||
    fail "cwlogd --check-config (default path) failed: $out"
pass "the installed cwlogd accepts /etc/cwlogd/cwlogd.conf"

getent passwd cwlogd >/dev/null || fail "postinst did not create the user cwlogd"
shell="$(getent passwd cwlogd | cut -d: -f7)"
case "$shell" in
*/nologin | */false) ;;
*) fail "the user cwlogd has a login shell: $shell" ;;
esac
pass "postinst created the system user cwlogd without a login shell"

[ -L /etc/systemd/system/multi-user.target.wants/cwlogd.service ] ||
    fail "postinst did not enable cwlogd.service"
pass "postinst enabled cwlogd.service"

unit=""
for d in /lib/systemd/system /usr/lib/systemd/system; do
    if [ -f "$d/cwlogd.service" ]; then unit="$d/cwlogd.service"; break; fi
done
[ -n "$unit" ] || fail "no installed cwlogd.service"
man_check=yes
if [ ! -e /usr/share/man/man8/cwlogd.8.gz ] &&
    grep -qs '^path-exclude[= ]/usr/share/man' /etc/dpkg/dpkg.cfg.d/*; then
    echo "note: dpkg on this machine excludes man pages; verify skips Documentation="
    man_check=no
fi
out="$(SYSTEMD_LOG_COLOR=0 systemd-analyze verify --man="$man_check" "$unit" 2>&1)" ||
    fail "systemd-analyze verify $unit failed: $out"
[ -z "$out" ] || fail "systemd-analyze verify $unit is not clean:
$out"
pass "systemd-analyze verify is clean on the installed unit (binary and man pages found)"

# ---- purge --------------------------------------------------------------------
mkdir -p /var/lib/cwlogd
touch /var/lib/cwlogd/state.db
out="$(dpkg --purge cwlogd 2>&1)" || fail "dpkg --purge failed: $out"
installed=no
for f in /usr/bin/cwlogd /etc/cwlogd /var/lib/cwlogd "$unit" \
    /etc/systemd/system/multi-user.target.wants/cwlogd.service; do
    [ ! -e "$f" ] && [ ! -L "$f" ] || fail "$f is still there after dpkg --purge"
done
pass "dpkg --purge removes the files, the configuration, the state and the enablement"

finish
