"""What the terminal shows while a line is edited, as a real terminal would show it: bytes
from terminal.py into the tests' virtual terminal (vt.py), the screen's rows and cursor out.

Long lines wrap over several rows (exactly 80, 81, 160 characters; wide characters at the
edge); a message arriving mid-edit; Backspace and Ctrl-U across rows; a resize; the keys that
move and edit; history, reverse search, completion; the status line during an outage."""
import io
import os
import signal
import time
import types

import pytest

from client_events import (AskConsent, ConsentLapsed, Expired, Probe, ProbeDue, Prompt,
                           Replied, RequestFailed, Show, ShowOnline, Stage, Started, Status)
from client_helpers import Run
from reactor import Reactor
from timers import VirtualClock
from terminal import Terminal, TerminalScreen, outage_line, screen_lines
from vt import Screen

LEFT, RIGHT, UP, DOWN = b"\x1b[D", b"\x1b[C", b"\x1b[A", b"\x1b[B"
HOME, END, DELETE = b"\x1b[H", b"\x1b[F", b"\x1b[3~"
BACKSPACE, CTRL_U, CTRL_K, CTRL_W = b"\x7f", b"\x15", b"\x0b", b"\x17"
SHOWN = (Show, Prompt, Status, ShowOnline, AskConsent, ConsentLapsed)   # what a screen renders


def on_screen(width=80, height=24):
    screen = Screen(width, height)
    return Terminal(0, screen, err=io.BytesIO(), interactive=True,
                    columns=lambda: screen.width), screen


def rows(screen, first, count):
    return screen.lines()[first:first + count]


def blank_below(screen, row):
    return all(line == "" for line in screen.lines()[row:])


# -- long lines wrap, and are erased whole --------------------------------------------------------

def test_a_line_of_exactly_the_width_puts_the_cursor_on_the_next_row():
    term, screen = on_screen()
    term.feed(b"a" * 80)
    assert rows(screen, 0, 2) == ["a" * 80, ""] and screen.cursor == (1, 0)
    term.feed(b"b")
    assert rows(screen, 0, 2) == ["a" * 80, "b"] and screen.cursor == (1, 1)
    term.feed(BACKSPACE)
    assert rows(screen, 0, 2) == ["a" * 80, ""] and screen.cursor == (1, 0)
    term.feed(BACKSPACE)
    assert rows(screen, 0, 2) == ["a" * 79, ""] and screen.cursor == (0, 79)


def test_81_and_160_characters():
    term, screen = on_screen()
    term.feed(b"x" * 81)
    assert rows(screen, 0, 2) == ["x" * 80, "x"] and screen.cursor == (1, 1)
    term.feed(b"y" * 79)
    assert rows(screen, 0, 3) == ["x" * 80, "x" + "y" * 79, ""] and screen.cursor == (2, 0)
    assert term.feed(b"\r") == ["x" * 81 + "y" * 79]
    assert rows(screen, 0, 3) == ["x" * 80, "x" + "y" * 79, ""] and screen.cursor == (2, 0)


def test_a_message_arriving_leaves_no_copy_of_a_long_input_and_backspace_still_works():
    """issue 16: 90 characters in 80 columns, messages arrive, Backspace five times."""
    term, screen = on_screen()
    typed = "message seas " + "z" * 77
    term.feed(typed.encode())
    for n in range(3):
        term.show(f"seas: hello {n}")
    term.feed(BACKSPACE * 5)
    assert rows(screen, 0, 5) == ["seas: hello 0", "seas: hello 1", "seas: hello 2",
                                  typed[:80], typed[80:85]]
    assert screen.cursor == (4, 5) and blank_below(screen, 5)
    term.feed(CTRL_U)                                   # erases both rows
    assert rows(screen, 0, 4) == ["seas: hello 0", "seas: hello 1", "seas: hello 2", ""]
    assert screen.cursor == (3, 0) and blank_below(screen, 3)


