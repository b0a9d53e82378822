"""The terminal's pure helpers: keys from escape sequences (keys.py), columns and wrapping
(cells.py), the line editor (line_editor.py) and completion (completion.py); no I/O."""
import pytest

from cells import char_cells, clipped, layout
from completion import IN_TEXT, Completer, Completion, common_start
from keys import Key, KeyDecoder
from line_editor import (HISTORY_LINES, MAX_MARKS, ClearScreen, EndOfInput, Entered,
                         LineEditor, Listed)
from terminal import COMMAND_NAMES, USER_COMMANDS


def keys_of(text):
    return KeyDecoder().feed(text)


# -- keys ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, key", [
    ("\x1b[A", Key.HISTORY_BACK), ("\x1bOB", Key.HISTORY_FORWARD), ("\x1b[C", Key.RIGHT),
    ("\x1bOD", Key.LEFT), ("\x1b[H", Key.HOME), ("\x1b[1~", Key.HOME), ("\x1b[7~", Key.HOME),
    ("\x1bOH", Key.HOME), ("\x01", Key.HOME), ("\x1b[F", Key.END), ("\x1b[4~", Key.END),
    ("\x1b[8~", Key.END), ("\x1bOF", Key.END), ("\x05", Key.END), ("\x1b[3~", Key.DELETE),
    ("\x1bb", Key.WORD_LEFT), ("\x1bf", Key.WORD_RIGHT), ("\x1b[1;5C", Key.WORD_RIGHT),
    ("\x1b[1;3D", Key.WORD_LEFT), ("\x12", Key.SEARCH_BACK), ("\t", Key.COMPLETE),
    ("\x0c", Key.REDRAW), ("\x07", Key.CANCEL), ("\x1b[1A", Key.HISTORY_BACK),
])
def test_each_key_and_its_sequences(text, key):
    assert keys_of(text) == [key]


@pytest.mark.parametrize("text", ["\x1b[2~", "\x1b[5~", "\x1b[15~", "\x1b[1;2A", "\x1bOP",
                                  "\x1b[200~", "\x1b[?1;2c", "\x1bx", "\x1b[M"])
def test_unknown_sequences_are_swallowed_whole(text):
    assert keys_of("a" + text + "b") == ["a", "b"]


def test_a_sequence_may_arrive_a_character_at_a_time():
    decoder = KeyDecoder()
    assert [key for char in "\x1b[3~x" for key in decoder.feed(char)] == [Key.DELETE, "x"]


def test_a_control_character_inside_a_sequence_ends_it_and_counts():
    assert keys_of("\x1b[1\r") == [Key.ENTER]
    assert keys_of("\x1b\r") == [Key.ENTER]


def test_a_lone_esc_waits_and_flush_makes_it_the_esc_key():
    decoder = KeyDecoder()
    assert decoder.feed("ab\x1b") == ["a", "b"] and decoder.pending_escape
    assert decoder.flush() == [Key.CANCEL] and not decoder.pending_escape
    assert decoder.flush() == []
    assert decoder.feed("\x1b\x1bb") == [Key.WORD_LEFT]     # Esc twice, then Alt-B


def test_cr_lf_is_one_enter():
    assert keys_of("\r\n\n\r") == [Key.ENTER, Key.ENTER, Key.ENTER]


# -- columns ------------------------------------------------------------------------------------

def test_columns_of_characters():
    assert [char_cells(c) for c in "a漢😀\u0301\u200b\u00ad"] == [1, 2, 2, 0, 0, 1]
    assert layout("漢字ab", 6, 80).cursor_col == 6      # a row's columns: the characters' sum


@pytest.mark.parametrize("text, cursor, width, expect", [
    ("", 0, 80, (0, 0, 1, False)),
    ("a" * 80, 80, 80, (1, 0, 2, True)),
    ("a" * 81, 81, 80, (1, 1, 2, False)),
    ("a" * 160, 160, 80, (2, 0, 3, True)),
    ("a" * 160, 80, 80, (1, 0, 3, True)),
    ("a" * 79 + "漢", 80, 80, (1, 2, 2, False)),
    ("a" * 79 + "漢", 79, 80, (1, 0, 2, False)),
    ("a" * 78 + "漢", 80, 80, (1, 0, 2, True)),
    ("e\u0301" * 3, 6, 2, (1, 1, 2, False)),
])
def test_where_wrapped_text_puts_the_cursor(text, cursor, width, expect):
    place = layout(text, cursor, width)
    assert (place.cursor_row, place.cursor_col, place.rows, place.fills_last_row) == expect


def test_clipped_keeps_what_fits():
    assert clipped("漢字ab", 3) == "漢" and clipped("abc", 5) == "abc"


# -- the editor ---------------------------------------------------------------------------------

def typed(editor, text):
    results = [editor.press(key) for key in keys_of(text)]
    return [result for result in results if result is not None]


def test_enter_gives_the_line_and_starts_an_empty_one():
    editor = LineEditor()
    assert typed(editor, "hi\r") == [Entered("hi")]
    assert editor.view() == ("", 0)


def test_ctrl_d_ends_input_only_on_an_empty_line_and_ctrl_l_asks_for_a_clear_screen():
    editor = LineEditor()
    assert typed(editor, "\x04") == [EndOfInput()]
    assert typed(editor, "a\x04\x0c") == [ClearScreen()]


