"""The real client in a real terminal emulator: a tmux pane of 80 columns, captured as a person
would see it. Issue 16's case: a 90-character line half typed, a message arrives, Backspace
five times; no stale copy of the input may stay on the screen. Then the server goes away: one
line says so, a status line below the input counts down, and one line says when it is back.

Skipped, saying why, where tmux is not installed. Every wait polls with a deadline."""
import os
import select
import shutil
import signal
import subprocess
import sys
import termios
import time

import pytest

from realprocs import ROOT, WAIT_S, run_file_client, start_server

TMUX = shutil.which("tmux")
pytestmark = pytest.mark.skipif(TMUX is None, reason="tmux is not installed")


class Pane:
    """One tmux pane, on a tmux server of its own (its socket in the test's directory)."""

    def __init__(self, tmp_path, command, width=80, height=24):
        self.socket = str(tmp_path / "tmux.sock")
        self._tmux("new-session", "-d", "-s", "t", "-x", str(width), "-y", str(height),
                   " ".join(command))

    def _tmux(self, *args):
        return subprocess.run([TMUX, "-S", self.socket, *args], check=True, capture_output=True,
                              text=True, timeout=WAIT_S).stdout

    def keys(self, *keys):
        self._tmux("send-keys", "-t", "t", *keys)

    def type(self, text):
        self._tmux("send-keys", "-t", "t", "-l", text)

    def screen(self):
        """-> (rows, (cursor row, cursor column)), both read by one tmux command, so that no
        write of the client's can fall between them."""
        out = self._tmux("capture-pane", "-p", "-t", "t", ";",
                         "display-message", "-p", "-t", "t", "#{cursor_y} #{cursor_x}")
        *rows, place, _ = out.split("\n")
        y, x = place.split()
        return rows, (int(y), int(x))

    def wait(self, check, timeout_s=WAIT_S):
        """Poll the pane until check(rows, cursor) is true -> (rows, cursor); fail with the
        pane's rows if it never is."""
        end = time.monotonic() + timeout_s
        while True:
            rows, cursor = self.screen()
            if check(rows, cursor):
                return rows, cursor
            if time.monotonic() > end:
                raise AssertionError(f"the pane never showed it (cursor at {cursor}):\n"
                                     + "\n".join(rows))
            # the pause between polls of the pane, bounded by its deadline
            select.select([], [], [], 0.05)

    def close(self):
        subprocess.run([TMUX, "-S", self.socket, "kill-server"], capture_output=True,
                       timeout=WAIT_S)


def _log_in(pane):
    """The client in `pane` logs in as columbia."""
    pane.wait(lambda rows, _: "Please enter username:" in rows)
    pane.type("columbia")
    pane.keys("Enter")
    pane.wait(lambda rows, _: "Please enter password:" in rows)
    pane.type("116bway")
    pane.keys("Enter")
    pane.wait(lambda rows, _: "You have successfully logged in." in rows)


def _index(rows, text):
    return next(i for i, row in enumerate(rows) if row == text)


def _echoes(tty):
    """True while the terminal `tty` (a path) echoes what is typed."""
    fd = os.open(tty, os.O_RDONLY | os.O_NOCTTY)
    try:
        return bool(termios.tcgetattr(fd)[3] & termios.ECHO)
    finally:
        os.close(fd)


def _stop(proc):
    proc.terminate()
    proc.wait(WAIT_S)


