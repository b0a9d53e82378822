"""The terminal front end: line editor, redraw, escaping; a pty only for the mode switch.

What a terminal shows is read from the tests' virtual terminal (vt.py); the wrapping, the
keys and the status line have tests of their own (test_terminal_screen.py)."""
import codecs
import io
import os
import pty
import termios

import pytest

from cells import visible
from terminal import NOT_ENTERED, Terminal
from vt import Screen


def tty_terminal():
    out = io.BytesIO()
    return Terminal(0, out, err=io.BytesIO(), interactive=True), out


def on_screen(width=80, height=24):
    """A Terminal drawing on a virtual terminal -> (terminal, screen)."""
    screen = Screen(width, height)
    return Terminal(0, screen, err=io.BytesIO(), interactive=True,
                    columns=lambda: screen.width), screen


def pipe_terminal():
    out = io.BytesIO()
    return Terminal(0, out, err=io.BytesIO(), interactive=False), out


# -- the line editor ----------------------------------------------------------------------------

def test_typed_characters_are_echoed_and_enter_ends_the_line():
    term, out = tty_terminal()
    assert term.feed(b"hi") == []
    assert out.getvalue() == b"hi"                  # typing at the end writes just that
    term, screen = on_screen()
    term.feed(b"hi")
    assert term.feed(b" there\r") == ["hi there"]
    assert screen.lines()[:2] == ["hi there", ""] and screen.cursor == (1, 0)


def test_cr_lf_is_one_enter_and_lf_alone_works():
    term, _ = tty_terminal()
    assert term.feed(b"a\r\nb\n\n") == ["a", "b", ""]


def test_several_lines_in_one_chunk():
    term, _ = tty_terminal()
    assert term.feed(b"one\rtwo\rthr") == ["one", "two"]
    assert term.feed(b"ee\r") == ["three"]


def test_backspace_and_del_erase_one_character_and_redraw():
    term, screen = on_screen()
    term.feed(b"abc\x7f")
    assert screen.lines()[0] == "ab" and screen.cursor == (0, 2)
    term.feed(b"\x08")
    assert term.feed(b"\r") == ["a"]


def test_backspace_on_an_empty_line_does_nothing():
    term, out = tty_terminal()
    term.feed(b"\x7f\x7f")
    assert out.getvalue() == b""
    assert term.feed(b"x\r") == ["x"]


def test_backspace_removes_a_whole_multibyte_character():
    term, _ = tty_terminal()
    assert term.feed("né\x7f\r".encode()) == ["n"]


def test_ctrl_u_erases_the_line():
    term, screen = on_screen()
    term.feed(b"secret typo\x15")
    assert screen.text() == "" and screen.cursor == (0, 0)
    assert term.feed(b"ok\r") == ["ok"]


def test_ctrl_w_erases_the_last_word():
    term, _ = tty_terminal()
    assert term.feed(b"message bob oops  \x17hi\r") == ["message bob hi"]


def test_utf8_split_across_chunks():
    term, screen = on_screen()
    data = "héllo €".encode()
    lines = []
    for i in range(len(data)):
        lines += term.feed(data[i:i + 1])
    assert screen.lines()[0] == "héllo €"
    lines += term.feed(b"\r")
    assert lines == ["héllo €"]


def test_invalid_utf8_is_replaced():
    term, _ = tty_terminal()
    assert term.feed(b"a\xffb\r") == ["a\ufffdb"]


def test_ctrl_d_on_an_empty_line_ends_input():
    term, _ = tty_terminal()
    assert term.feed(b"last\r\x04ignored\r") == ["last"]
    assert term.ended
    assert term.feed(b"more\r") == []


def test_ctrl_d_in_the_middle_of_a_line_is_ignored():
    term, _ = tty_terminal()
    assert term.feed(b"ab\x04c\r") == ["abc"]
    assert not term.ended


@pytest.mark.parametrize("keys", [b"\x1b[A", b"\x1b[1;5C", b"\x1bOP", b"\x1bx", b"\x1b[15~",
                                  b"\x1b[1;2A", b"\x1b[200~", b"\x1b[?25h"])
def test_escape_sequences_from_keys_are_ignored(keys):
    term, screen = on_screen()
    assert term.feed(b"a" + keys + b"b\r") == ["ab"]
    assert screen.lines()[0] == "ab"            # (vt.py fails on any sequence it does not know)


def test_other_control_characters_are_not_inserted():
    term, _ = tty_terminal()
    assert term.feed(b"a\x00\x11\x13b\x14\x16\x18c\x1a\x1f\xc2\x9b\r") == ["abc"]   # C1 too


def test_marks_that_would_reorder_the_line_are_not_inserted():
    term, _ = tty_terminal()
    assert term.feed("a\u202eb\u2066c\r".encode()) == ["abc"]


def test_secret_input_is_not_echoed_but_still_read():
    term, screen = on_screen()
    term.set_secret(True)
    term.feed(b"116bwa")
    assert screen.text() == "" and screen.cursor == (0, 0)
    assert term.feed(b"x\x7fy\r") == ["116bway"]
    assert screen.text() == "" and screen.cursor == (1, 0)
    term.set_secret(False)
    term.feed(b"seen")
    assert screen.lines()[:2] == ["", "seen"]


