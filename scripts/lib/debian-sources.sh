# shellcheck shell=bash
# Debian package sources as this machine's apt sees them, for the roots that
# scripts/local-images and scripts/rabbitmq4 make with debootstrap. Sourced.
#
#   host_sources SUITE      apt source entries of this machine that serve SUITE
#                           (deb822 stanzas of *.sources, one-line entries of *.list)
#   host_mirror SUITE       the URI of the first of them for SUITE itself (not
#                           -updates or -security)
#   sources_for SUITE       deb822 sources for SUITE, SUITE-updates and
#                           SUITE-security from the mirrors this machine uses,
#                           whatever suite this machine itself runs

host_sources() {
    local suite=$1 f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk -v s="$suite" 'BEGIN { RS = ""; ORS = "\n\n" }
            $0 ~ "(^|\n)Suites:[^\n]*[ \t]" s "([ \t\n-]|$)" && $0 !~ "(^|\n)Enabled: *no" { print }' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        grep -E "^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?[^[:space:]]+[[:space:]]+$suite([-/][^[:space:]]*)?[[:space:]]" "$f" || true
    done
}

# awk reads to the end (no early exit, no broken pipe).
host_mirror() {
    local suite=$1
    host_sources "$suite" | awk -v s="$suite" '
        found { next }
        /^URIs:/ { uri = $2 }
        /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == s && uri != "") { print uri; found = 1 } }
        /^deb[ \t]/ { n = 2; if ($2 ~ /^\[/) { while ($n !~ /\]$/) n++; n++ }
                     if ($(n + 1) == s) { print $n; found = 1 } }'
}

sources_for() {
    local suite=$1 own main security
    # shellcheck disable=SC1091 # this machine's file
    own=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
    main=${DEBIAN_MIRROR:-$(host_mirror "$own")}
    security=$(host_mirror "$own-security")
    cat <<EOS
Types: deb
URIs: ${main:-http://deb.debian.org/debian}
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${security:-http://deb.debian.org/debian-security}
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOS
}