def test_the_line_is_cut_at_its_most_characters_and_marks():
    editor = LineEditor(max_chars=5)
    typed(editor, "abcdefgh")
    assert editor.text == "abcde"
    editor = LineEditor()
    typed(editor, "e" + "\u0301" * (MAX_MARKS + 10))
    assert editor.text == "e" + "\u0301" * MAX_MARKS


def test_history_keeps_neither_blank_lines_nor_a_repeat_and_forgets_the_oldest():
    editor = LineEditor()
    typed(editor, "one\r\r  \rone\rtwo\r")
    assert editor.history == ["one", "two"]
    for n in range(HISTORY_LINES + 5):
        typed(editor, f"{n}\r")
    assert len(editor.history) == HISTORY_LINES and editor.history[0] == "5"


def test_a_recalled_line_can_be_edited_and_sent():
    editor = LineEditor()
    typed(editor, "message bob hi\r\x1b[A!\r")
    assert editor.history[-1] == "message bob hi!"


def test_down_without_up_and_up_without_history_do_nothing():
    editor = LineEditor()
    typed(editor, "draft\x1b[B\x1b[A")
    assert editor.view() == ("draft", 5)


def test_a_search_that_finds_nothing_and_is_accepted_leaves_the_line_as_it_was():
    editor = LineEditor()
    typed(editor, "one\rdraft\x12zz")
    assert editor.view()[0] == "(failed reverse-i-search)'zz': "
    assert typed(editor, "\r") == [Entered("draft")]


def test_backspacing_the_whole_query_finds_nothing_yet():
    editor = LineEditor()
    typed(editor, "one\r\x12o\x7f")
    assert editor.view() == ("(reverse-i-search)'': ", 22)
    typed(editor, "\x12")                               # an empty query searches nothing
    assert editor.view() == ("(reverse-i-search)'': ", 22)


def test_no_completer_and_no_match_leave_the_line_alone():
    editor = LineEditor()
    typed(editor, "me\t")
    assert editor.text == "me"
    editor = LineEditor(complete=lambda before: None)
    typed(editor, "me\t\t")
    assert editor.text == "me"


def test_completion_in_the_middle_of_a_line_replaces_the_word_before_the_cursor():
    editor = LineEditor(complete=Completer(["message", "block"], ["message"], {"bob"}))
    typed(editor, "me hi\x1bb\x1b[D\t")
    assert editor.text == "message  hi" and editor.cursor == 8


def test_several_matches_are_completed_as_far_as_they_agree():
    editor = LineEditor(complete=Completer(["message"], ["message"], {"billy", "bill2"}))
    typed(editor, "message b\t")
    assert editor.text == "message bill"
    typed(editor, "y\t")
    assert editor.text == "message billy "


def test_listing_needs_two_tabs_in_a_row():
    editor = LineEditor(complete=Completer(["block", "broadcast"], [], set()))
    assert typed(editor, "b\tx\x7f\t") == []
    assert typed(editor, "\t") == [Listed(("block", "broadcast"))]


# -- completion ---------------------------------------------------------------------------------

def test_what_a_word_could_become():
    complete = Completer(["message", "Y", "exit"], ["message", "Y"], {"bob", "bill", "Bea"})
    assert complete("") == Completion(0, ("Y", "exit", "message"))
    assert complete("y") == Completion(0, ("Y",))
    assert complete("message ") == Completion(8, ("Bea", "bill", "bob"))
    assert complete("MESSAGE b") == Completion(8, ("bill", "bob"))
    assert complete("y b") == Completion(2, ("bill", "bob"))
    assert complete("zz") is None and complete("message zz") is None
    # past a command's name and a user's: text, where a Tab is a space between words (a
    # trial's pasted "col1<Tab>col2" arrived as "col1col2")
    assert complete("exit b") is IN_TEXT and complete("message bob hi") is IN_TEXT
    editor = LineEditor(complete=complete)
    typed(editor, "message bob col1\tcol2\t\t")
    assert editor.text == "message bob col1 col2  "
    assert complete("help me") == Completion(5, ("message",))       # a command's name again


def test_common_start():
    assert common_start(["block", "broadcast"]) == "b"
    assert common_start(["bill", "bill2"]) == "bill" and common_start(["a", "b"]) == ""


def test_what_is_erased_while_secret_is_not_kept_for_ctrl_y():
    """A trial's password, erased with Ctrl-U at its prompt, came back in clear at Ctrl-Y."""
    editor = LineEditor()
    typed(editor, "keep\x15")                   # Ctrl-U: kept for Ctrl-Y
    editor.secret = True
    typed(editor, "wastingtime\x15wastingtime\x17\r")      # Ctrl-U and Ctrl-W while secret
    editor.secret = False
    typed(editor, "\x19")                       # Ctrl-Y
    assert editor.text == ""


def test_tab_completes_commands_after_a_slash_and_names_after_any_spelling():
    """(a re-attack's /mes and msg se completed nothing, once the terminal read them)"""
    complete = Completer(COMMAND_NAMES, USER_COMMANDS, {"seas"})
    assert complete("/mes").matches == ("/message",)
    assert complete("/getaddress se").matches == ("seas",)
    assert complete("msg se").matches == ("seas",)
    assert complete("mes").matches == ("message",)