def test_a_message_arriving_while_the_cursor_is_inside_a_wrapped_line():
    term, screen = on_screen()
    typed = "".join(chr(ord("a") + n % 26) for n in range(100))
    term.feed(typed.encode() + LEFT * 30)               # the cursor on the first row
    assert screen.cursor == (0, 70)
    term.show("bob: hi")
    assert rows(screen, 0, 3) == ["bob: hi", typed[:80], typed[80:]]
    assert screen.cursor == (1, 70) and blank_below(screen, 3)
    term.feed(RIGHT * 25 + b"!")                         # on the second row now
    assert rows(screen, 1, 2) == [typed[:80], typed[80:95] + "!" + typed[95:]]
    assert screen.cursor == (2, 16)
    assert term.feed(b"\r") == [typed[:95] + "!" + typed[95:]]


def test_backspace_at_the_start_of_a_row_moves_up_a_row():
    term, screen = on_screen(width=20)
    term.feed(b"0123456789" * 3 + LEFT * 10)            # the cursor at the start of row 1
    assert screen.cursor == (1, 0)
    term.feed(BACKSPACE)
    assert rows(screen, 0, 2) == ["01234567890123456780", "123456789"]
    assert screen.cursor == (0, 19)


def test_ctrl_u_in_the_middle_erases_what_is_before_the_cursor_only():
    term, screen = on_screen(width=20)
    term.feed(b"0123456789" * 3 + LEFT * 5 + CTRL_U)
    assert rows(screen, 0, 2) == ["56789", ""] and screen.cursor == (0, 0)


def test_wide_characters_that_straddle_the_edge_go_to_the_next_row():
    term, screen = on_screen(width=20)
    term.feed(("a" * 19 + "漢字").encode())
    assert rows(screen, 0, 2) == ["a" * 19, "漢字"] and screen.cursor == (1, 4)
    term.feed(LEFT * 2)
    assert screen.cursor == (1, 0)
    term.feed(LEFT)
    assert screen.cursor == (0, 18)
    term.show("bob: 漢")
    assert rows(screen, 0, 3) == ["bob: 漢", "a" * 19, "漢字"] and screen.cursor == (1, 18)


def test_a_line_of_wide_characters_exactly_the_width():
    term, screen = on_screen(width=20)
    term.feed(("漢" * 10).encode())
    assert rows(screen, 0, 2) == ["漢" * 10, ""] and screen.cursor == (1, 0)
    term.feed(BACKSPACE)
    assert rows(screen, 0, 2) == ["漢" * 9, ""] and screen.cursor == (0, 18)


def test_combining_marks_stay_with_their_letter():
    term, screen = on_screen()
    term.feed("cafe\u0301".encode() + LEFT + b"x")
    assert screen.lines()[0] == "cafxe\u0301" and screen.cursor == (0, 4)
    assert term.feed(END + BACKSPACE + b"\r") == ["cafx"]


def test_a_resize_narrower_redraws_the_input_for_the_new_width():
    term, screen = on_screen()
    term.show("bob: hi")
    typed = "w" * 70 + "v" * 30
    term.feed(typed.encode())
    assert rows(screen, 1, 2) == [typed[:80], typed[80:]]
    screen.resize(40)
    term.resized()
    assert rows(screen, 0, 4) == ["bob: hi", typed[:40], typed[40:80], typed[80:]]
    assert screen.cursor == (3, 20) and blank_below(screen, 4)
    term.feed(BACKSPACE * 21)
    assert rows(screen, 0, 3) == ["bob: hi", typed[:40], typed[40:79]]
    assert screen.cursor == (2, 39) and blank_below(screen, 3)


def test_a_resize_wider_never_erases_the_messages_above():
    term, screen = on_screen(width=40)
    term.show("bob: hi")
    typed = "w" * 100
    term.feed(typed.encode())
    screen.resize(80)
    term.resized()
    assert screen.lines()[0] == "bob: hi"
    assert screen.lines()[screen.cursor[0] - 1:screen.cursor[0] + 1] == [typed[:80], typed[80:]]
    assert screen.cursor[1] == 20 and blank_below(screen, screen.cursor[0] + 1)