# -- output while typing ------------------------------------------------------------------------

def test_show_clears_the_input_line_prints_and_redraws_it():
    term, screen = on_screen()
    term.feed(b"message bo")
    term.show("bob: hi")
    assert screen.lines()[:2] == ["bob: hi", "message bo"] and screen.cursor == (1, 10)
    assert term.feed(b"b x\r") == ["message bob x"]


def test_show_does_not_redraw_a_secret():
    term, out = tty_terminal()
    term.set_secret(True)
    term.feed(b"pass")
    term.show("bob has logged in.")
    assert b"pass" not in out.getvalue() and b"bob has logged in." in out.getvalue()


def test_shown_text_cannot_drive_the_terminal():
    term, out = tty_terminal()
    term.show("mallory: \x1b[2J\x1b]0;owned\x07\rfake\u202e\x9b")
    shown = out.getvalue().split(b"\x1b[J", 1)[1]      # after the input area is erased
    assert shown.endswith(b"\r\n")
    shown = shown[:-2]
    assert b"\x1b" not in shown and b"\r" not in shown and b"\x07" not in shown
    assert "\\x1b[2J".encode() in shown and "\\u202e".encode() in shown
    assert "\\x9b".encode() in shown
    term, screen = on_screen()
    term.show("mallory: \x1b[2J\rfake")
    assert screen.lines()[0] == "mallory: \\x1b[2J\\x0dfake"


def test_visible_keeps_ordinary_text_and_turns_tabs_into_spaces():
    assert visible("héllo, wörld! 😀") == "héllo, wörld! 😀"
    assert visible("a\tb\nc") == "a b\\x0ac"
    assert visible("flag \U0001F3F4\U000E0067\U000E0062\U000E007F, \U0001F469\u200d\U0001F4BB") \
        == "flag \U0001F3F4\U000E0067\U000E0062\U000E007F, \U0001F469\u200d\U0001F4BB"


def test_visible_shows_every_bidi_control_as_an_escape():
    assert visible("a\u202eb\u2067c\u200fd\u061ce") == "a\\u202eb\\u2067c\\u200fd\\u061ce"


def test_log_goes_to_stderr_and_keeps_the_input_line():
    term, screen = on_screen()
    term.feed(b"typing")
    term.log("refused delivery \x1b[31m")
    assert term.err.getvalue() == b"refused delivery \\x1b[31m\n"
    assert screen.lines()[0] == "typing" and screen.cursor == (0, 6)


def test_log_without_a_stream_is_dropped():
    term = Terminal(0, io.BytesIO(), interactive=False)
    term.log("nothing")
    assert term.out.getvalue() == b""


# -- pipes and files ----------------------------------------------------------------------------

def test_pipe_lines_split_on_lf_crlf_or_cr_alone():
    term, out = pipe_terminal()
    assert term.feed(b"alice\r\npw\r\r\nmessage bob  a b \npart") == [
        "alice", "pw", "", "message bob  a b "]
    assert term.feed(b"ial\n") == ["partial"]
    assert out.getvalue() == b""          # nothing is echoed


def test_pipe_utf8_across_chunks_and_invalid_bytes():
    term, _ = pipe_terminal()
    data = "é\n".encode()
    assert term.feed(data[:1]) == []
    assert term.feed(data[1:] + b"\xff\n") == ["é", "\ufffd"]


def test_pipe_drops_a_byte_order_mark_at_the_start_of_any_line():
    """(at the start of the file, and of a piece of it a Windows editor saved: a trial's
    joined file made "message" an unknown command with an invisible first character)"""
    term, _ = pipe_terminal()
    assert term.feed(b"\xef\xbb") == []           # (it may come split across reads)
    assert term.feed(b"\xbfcolumbia\n\xef\xbb\xbfpw\nmessage seas a\xef\xbb\xbfb\n") == [
        "columbia", "pw", "message seas a\ufeffb"]     # (inside a line it is the user's)
    term, _ = pipe_terminal()
    assert term.feed(b"\xef") == [] and term.feed(b"x\n") == ["\ufffdx"]    # not a BOM after all


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_pipe_reads_a_file_written_in_utf_16_as_it_was_written(encoding):
    """Windows PowerShell's `>` writes UTF-16 with its byte order mark: a trial's file was a
    wrong username on every line."""
    bom = codecs.BOM_UTF16_LE if encoding.endswith("le") else codecs.BOM_UTF16_BE
    data = bom + "columbia\r\n116bway\r\nmessage seas café ☃\r\n".encode(encoding)
    term, _ = pipe_terminal()
    lines = []
    for at in range(0, len(data), 3):       # (odd reads: a character may come split)
        lines += term.feed(data[at:at + 3])
    assert lines == ["columbia", "116bway", "message seas café ☃"]


