#!/usr/bin/env bash
# Make the real IRC clients of the end-to-end tests (tests/test_irc_clients.py) available:
# install them when missing and we can (root with apt-get), as setup_display.sh does Xvfb. It
# never fails the build: a test whose client is missing skips and says why.
#   irssi, driven in tmux; weechat-headless, driven through its fifo plugin and watched through
#   its trigger plugin, which are in weechat-plugins (only recommended by weechat-headless).
set -u
missing=""
command -v irssi >/dev/null 2>&1 || missing="$missing irssi"
command -v tmux >/dev/null 2>&1 || missing="$missing tmux"
command -v weechat-headless >/dev/null 2>&1 || missing="$missing weechat-headless"
# the plugins' directory as Debian lays it out (and as tests/ircprocs.py looks for it)
plugins=""
for fifo in /usr/lib/*/weechat/plugins/fifo.so /usr/lib/weechat/plugins/fifo.so; do
    [ -e "$fifo" ] && plugins="yes"
done
[ -n "$plugins" ] || missing="$missing weechat-plugins"
. "$(dirname "$0")/install_missing.sh"
install_missing "the IRC client tests" $missing
exit 0