@pytest.mark.parametrize("width", [25, 80])
def test_a_message_shown_before_a_resize_is_signalled_erases_nothing_above(width):
    """A trial's messages arriving as the window was resized, before its SIGWINCH was read:
    the input's rows, counted at the old width, were erased up over the messages above."""
    term, screen = on_screen(width=55)
    term.show("first")
    typed = "w" * 95
    term.feed(typed.encode())
    screen.resize(width)                # (no term.resized() yet: the signal waits)
    term.show("bob: second")
    term.resized()                      # the signal, read at last
    lines = [line for line in screen.lines() if line]
    assert lines[:2] == ["first", "bob: second"]
    assert "".join(lines[2:]) == typed


def test_ctrl_l_clears_the_screen_and_draws_the_input_at_the_top():
    term, screen = on_screen()
    for n in range(30):
        term.show(f"line {n}")
    term.feed(b"half" + LEFT + b"\x0c")
    assert screen.text() == "half" and screen.cursor == (0, 3)


def test_ctrl_l_at_a_login_prompt_shows_the_prompt_again_but_not_once_logged_in():
    """At the password prompt the screen went blank: nothing said what was asked (a trial's)."""
    term, screen = on_screen()
    terminal_screen = TerminalScreen(term, 0)
    terminal_screen.render(Prompt(Stage.PASSWORD))
    terminal_screen.render(Status(Stage.PASSWORD, "columbia", 0, None, False))
    term.feed(b"sec\x0c")
    assert screen.lines()[:2] == ["Please enter password:", ""]
    assert term.feed(b"ret\r") == ["secret"] and "secret" not in screen.everything()
    terminal_screen.render(Status(Stage.LOGGED_IN, "columbia", 0, None, False))
    term.feed(b"half\x0c")
    assert screen.text() == "half"


def test_a_half_typed_command_is_dropped_when_the_session_ends_from_elsewhere():
    """It stayed on the input line at the username prompt, and Enter sent it as a name."""
    term, screen = on_screen()
    terminal_screen = TerminalScreen(term, 0)
    terminal_screen.render(Status(Stage.LOGGED_IN, "columbia", 0, None, False))
    term.feed(b"message seas half typ")
    terminal_screen.render(Show("system", "You have been logged out because your account "
                                          "logged in elsewhere."))
    terminal_screen.render(Prompt(Stage.USERNAME))
    terminal_screen.render(Status(Stage.USERNAME, None, 0, None, False))
    assert term.editor.text == "" and "half typ" not in screen.lines()[-1]
    # said, so it is not thought lost (a trial's)
    assert ("(Your half-typed line is kept: Up brings it back when you log in as columbia.)"
            in screen.lines())
    term.feed(UP)                   # (not at the username prompt: no line there is a name)
    assert term.editor.text == ""
    assert term.feed(b"columbia\r") == ["columbia"]
    terminal_screen.render(Status(Stage.LOGGED_IN, "columbia", 0, None, False))
    term.feed(UP)
    assert term.editor.text == "message seas half typ"       # set aside, not lost


def test_the_history_is_not_offered_before_a_login_nor_to_another_user():
    """(a trial's Up and Ctrl-R at the username prompt, after a logout, showed the last
    user's private messages, which the next user could send again as their own)"""
    term, screen = on_screen()
    terminal_screen = TerminalScreen(term, 0)
    terminal_screen.render(Status(Stage.LOGGED_IN, "seas", 0, None, False))
    assert term.feed(b"private columbia hi back\r") == ["private columbia hi back"]
    terminal_screen.render(Prompt(Stage.USERNAME))
    terminal_screen.render(Status(Stage.USERNAME, None, 0, None, False))
    term.feed(UP + b"\x12priv")             # Up, then Ctrl-R's search
    assert "private" not in screen.everything().split("Please enter username:")[-1]
    term.feed(b"\x07")                      # (Ctrl-G: no search to cancel)
    assert term.feed(b"\x15google\r") == ["google"]
    terminal_screen.render(Status(Stage.LOGGED_IN, "google", 0, None, False))
    term.feed(UP)
    assert term.editor.text == "" and term.editor.history == []