def test_a_long_line_survives_a_message_and_backspaces_and_the_outage_shows_below_it(tmp_path):
    proc, port = start_server(tmp_path, 0)
    client = [sys.executable, os.path.join(ROOT, "client.py"), "127.0.0.1", str(port)]
    pane = Pane(tmp_path, ["cd", ROOT, "&&", *client])
    try:
        _log_in(pane)
        typed = "message seas " + "".join(chr(ord("a") + n % 26) for n in range(77))
        pane.type(typed)
        pane.wait(lambda rows, _: typed[80:] in rows)
        code, _, _ = run_file_client(port, "seas\nsummerisover\nbroadcast lunch?\n",
                                     tmp_path)
        assert code == 0
        pane.wait(lambda rows, _: "seas (to everyone): lunch?" in rows)
        pane.keys(*["BSpace"] * 5)
        rows, cursor = pane.wait(lambda rows, _: typed[80:85] in rows)
        first = _index(rows, typed[:80])
        assert rows[first + 1] == typed[80:85] and cursor == (first + 1, 5)
        assert not any(row.startswith("message seas") for row in rows[:first])   # no copies
        assert all(row == "" for row in rows[first + 2:])
        assert rows[first - 1] == "seas has logged out."

        _stop(proc)
        pane.keys("Enter")
        # The client draws the status line, then each line above the input in a write of its
        # own ("Cannot reach", "Waiting to be sent", "Your message is kept"): wait for the last.
        rows, cursor = pane.wait(lambda rows, _: any(r.startswith("Server unreachable")
                                                     for r in rows)
                                 and any(r.startswith("Your message is kept") for r in rows))
        said = [row for row in rows if row.startswith("Cannot reach the server")]
        assert said == [f"Cannot reach the server at 127.0.0.1:{port} (refused)."], rows
        status = next(i for i, row in enumerate(rows) if row.startswith("Server unreachable"))
        assert rows[status - 1] == "" and cursor == (status - 1, 0), rows   # the empty input
        assert all(row == "" for row in rows[status + 1:])
        pane.type("half typed")

        proc, _ = start_server(tmp_path, port)          # back, on the same port
        rows, cursor = pane.wait(lambda rows, _: "The server is back." in rows)
        assert not any(row.startswith("Server unreachable") for row in rows)
        assert len([row for row in rows if row.startswith("Cannot reach")]) == 1   # said once
        # the restart ended the session: the half-typed line is set aside, not sent as a
        # username at the prompt (Up brings it back after the login, as the user is told)
        rows, cursor = pane.wait(lambda rows, _: "(Your half-typed line is kept: Up brings it "
                                                 "back when you log in as columbia.)" in rows)
        assert rows[cursor[0]] == "" and "half typed" not in rows[cursor[0] - 1], rows
        _log_in(pane)
        pane.keys("Up")
        rows, cursor = pane.wait(lambda rows, cursor: rows[cursor[0]] == "half typed")
        assert cursor[1] == 10, rows
    finally:
        pane.close()
        _stop(proc)


def test_a_window_widened_to_the_inputs_width_keeps_the_message_above_it(tmp_path):
    """(a trial's 120-character input in a 100-column pane, widened to 120: the message
    above it was erased, from the screen and the scrollback)"""
    proc, port = start_server(tmp_path, 0)
    client = [sys.executable, os.path.join(ROOT, "client.py"), "127.0.0.1", str(port)]
    pane = Pane(tmp_path, ["cd", ROOT, "&&", *client], width=100, height=30)
    try:
        _log_in(pane)
        code, _, _ = run_file_client(port, "seas\nsummerisover\nbroadcast line b\n", tmp_path)
        assert code == 0
        pane.wait(lambda rows, _: "seas (to everyone): line b" in rows)
        typed = "message seas " + "".join(chr(ord("a") + n % 26) for n in range(107))
        assert len(typed) == 120
        pane.type(typed)
        rows, _ = pane.wait(lambda rows, _: typed[100:] in rows)
        above = [row for row in rows[:rows.index(typed[100:]) - 1] if row]
        assert above[-2:] == ["seas (to everyone): line b", "seas has logged out."], rows
        pane._tmux("resize-window", "-t", "t", "-x", "120")
        rows, _ = pane.wait(lambda rows, _: typed in rows)
        assert [row for row in rows[:rows.index(typed)] if row] == above, rows
    finally:
        pane.close()
        _stop(proc)


