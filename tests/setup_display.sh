#!/usr/bin/env bash
# Make a virtual X display available for the GUI end-to-end test: install Xvfb when it is missing
# and we can (root with apt-get); and tmux, the terminal emulator test_e2e_tmux.py runs the client
# in. It never fails the build: without them those tests skip and say why.
set -u
PYTHON=${PYTHON:-python3}
missing=""
command -v Xvfb >/dev/null 2>&1 || missing="xvfb"
command -v tmux >/dev/null 2>&1 || missing="$missing tmux"
# a Debian python3 without tkinter gets it from python3-tk (other Pythons bring their own)
"$PYTHON" -c "import tkinter" >/dev/null 2>&1 || missing="$missing python3-tk"
if [ -z "$missing" ]; then
    exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing$missing for the GUI and terminal tests" >&2
    export DEBIAN_FRONTEND=noninteractive
    { apt-get install -y --no-install-recommends $missing \
        || { apt-get update -q && apt-get install -y --no-install-recommends $missing; }; } \
        >/dev/null 2>&1 || echo "setup: could not install$missing; the GUI or terminal test may skip" >&2
else
    echo "setup: missing$missing and no way to install it (not root, or no apt-get);" \
         "the GUI or terminal test will skip" >&2
fi
exit 0