# -- keys that move and edit --------------------------------------------------------------------

@pytest.mark.parametrize("keys, line", [
    (b"abcdef" + LEFT * 3 + b"X", "abcXdef"),
    (b"abcdef\x02\x02\x02X", "abcXdef"),                           # Ctrl-B
    (b"bc" + HOME + b"a" + END + b"d", "abcd"),
    (b"bc\x1bOHa\x1bOFd", "abcd"),
    (b"bc\x1b[1~a\x1b[4~d", "abcd"),
    (b"bc\x1b[7~a\x1b[8~d", "abcd"),
    (b"bc\x01a\x05d", "abcd"),                                     # Ctrl-A, Ctrl-E
    (b"abc\x01\x06X", "aXbc"),                                     # Ctrl-F
    (b"one two three\x1bbX", "one two Xthree"),                    # Alt-B
    (b"one two three\x01\x1bfX", "oneX two three"),                # Alt-F
    (b"one two three\x1b[1;5DX", "one two Xthree"),                # Ctrl-Left
    (b"abc" + LEFT * 2 + DELETE, "ac"),
    (b"abc" + DELETE, "abc"),
    (b"abcdef" + LEFT * 3 + CTRL_K, "abc"),
    (b"message bob oops  " + CTRL_W + b"hi", "message bob hi"),
    (b"message bob oops" + LEFT * 4 + CTRL_W, "message oops"),
    (b"abcdef" + LEFT * 3 + CTRL_U, "def"),
    (b"abcdef" + LEFT * 3 + CTRL_K + HOME + b"\x19", "defabc"),   # Ctrl-Y
    (b"one two" + HOME + b"\x1bd", " two"),                        # Alt-D
    (b"ab\x1b\x7fcd", "cd"),                                       # Alt-Backspace
    (b"abc" + LEFT + b"\x04", "ab"),                               # Ctrl-D deletes
])
def test_editing_keys(keys, line):
    term, screen = on_screen()
    term.feed(keys)
    assert screen.lines()[0] == line
    assert term.feed(b"\r") == [line]


def test_the_cursor_is_drawn_where_the_editing_happens():
    term, screen = on_screen()
    term.feed(b"abcdef" + LEFT * 3)
    assert screen.cursor == (0, 3)
    term.feed(b"X")
    assert screen.lines()[0] == "abcXdef" and screen.cursor == (0, 4)


def test_an_escape_sequence_split_across_reads_is_still_one_key():
    term, screen = on_screen()
    term.feed(b"abc\x1b")
    term.feed(b"[")
    term.feed(b"DX")
    assert screen.lines()[0] == "abXc"


# -- history and reverse search -----------------------------------------------------------------

def test_up_and_down_walk_the_lines_typed_and_keep_the_one_being_edited():
    term, screen = on_screen()
    term.feed(b"online\rmessage bob hi\rdraft")
    term.feed(UP)
    assert screen.lines()[2] == "message bob hi" and screen.cursor == (2, 14)
    term.feed(b"\x1bOA")
    assert screen.lines()[2] == "online"
    term.feed(UP)                                       # the oldest: stays
    assert screen.lines()[2] == "online"
    term.feed(DOWN + DOWN)
    assert screen.lines()[2] == "draft"
    assert term.feed(UP + b"\r") == ["message bob hi"]


