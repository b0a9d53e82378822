# Sourced by the setup scripts: install_missing WHAT PACKAGE... installs the Debian packages
# named when we can (root with apt-get; `apt-get update` only if the first try fails), and says
# so; it never fails the build: without them the tests WHAT names skip and say why.
install_missing() {
    local what=$1
    shift
    [ $# -gt 0 ] || return 0
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: installing $* for $what" >&2
        export DEBIAN_FRONTEND=noninteractive
        { apt-get install -y --no-install-recommends "$@" \
            || { apt-get update -q && apt-get install -y --no-install-recommends "$@"; }; } \
            >/dev/null 2>&1 || echo "setup: could not install $*; $what may skip" >&2
    else
        echo "setup: missing $* and no way to install it (not root, or no apt-get); $what" \
             "will skip" >&2
    fi
    return 0
}
