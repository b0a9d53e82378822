"""The tests' virtual terminal (vt.py) behaves as xterm does where the line editor relies on it:
pending wrap at the right margin, wide characters, erasing, relative moves, scrolling."""
import pytest

from vt import Screen


def shown(data, width=10, height=4):
    screen = Screen(width, height)
    screen.write(data.encode())
    return screen


def test_a_full_row_leaves_the_cursor_pending_in_the_last_column():
    screen = shown("a" * 10)
    assert screen.lines()[:2] == ["a" * 10, ""] and screen.cursor == (0, 9)
    assert screen.pending_wrap
    screen.write(b"b")                          # the next character wraps first
    assert screen.lines()[:2] == ["a" * 10, "b"] and screen.cursor == (1, 1)


def test_cr_and_moves_cancel_a_pending_wrap():
    screen = shown("a" * 10 + "\r")
    assert screen.cursor == (0, 0) and not screen.pending_wrap
    screen = shown("a" * 10 + "\x1b[2D" + "b")
    assert screen.lines()[0] == "a" * 7 + "baa" and screen.cursor == (0, 8)


def test_a_wide_character_that_does_not_fit_goes_whole_to_the_next_row():
    screen = shown("a" * 9 + "漢")
    assert screen.lines()[:2] == ["a" * 9, "漢"] and screen.cursor == (1, 2)
    screen = shown("a" * 8 + "漢")
    assert screen.lines()[0] == "a" * 8 + "漢" and screen.pending_wrap


def test_combining_marks_take_no_column():
    screen = shown("e\u0301x")
    assert screen.lines()[0] == "e\u0301x" and screen.cursor == (0, 2)


def test_erasing_and_moving():
    screen = shown("one\r\ntwo\r\nthree\x1b[2A\r\x1b[J")
    assert screen.lines()[:3] == ["", "", ""]
    screen = shown("abcdef\x1b[3D\x1b[K")
    assert screen.lines()[0] == "abc"
    screen = shown("abc\x1b[H\x1b[2J")
    assert screen.text() == "" and screen.cursor == (0, 0)


def test_a_line_feed_at_the_bottom_scrolls():
    screen = shown("1\n2\n3\n4\n5", height=3)
    assert screen.lines() == ["3", "4", "5"]
    assert screen.everything() == "1\n2\n3\n4\n5"


def test_resizing_keeps_rows_and_the_cursors_row_without_reflow():
    screen = shown("a" * 10 + "bbb")
    screen.resize(6)
    assert screen.lines()[:2] == ["a" * 6, "bbb"] and screen.cursor == (1, 3)


@pytest.mark.parametrize("data", ["\x1b[31m", "\x1b]0;title\x07", "\x07", "\x1bc"])
def test_anything_else_fails_the_test(data):
    with pytest.raises(AssertionError):
        shown(data)