def test_passwords_never_enter_the_history():
    term, screen = on_screen()
    term.feed(b"columbia\r")
    term.set_secret(True)
    term.feed(b"116bway\r")
    term.feed(UP)                                       # nothing offered while secret
    assert "116bway" not in screen.everything()
    term.set_secret(False)
    term.feed(UP)
    assert screen.lines()[2] == "columbia"
    term.feed(UP + b"\x12116")                          # nor found by a search
    assert "116bway" not in screen.everything()


def test_nothing_typed_before_a_login_is_kept_not_even_a_password_typed_ahead():
    term, screen = on_screen()
    terminal_screen = TerminalScreen(term, 0)
    terminal_screen.render(Status(Stage.USERNAME, None, 0, None, False))
    term.feed(b"columbia\r116bway\r")                 # pasted before the password prompt
    terminal_screen.render(Status(Stage.LOGGED_IN, "columbia", 0, None, False))
    term.feed(b"online\r" + UP + UP)
    assert screen.lines()[2:4] == ["online", "online"]
    assert term.editor.history == ["online"]


def test_ctrl_r_searches_back_and_enter_sends_the_match():
    term, screen = on_screen()
    term.feed(b"message bob quarter past\ronline\rmessage carol q?\r")
    term.feed(b"\x12q")
    assert screen.lines()[3] == "(reverse-i-search)'q': message carol q?"
    assert screen.cursor == (3, len("(reverse-i-search)'q': message carol "))
    term.feed(b"\x12")                                  # the next older match
    assert screen.lines()[3] == "(reverse-i-search)'q': message bob quarter past"
    term.feed(b"z")
    assert screen.lines()[3] == "(failed reverse-i-search)'qz': message bob quarter past"
    term.feed(BACKSPACE + b"ua")
    assert screen.lines()[3] == "(reverse-i-search)'qua': message bob quarter past"
    assert term.feed(b"\r") == ["message bob quarter past"]


def test_ctrl_r_then_a_moving_key_edits_the_match_and_ctrl_g_or_esc_cancels():
    term, screen = on_screen()
    term.feed(b"message bob hi\rdraft")
    term.feed(b"\x12bob" + END + b"!")
    assert screen.lines()[1] == "message bob hi!"
    term.feed(CTRL_U + b"draft\x12bob\x07")
    assert screen.lines()[1] == "draft" and screen.cursor == (1, 5)
    term.feed(b"\x12bob\x1b")                          # a lone Esc at the end of a read
    assert screen.lines()[1] == "draft"


# -- completion ---------------------------------------------------------------------------------

def completing_screen(names=()):
    term, screen = on_screen()
    terminal_screen = TerminalScreen(term, 0)
    for name in names:
        terminal_screen.render(Show("joined", "", name))
    return term, screen, terminal_screen


def test_tab_completes_a_command_name_and_adds_a_space():
    term, screen, _ = completing_screen()
    term.feed(b"me\t")
    assert screen.lines()[0] == "message" and screen.cursor == (0, 8)   # and a space
    term.feed(CTRL_U + b"GETA\t")                        # names are read in any case
    assert screen.lines()[0] == "getaddress" and screen.cursor == (0, 11)
    assert term.feed(b"bob\r") == ["getaddress bob"]


def test_tab_completes_as_far_as_the_matches_agree_and_a_second_tab_lists_them():
    term, screen, _ = completing_screen()
    term.feed(b"b\t")
    assert screen.lines()[0] == "b"                      # block, broadcast: nothing shared
    term.feed(b"\t")
    assert screen.lines()[:2] == ["block  broadcast", "b"] and screen.cursor == (1, 1)
    term.feed(b"l\t")
    assert screen.lines()[1] == "block" and screen.cursor == (1, 6)