def test_enter_and_ctrl_c_at_once_send_the_line_or_say_it_was_not_sent(tmp_path):
    """(a trial's Enter and Ctrl-C in one read: the terminal threw the Enter away with the
    interrupt, and the line was lost without a word, 4 times in 4)"""
    proc, port = start_server(tmp_path, 0)
    client = [sys.executable, os.path.join(ROOT, "client.py"), "127.0.0.1", str(port)]
    pane = Pane(tmp_path, ["cd", ROOT, "&&", *client, ";", "sleep", "30"])
    try:
        _log_in(pane)
        pane.type("message seas ctrl-c race")
        pane.keys("Enter", "C-c")                       # one tmux command: one read
        rows, _ = pane.wait(lambda rows, _: "seas is offline; your message will be delivered "
                                            "when they log in." in rows
                            or any(row.startswith(("Not sent", "Perhaps not sent"))
                                   for row in rows))
    finally:
        pane.close()
        _stop(proc)


def test_the_exit_words_come_after_a_half_typed_line_not_on_it(tmp_path):
    """(a trial's "client.py: the logout got no answer..." was written onto the half-typed
    line, which was then said not sent below it)"""
    proc, pane = _client_in_a_shell(tmp_path)
    try:
        _log_in(pane)
        proc.send_signal(signal.SIGSTOP)                # no answer to the logout
        pane.type("draft here")
        pane.keys("C-c")
        rows, _ = pane.wait(lambda rows, cursor: any(row.startswith("client.py: ")
                                                     for row in rows)
                            and rows[cursor[0]].startswith("$"))        # the shell's again
        at = rows.index("draft here")
        assert rows[at + 1] == "(The line above was not sent: Enter was not pressed.)", rows
        assert rows[at + 2].startswith("client.py: the logout got no answer"), rows
    finally:
        proc.send_signal(signal.SIGCONT)
        pane.close()
        _stop(proc)


def _client_in_a_shell(tmp_path, term=None):
    """A server, and the client started from an interactive shell in a pane (job control, as
    a user has it), at its first prompt -> (server process, pane)."""
    proc, port = start_server(tmp_path, 0)
    pane = Pane(tmp_path, ["env", "PS1='$ '", "bash", "--norc", "--noprofile", "-i"])
    try:
        pane.wait(lambda rows, _: any(row.startswith("$") for row in rows))
        env = f"TERM={term} " if term else ""
        pane.type(f"cd {ROOT} && {env}{sys.executable} client.py 127.0.0.1 {port}")
        pane.keys("Enter")
        pane.wait(lambda rows, _: "Please enter username:" in rows)
    except BaseException:
        pane.close()
        _stop(proc)
        raise
    return proc, pane


def _log_in_unseen(pane):
    """Log in at the username prompt: the password unseen, the name echoed once, by us ->
    the pane's (rows, cursor) then."""
    pane.type("columbia")
    pane.keys("Enter")
    pane.wait(lambda rows, _: "Please enter password:" in rows)
    pane.type("116bway")
    pane.keys("Enter")
    rows, cursor = pane.wait(lambda rows, _: "You have successfully logged in." in rows)
    assert not any("116bway" in row for row in rows), rows        # typed unseen
    assert rows.count("columbia") == 1, rows                      # echoed once, by us
    return rows, cursor


def test_after_ctrl_z_and_fg_a_password_is_still_not_shown_and_lines_are_not_echoed_twice(
        tmp_path):
    proc, pane = _client_in_a_shell(tmp_path)
    try:
        pane.keys("C-z")
        pane.wait(lambda rows, _: any("Stopped" in row for row in rows))
        pane.type("fg")
        pane.keys("Enter")
        pane.wait(lambda rows, _: rows.count("Please enter username:") == 2)
        _log_in_unseen(pane)
        pane.type("online")
        pane.keys("Enter")
        rows, cursor = pane.wait(lambda rows, _: "No other users are online." in rows)
        assert rows.count("online") == 1, rows
        assert rows[cursor[0]] == "" and cursor[1] == 0, rows        # the input, empty
    finally:
        pane.close()
        _stop(proc)


