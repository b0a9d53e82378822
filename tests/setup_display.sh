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
. "$(dirname "$0")/install_missing.sh"
install_missing "the GUI and terminal tests" $missing
exit 0