def test_tab_completes_the_user_names_the_screen_has_seen():
    term, screen, terminal_screen = completing_screen(["carol"])
    terminal_screen.render(ShowOnline(("bob", "bill")))
    terminal_screen.render(Show("broadcast", "hi", "dave"))
    terminal_screen.render(AskConsent("erin"))
    term.feed(b"message c\t")
    assert screen.lines()[screen.cursor[0]] == "message carol" and screen.cursor[1] == 14
    term.feed(CTRL_U + b"block b\t")
    assert screen.lines()[screen.cursor[0]] == "block b"
    term.feed(b"\t")
    assert screen.lines()[screen.cursor[0] - 1:screen.cursor[0] + 1] == ["bill  bob", "block b"]
    term.feed(CTRL_U + b"getaddress e\t")
    assert term.feed(b"\r") == ["getaddress erin "]
    term.feed(CTRL_U + b"online d\t")                   # online takes no user
    assert screen.lines()[screen.cursor[0]] == "online d"
    term.feed(CTRL_U + b"message dave hi d\t")          # the text is not completed
    assert screen.lines()[screen.cursor[0]] == "message dave hi d"


def test_a_name_that_could_drive_the_terminal_is_never_completed():
    term, screen, terminal_screen = completing_screen()
    terminal_screen.render(Show("joined", "", "b\x1b[2Jad"))     # from a hostile server
    terminal_screen.render(ShowOnline(("bo b", "b\u202eob", "bob")))
    assert list(terminal_screen.names) == ["bob"]
    assert term.feed(b"block b\t\r") == ["block bob "]


def test_a_tab_pasted_with_text_after_it_is_a_space_never_a_completion():
    """(a trial's pasted "message<Tab>col<Tab>hi" completed "col" to columbia, and sent it
    to columbia; "message<Tab>google<Tab>hi there" was "message googlehi there")"""
    term, screen, terminal_screen = completing_screen()
    terminal_screen.render(ShowOnline(("columbia",)))
    assert term.feed(b"message\tcol\thi\r") == ["message col hi"]
    assert term.feed(b"message\tgoogle\thi there\r") == ["message google hi there"]
    term.feed(b"message col")
    assert term.feed(b"\t") == [] and term.feed(b"\r") == ["message columbia "]   # typed


def test_tab_while_a_password_is_typed_does_nothing():
    term, screen, _ = completing_screen()
    term.set_secret(True)
    assert term.feed(b"me\t\r") == ["me"]


# -- how the screen words what the core shows --------------------------------------------------

def test_broadcasts_look_different_from_direct_messages():
    assert screen_lines(Show("broadcast", "hello everyone", "seas")) == [
        "seas (to everyone): hello everyone"]
    assert screen_lines(Show("message", "hi", "seas")) == ["seas: hi"]
    assert screen_lines(Show("offline", "kept", "seas")) == ["seas (while you were away): kept"]
    assert screen_lines(Show("back", "The server is back.")) == ["The server is back."]


def test_a_kept_message_says_when_it_was_sent_in_local_time():
    """(a trial's user read messages kept for days as just said)"""
    sent_at = time.mktime((2026, 12, 5, 14, 2, 30, 0, 0, -1))     # (local time)
    assert screen_lines(Show("offline", "kept", "seas", sent_at)) == [
        "seas (while you were away, sent Dec 5 14:02): kept"]
    assert screen_lines(Show("offline", "/me waved", "seas", sent_at)) == [
        "* seas waved (while you were away, sent Dec 5 14:02)"]


# -- the status line during an outage ------------------------------------------------------------

def attached(width=80, interactive=True):
    screen = Screen(width)
    out = screen if interactive else io.BytesIO()
    term = Terminal(0, out, err=io.BytesIO(), interactive=interactive,
                    columns=lambda: screen.width)
    terminal_screen = TerminalScreen(term, 0)
    clock = VirtualClock()
    reactor = Reactor(clock)
    terminal_screen.attach(types.SimpleNamespace(reactor=reactor))
    return term, screen, terminal_screen, clock, out


def outage(retry_at, waiting=0):
    return Status(Stage.LOGGED_IN, "alice", waiting, "refused", False, retry_at=retry_at)