def test_pipe_lines_may_end_with_a_cr_alone_and_a_crlf_may_come_split():
    """(a file saved on an old Mac ends its lines with CR alone: a trial's was one long line)"""
    term, _ = pipe_terminal()
    assert term.feed(b"columbia\r116bway\rmessage seas hi\r") == ["columbia", "116bway"]
    assert term.feed(b"\nonline\r\n\r\rlogout") == ["message seas hi", "online", "", ""]
    assert term.finish() == ["logout"]
    term, _ = pipe_terminal()
    assert term.feed(b"a\r") == [] and term.feed(b"b\n") == ["a", "b"]
    assert term.feed(b"c\r") == [] and term.finish() == ["c"]


def test_pipe_last_line_without_newline_is_kept_at_the_end():
    term, _ = pipe_terminal()
    term.feed(b"online\nlogout")
    assert term.finish() == ["logout"]
    assert term.finish() == []


def test_pipe_show_writes_the_line_and_log_goes_to_stderr():
    term, out = pipe_terminal()
    term.show("bob: \x1bhi")
    term.log("note")
    assert out.getvalue() == b"bob: \\x1bhi\n"
    assert term.err.getvalue() == b"note\n"


def test_tty_finish_returns_nothing():
    term, _ = tty_terminal()
    term.feed(b"half")
    assert term.finish() == []


def test_writes_to_a_closed_reader_are_ignored():
    class Gone(io.BytesIO):
        def write(self, data):
            raise BrokenPipeError

    Terminal(0, Gone(), interactive=False).show("x")


# -- the terminal mode --------------------------------------------------------------------------

@pytest.fixture
def pty_pair():
    leader, follower = pty.openpty()
    yield leader, follower
    os.close(leader)
    os.close(follower)


def test_detects_a_terminal_and_switches_to_cbreak_then_restores(pty_pair):
    _, follower = pty_pair
    before = termios.tcgetattr(follower)
    out = os.fdopen(os.dup(follower), "wb")
    with Terminal(follower, out) as term:
        assert term.interactive
        lflag = termios.tcgetattr(follower)[3]
        assert not lflag & termios.ECHO and not lflag & termios.ICANON
        assert lflag & termios.ISIG                      # Ctrl-C still sends SIGINT
        assert not termios.tcgetattr(follower)[0] & termios.IXON     # Ctrl-S stops nothing
    assert termios.tcgetattr(follower) == before
    out.close()


def test_what_was_typed_before_the_switch_is_still_read(pty_pair):
    """A name typed as the client starts (a new user's, echoed by the terminal) waits to be
    read, not flushed with the mode switch."""
    leader, follower = pty_pair
    os.write(leader, b"windows\n")
    out = os.fdopen(os.dup(follower), "wb")
    with Terminal(follower, out):
        os.set_blocking(follower, False)
        try:
            assert os.read(follower, 100) == b"windows\n"
        finally:
            os.set_blocking(follower, True)
    out.close()


def test_restores_the_terminal_after_an_exception(pty_pair):
    _, follower = pty_pair
    before = termios.tcgetattr(follower)
    out = os.fdopen(os.dup(follower), "wb")
    with pytest.raises(RuntimeError):
        with Terminal(follower, out) as term:
            term.feed(b"half typed")
            raise RuntimeError("boom")
    assert termios.tcgetattr(follower) == before
    out.close()


def test_restore_ends_a_half_typed_line_and_says_it_was_not_sent():
    """(left as it was, a trial's read as sent)"""
    term, screen = on_screen()
    term.feed(b"half")
    term.restore()
    assert screen.lines()[:3] == ["half", NOT_ENTERED, ""] and screen.cursor == (2, 0)
    term.restore()
    assert screen.lines()[:3] == ["half", NOT_ENTERED, ""] and screen.cursor == (2, 0)


def test_a_pipe_is_not_a_terminal():
    read_fd, write_fd = os.pipe()
    try:
        with Terminal(read_fd, io.BytesIO(), interactive=False) as term:
            assert not term.interactive
        out = os.fdopen(os.dup(write_fd), "wb")
        assert not Terminal(read_fd, out).interactive
        out.close()
    finally:
        os.close(read_fd)
        os.close(write_fd)


def test_a_line_the_disk_takes_a_byte_of_is_a_failed_write(monkeypatch):
    """(a trial's output on a nearly full disk: one byte of a message's line was written, the
    write said nothing, and the message was acknowledged, lost; the error came a line later)"""
    import terminal
    read_end, write_end = os.pipe()

    class PartialStream:                # a stream that takes one byte and says so
        def write(self, data):
            return 1

        def flush(self):
            pass

        def fileno(self):
            return write_end
    calls = []

    def one_byte_then_full(descriptor, data):
        calls.append(bytes(data))
        if len(calls) > 1:
            raise OSError(28, "No space left on device")
        return 1
    monkeypatch.setattr(terminal.os, "write", one_byte_then_full)
    try:
        assert terminal._write_to(PartialStream(), b"windows: w#36\n") == \
            "No space left on device"
        assert calls == [b"windows: w#36\n", b"indows: w#36\n"]     # the rest was tried
    finally:
        os.close(read_end)
        os.close(write_end)
