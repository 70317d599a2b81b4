#!/usr/bin/env bash
# The RPM: built with scripts/package rpm (on Debian with rpmbuild and
# packaging/rpm/non-rpm-host.macros standing in for systemd-rpm-macros), then
# inspected with rpm -qp: version, file list, %config(noreplace), the
# scriptlets (user creation before install, systemd preset / stop on
# removal / restart on upgrade) and the requirements (the libraries cwlogd
# links and systemd for the scriptlets). The build's %check runs the built
# binary on the shipped configuration.
. "$(dirname "$0")/lib.sh"

need_tools rpmbuild rpm

tmp="$(mktemp -d "${TMPDIR:-/tmp}/cwlogd-rpm-test.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

"$src/scripts/package" rpm --outdir "$tmp/out" >"$tmp/build.log" 2>&1 ||
    fail "scripts/package rpm failed:
$(tail -40 "$tmp/build.log")"
shopt -s nullglob
rpms=("$tmp"/out/cwlogd-"$version"-*.rpm)
bin_rpm=""
for r in "${rpms[@]}"; do
    case "$r" in
    *.src.rpm | *-debuginfo-* | *-debugsource-*) ;;
    *) bin_rpm="$r" ;;
    esac
done
[ -n "$bin_rpm" ] || fail "scripts/package rpm produced no binary package: $(ls "$tmp/out")"
srpms=("$tmp"/out/cwlogd-"$version"-*.src.rpm)
[ ${#srpms[@]} -eq 1 ] || fail "no source package was built"
grep -q 'configuration is valid' "$tmp/build.log" ||
    fail "the build's %check did not validate the shipped configuration"
pass "scripts/package rpm built $(basename "$bin_rpm") and the source package; %check passed"

q() {
    rpm -qp "$@" "$bin_rpm" 2>/dev/null
}

[ "$(q --qf '%{NAME} %{VERSION}')" = "cwlogd $version" ] ||
    fail "the package is '$(q --qf '%{NAME} %{VERSION}')', expected 'cwlogd $version'"
pass "name and version match CMakeLists.txt"

# ---- files ------------------------------------------------------------------
q --qf '[%{FILEMODES:perms} %{FILEFLAGS:fflags}|%{FILENAMES}\n]' >"$tmp/files"
compare_files "the .rpm" < <(grep -v '^d' "$tmp/files" | sed 's/^[^|]*|//')
grep -q '^d.*|/etc/cwlogd/conf.d$' "$tmp/files" || fail "the .rpm does not own /etc/cwlogd/conf.d"
grep -q '^d.*|/etc/cwlogd$' "$tmp/files" || fail "the .rpm does not own /etc/cwlogd"
[ "$(q --configfiles)" = /etc/cwlogd/cwlogd.conf ] ||
    fail "the configuration files are not exactly /etc/cwlogd/cwlogd.conf: $(q --configfiles)"
grep -q '^-[^ ]* cn|/etc/cwlogd/cwlogd.conf$' "$tmp/files" ||
    fail "/etc/cwlogd/cwlogd.conf is not %config(noreplace): $(grep cwlogd.conf "$tmp/files")"
grep -q '^-rwxr-xr-x .*|/usr/bin/cwlogd$' "$tmp/files" || fail "/usr/bin/cwlogd is not mode 0755"
grep -q '|/usr/share/man/man8/cwlogd.8' "$tmp/files" || fail "cwlogd(8) is not packaged"
pass "file list, owned directories and %config(noreplace) are right"

# ---- scriptlets -------------------------------------------------------------
script() {
    q --qf "%{$1}"
}
pre="$(script PREIN)"
case "$pre" in
*systemd-sysusers*"u cwlogd "*) ;;
*) fail "%pre does not create the user cwlogd with systemd-sysusers: $pre" ;;
esac
# The RPM macros of systemd (Amazon Linux) call systemd-update-helper; the
# stand-ins on Debian call systemctl directly. Either must do the same job.
post="$(script POSTIN)"
case "$post" in
*"install-system-units cwlogd.service"* | *"preset cwlogd.service"*) ;;
*) fail "%post does not apply the preset to cwlogd.service: $post" ;;
esac
preun="$(script PREUN)"
case "$preun" in
*"remove-system-units cwlogd.service"* | *"disable --now cwlogd.service"*) ;;
*) fail "%preun does not stop and disable cwlogd.service on removal: $preun" ;;
esac
postun="$(script POSTUN)"
case "$postun" in
*"mark-restart-system-units cwlogd.service"* | *"try-restart cwlogd.service"*) ;;
*) fail "%postun does not restart cwlogd.service after an upgrade: $postun" ;;
esac
for s in PREIN POSTIN PREUN POSTUN; do
    out="$(script "$s" | sh -n 2>&1)" || fail "the $s scriptlet is not valid sh: $out"
done
pass "scriptlets: sysusers in %pre, preset in %post, stop on removal, restart on upgrade"

# ---- requirements -------------------------------------------------------------
q --qf '[%{REQUIREFLAGS:deptype} %{REQUIRENAME}\n]' | sort -u >"$tmp/requires"
# inih: linked statically in the portable build made on hosts that are not
# RPM-based (test_rpm_portable.sh checks the rest of that build's list).
libs="libcurl.so.4 libsystemd.so.0 libsqlite3.so.0 libjansson.so.4 libcrypto.so.3 libz.so.1"
if rpm -q rpm >/dev/null 2>&1; then
    grep -q '^auto libinih\.so\.[0-9]*()' "$tmp/requires" ||
        fail "the .rpm does not require libinih:
$(cat "$tmp/requires")"
elif grep -q libinih "$tmp/requires"; then
    fail "the portable .rpm requires libinih, which it should link statically:
$(cat "$tmp/requires")"
fi
for lib in $libs; do
    grep -q "^auto $lib()(64bit)$\|^auto $lib()$" "$tmp/requires" ||
        fail "the .rpm does not require $lib:
$(cat "$tmp/requires")"
done
for phase in pre post preun postun; do
    grep -qx "$phase systemd" "$tmp/requires" ||
        fail "the .rpm has no Requires($phase): systemd:
$(cat "$tmp/requires")"
done
pass "requires the libraries cwlogd links and systemd for its scriptlets"

finish