@pytest.mark.parametrize("via_bg", [False, True], ids=["fg", "bg-then-fg"])
def test_with_the_terminals_own_line_editing_a_password_stays_unseen_after_ctrl_z_and_fg(
        tmp_path, via_bg):
    """TERM=dumb: the kernel echoes, and the client turns its echo off for the password; the
    shell's fg turned it on again, and a trial's password showed as it was typed (a
    re-attack's too, after bg then fg)."""
    proc, pane = _client_in_a_shell(tmp_path, term="dumb")
    try:
        pane.type("columbia")
        pane.keys("Enter")
        pane.wait(lambda rows, _: "Please enter password:" in rows)
        pane.keys("C-z")
        pane.wait(lambda rows, _: any("Stopped" in row for row in rows))
        if via_bg:
            pane.type("bg")
            pane.keys("Enter")
            pane.wait(lambda rows, _: any(row.startswith("[1]+") and row.endswith("&")
                                          for row in rows))
        pane.type("fg")
        pane.keys("Enter")
        tty = pane._tmux("display-message", "-p", "-t", "t", "#{pane_tty}").strip()
        pane.wait(lambda rows, _: not _echoes(tty))        # (typing is safe from here)
        pane.type("116bway")
        pane.keys("Enter")
        rows, _ = pane.wait(lambda rows, _: "You have successfully logged in." in rows)
        assert not any("116bway" in row for row in rows), rows
    finally:
        pane.close()
        _stop(proc)


def test_a_password_half_typed_before_ctrl_z_is_not_joined_to_the_one_typed_after_fg(
        tmp_path):
    """fg asks for the password afresh, its field empty as it looks: the hidden half typed
    before the stop was kept, and joined to the whole typed after (a trial's wrong password,
    a strike toward the block)."""
    proc, pane = _client_in_a_shell(tmp_path)
    try:
        pane.type("columbia")
        pane.keys("Enter")
        pane.wait(lambda rows, _: "Please enter password:" in rows)
        pane.type("116b")
        pane.keys("C-z")
        pane.wait(lambda rows, _: any("Stopped" in row for row in rows))
        pane.type("fg")
        pane.keys("Enter")
        tty = pane._tmux("display-message", "-p", "-t", "t", "#{pane_tty}").strip()
        rows, _ = pane.wait(lambda rows, _: not _echoes(tty)
                            and rows.count("Please enter password:") == 2)  # again, below fg
        # said, or the rest alone was typed (a trial's)
        assert ("(What you had typed of the password before the stop was cleared: type it "
                "whole.)") in rows, rows
        pane.type("116bway")
        pane.keys("Enter")
        pane.wait(lambda rows, _: "You have successfully logged in." in rows)
    finally:
        pane.close()
        _stop(proc)


def test_after_a_stop_from_outside_and_fg_a_password_is_still_not_shown(tmp_path):
    """SIGSTOP, which no handler sees, then SIGCONT from another shell: the client goes on in
    the background and stops at its next touch of the terminal; the user's fg brings it back,
    in its own mode (a trial found the password echoed after this)."""
    proc, pane = _client_in_a_shell(tmp_path)
    try:
        shell = int(pane._tmux("display-message", "-p", "-t", "t", "#{pane_pid}"))
        client = int(subprocess.run(["pgrep", "-P", str(shell)], capture_output=True,
                                    text=True, timeout=WAIT_S, check=True).stdout.split()[0])
        os.kill(client, signal.SIGSTOP)
        pane.wait(lambda rows, _: any("Stopped" in row for row in rows))
        os.kill(client, signal.SIGCONT)
        pane.type("fg")
        pane.keys("Enter")
        # our mode is back once the pane's terminal echoes nothing (then typing is safe: the
        # mode's change drops what was typed before it)
        tty = pane._tmux("display-message", "-p", "-t", "t", "#{pane_tty}").strip()
        pane.wait(lambda rows, _: not _echoes(tty)
                  and rows.count("Please enter username:") == 2)   # asked again, below fg
        _log_in_unseen(pane)
    finally:
        pane.close()
        _stop(proc)