def test_the_status_line_stays_below_the_input_and_counts_down():
    term, screen, terminal_screen, clock, _ = attached()
    terminal_screen.render(Show("outage", "Cannot reach the server (refused)."))
    terminal_screen.render(outage(8.0, waiting=1))
    term.feed(b"message bob later")
    assert screen.lines()[:3] == [
        "Cannot reach the server (refused).", "message bob later",
        "Server unreachable (refused); retrying in 8 s. 1 message waiting to be sent."]
    assert screen.cursor == (1, 17)                     # the cursor stays in the input
    clock.advance(2.5)
    assert screen.lines()[2].startswith("Server unreachable (refused); retrying in 6 s.")
    clock.advance(5.5)
    assert screen.lines()[2].startswith("Server unreachable (refused); retrying now...")
    terminal_screen.render(Show("system", "bob: still there?"))
    assert screen.lines()[:4] == ["Cannot reach the server (refused).", "bob: still there?",
                                  "message bob later", screen.lines()[3]]
    assert screen.lines()[3].startswith("Server unreachable") and screen.cursor == (2, 17)


def test_the_countdown_goes_down_a_second_at_a_time_whatever_the_rounding():
    term, screen, terminal_screen, clock, _ = attached()
    clock.advance(0.1)
    terminal_screen.render(outage(0.1 + 0.2 + 3.0))      # not a whole number of tenths
    seen = []
    for _ in range(40):
        clock.advance(0.1)
        seen.append(screen.lines()[1].split("; ")[1])
    assert sorted(set(seen), key=seen.index) == [
        "retrying in 4 s.", "retrying in 3 s.", "retrying in 2 s.", "retrying in 1 s.",
        "retrying now..."]


def test_the_status_line_goes_when_the_server_is_back():
    term, screen, terminal_screen, clock, _ = attached()
    terminal_screen.render(outage(30.0))
    term.feed(b"x" * 85)                                # the input wraps above it
    assert screen.lines()[2].startswith("Server unreachable")
    terminal_screen.render(Status(Stage.LOGGED_IN, "alice", 0, None, False))
    terminal_screen.render(Show("back", "The server is back."))
    assert screen.lines()[:3] == ["The server is back.", "x" * 80, "xxxxx"]
    assert blank_below(screen, 3) and screen.cursor == (2, 5)
    clock.advance(60)                                   # no countdown left behind
    assert blank_below(screen, 3)


def test_an_outage_with_no_try_planned_says_what_will_try():
    assert outage_line(outage(None), 0.0) == (
        "Server unreachable (refused); it is tried again with the next line you enter.")


def test_before_the_login_what_waits_is_called_typed_lines_not_messages():
    """A name typed at the username prompt during an outage is no message (a trial read
    "1 message waiting" for it)."""
    status = Status(Stage.USERNAME, None, 1, "refused", True, retry_at=5.0)
    assert outage_line(status, 0.0) == (
        "Server unreachable (refused); retrying in 5 s. 1 typed line waiting to be sent.")
    assert outage_line(outage(5.0, waiting=2), 0.0).endswith("2 messages waiting to be sent.")


def test_a_status_line_wider_than_the_terminal_takes_its_short_form_and_one_row():
    """At 30 columns a trial read only "Server unreachable (refused);": the retry and what
    waits were cut off."""
    term, screen, terminal_screen, clock, _ = attached(width=30)
    terminal_screen.render(outage(10.0, waiting=12))
    assert screen.lines()[1] == "No server: 10 s, 12 waiting"
    assert blank_below(screen, 2) and screen.cursor == (0, 0)
    term, screen, terminal_screen, clock, _ = attached(width=20)
    terminal_screen.render(outage(10.0, waiting=12))
    assert screen.lines()[1] == "No server: 10 s, 12"          # (cut to the width, at worst)


def test_on_a_pipe_only_the_outage_and_back_lines_are_written():
    term, screen, terminal_screen, clock, out = attached(interactive=False)
    run = Run(check_server=True, server="127.0.0.1:4119")

    def step(event):
        actions = run.do(event)
        for action in actions:
            if isinstance(action, SHOWN):
                terminal_screen.render(action)
        return [a.request_id for a in actions if isinstance(a, Probe)]

    probes = step(Started())
    for _ in range(3):
        step(RequestFailed(probes[0], "refused"))
        clock.advance(30)
        probes = step(Expired(ProbeDue()))
    step(Replied(probes[0], {}))
    assert out.getvalue().decode() == ("Cannot reach the server at 127.0.0.1:4119 (refused).\n"
                                       "You can type your username now: it is checked once "
                                       "the server answers.\n"
                                       "The server is back.\nPlease enter username:\n")


# -- the resize signal reaches the terminal through the reactor ------------------------------------

def test_sigwinch_redraws_the_input_for_the_new_width_from_the_loop():
    saved = signal.getsignal(signal.SIGWINCH)
    read_fd, write_fd = os.pipe()
    reactor = Reactor(VirtualClock())
    screen = Screen(80)
    term = Terminal(read_fd, screen, err=io.BytesIO(), interactive=True,
                    columns=lambda: screen.width)
    terminal_screen = TerminalScreen(term, read_fd)

    def start():
        term.feed(b"y" * 60)
        screen.resize(40)
        os.kill(os.getpid(), signal.SIGWINCH)       # as the terminal's window does
        reactor.call_soon(reactor.stop)             # at the end of the pass that reads it
    try:
        terminal_screen.run(types.SimpleNamespace(reactor=reactor, start=start))
    finally:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGWINCH, saved)
        os.close(read_fd)
        os.close(write_fd)
        for sock in reactor._wakeup:
            sock.close()
    assert rows(screen, 0, 3) == ["y" * 40, "y" * 20, ""] and screen.cursor == (1, 20)


def test_a_password_typed_ahead_of_its_prompt_is_not_shown():
    """A trial's client waited for the server with the name typed; the password typed after
    it was on the screen in clear, its prompt not yet there."""
    term, screen = on_screen()
    shown = TerminalScreen(term, 0)
    shown.render(Status(Stage.USERNAME, None, 0, None, False))
    shown.render(Prompt(Stage.USERNAME))
    assert term.feed(b"network\r") == ["network"]
    shown.render(Status(Stage.USERNAME, "network", 1, "refused", True))   # the server is away
    term.feed(b"seemsez")
    assert "seemsez" not in screen.text() and "network" in screen.text()
    shown.render(Prompt(Stage.USERNAME))                 # the name refused: asked again
    term.feed(b"\x15")                                   # (Ctrl-U: the hidden line goes)
    term.feed(b"seas")
    assert "seas" in screen.text()                       # a name shows as it is typed
    assert term.feed(b"\r") == ["seas"]
    shown.render(Status(Stage.PASSWORD, "seas", 0, None, False))
    term.feed(b"summerisover")
    assert "summerisover" not in screen.text()


def test_names_kept_for_tab_are_bounded_and_a_long_list_is_cut(monkeypatch):
    """(a hostile server named 200,000 users: the client grew by 30 MB, and Tab Tab printed
    50,000 names, 3 MB)"""
    import terminal
    monkeypatch.setattr(terminal, "MAX_NAMES", 300)
    monkeypatch.setattr(terminal, "MAX_LISTED", 5)
    term, screen, terminal_screen = completing_screen()
    terminal_screen.render(ShowOnline(tuple(f"u{n}" for n in range(400))))
    terminal_screen.render(ShowOnline(("zed",)))
    assert len(terminal_screen.names) == 300 and "zed" in terminal_screen.names
    term.feed(b"block u\t\t")                         # 299 names begin with u
    assert "(and 294 more: type more of the name)" in "".join(screen.lines())
