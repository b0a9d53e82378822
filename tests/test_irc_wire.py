"""IRC lines (irc_wire): parsing with tags, source and trailing parameters, the length limits,
bad UTF-8, formatting that needs a trailing ':' exactly when it must, and long text cut into
lines that fit."""
import random
import re
import subprocess
import sys

import pytest

from irc_wire import (MAX_LINE_BYTES, MAX_MASK_PIECES, BadText, Message, TooLong, escape_tag,
                      flat, fold, line, mask_matcher, nick_ok, parse, pieces, text_bytes)
from realprocs import ROOT, WAIT_S


def test_a_plain_command_with_a_trailing_parameter():
    assert parse(b"PRIVMSG seas :hello there\r\n") == Message("PRIVMSG", ("seas", "hello there"))


def test_commands_are_upper_cased_and_extra_spaces_do_not_make_empty_parameters():
    assert parse(b"privmsg   seas   hi") == Message("PRIVMSG", ("seas", "hi"))


def test_tags_and_source_are_read_and_tag_values_unescaped():
    message = parse(b"@time=2026-12-05T10:00:00.000Z;+draft/x=a\\sb\\:c\\\\;flag "
                    b":columbia!c@chat PRIVMSG #chat :hi")
    assert message.tags == (("time", "2026-12-05T10:00:00.000Z"), ("+draft/x", "a b;c\\"),
                            ("flag", None))
    assert message.source == "columbia!c@chat"
    assert message.params == ("#chat", "hi")


def test_an_empty_trailing_parameter_is_kept_and_a_blank_line_is_nothing():
    assert parse(b"PING :") == Message("PING", ("",))
    assert parse(b"\r\n") is None
    assert parse(b"   ") is None


def test_a_line_past_512_bytes_is_too_long_but_tags_have_their_own_room():
    body = b"PRIVMSG seas :" + b"x" * (MAX_LINE_BYTES - 2 - 14)
    assert parse(body).params[1].startswith("x")
    with pytest.raises(TooLong):
        parse(body + b"x")
    assert parse(b"@+tag=" + b"v" * 3000 + b" " + body).params[0] == "seas"
    with pytest.raises(TooLong):
        parse(b"@+tag=" + b"v" * 5000 + b" PING x")


def test_bad_utf8_is_refused_not_guessed():
    with pytest.raises(BadText):
        parse(b"PRIVMSG seas :caf\xe9")


def test_a_fifteenth_parameter_takes_the_rest():
    message = parse(b"X " + b" ".join(b"p%d" % n for n in range(20)))
    assert len(message.params) == 15 and message.params[-1] == "p14 p15 p16 p17 p18 p19"


@pytest.mark.parametrize("last, wire", [("hi", b"hi"), ("hello there", b":hello there"),
                                        ("", b":"), (":)", b"::)")])
def test_the_last_parameter_is_trailing_exactly_when_it_must_be(last, wire):
    assert line("srv", "NOTICE", "seas", last) == b":srv NOTICE seas " + wire + b"\r\n"


def test_tags_are_escaped_and_a_formatted_line_parses_back():
    raw = line("columbia!c@chat", "PRIVMSG", "#chat", "a b", tags={"time": "x;y z", "f": None})
    assert raw.startswith(b"@time=x\\:y\\sz;f :columbia!c@chat PRIVMSG")
    assert parse(raw) == Message("PRIVMSG", ("#chat", "a b"), (("time", "x;y z"), ("f", None)),
                                 "columbia!c@chat")
    assert escape_tag("\\\r\n") == "\\\\\\r\\n"


def test_a_line_that_would_pass_512_bytes_without_its_tags_is_cut_between_characters():
    """A trial's 502-byte PING got a 534-byte PONG back, a 503-byte NICK a 544-byte 432."""
    pong = line("chat.server", "PONG", "chat.server", "p" * 502)
    assert len(pong) == 512 and pong.endswith(b"ppp\r\n")
    assert parse(pong).params == ("chat.server", "p" * (510 - len(":chat.server PONG chat.server ")))
    wide = line("chat.server", "NOTICE", "seas", "é" * 300, tags={"time": "t" * 600})
    head, body = wide.split(b" ", 1)
    assert head == b"@time=" + b"t" * 600 and len(body) <= 512 and body.endswith(b"\xc3\xa9\r\n")
    assert line("s", "PING", "x") == b":s PING x\r\n"


def test_line_breaks_in_text_cannot_inject_a_command():
    assert flat("hi\r\nQUIT :x\nand\0more") == "hi QUIT :x and more"
    assert b"\n" not in line("s", "PRIVMSG", "seas", pieces("a\nb")[0])[:-2]


def test_long_text_is_cut_into_pieces_that_fit_between_characters():
    text = ("word " * 300) + "é" * 500
    cut = pieces(text)
    assert len(cut) > 1
    assert all(len(piece.encode()) <= 400 for piece in cut)
    assert "".join(cut).replace(" ", "") == text.replace(" ", "")
    assert pieces("short") == ["short"]


@pytest.mark.parametrize("text", [" " * 4000, "a" + " " * 1000 + "b", "x" * 399 + " ",
                                  ("word " * 300).strip(), " lead" + "y" * 800])
def test_pieces_keep_every_character_but_the_one_space_at_each_break_and_none_is_empty(text):
    """(a fuzzer's 4,000 spaces came out as 400 and an empty PRIVMSG; "a", 1,000 spaces and
    "b" lost 550 of them)"""
    cut = pieces(text)
    assert all(cut) and all(len(piece.encode()) <= 400 for piece in cut)
    joined = " ".join(cut)
    assert joined == text or "".join(cut) == text    # a break at a space, or between two


@pytest.mark.parametrize("nick, ok", [("columbia", True), ("csee4119", True), ("4119", False),
                                      ("#chat", False), ("a b", False), ("a,b", False),
                                      ("x!y", False), ("", False), ("ünï", True)])
def test_which_names_can_be_nicks(nick, ok):
    assert nick_ok(nick) is ok


def test_names_fold_by_ascii_only():
    assert fold("Columbia") == "columbia"
    assert fold("ÜBER") == "Über"


def test_no_param_can_end_a_line_and_start_a_command():
    reason = "bye\r\n:evil!x@y PRIVMSG #chat :injected\0"
    made = line("ann!ann@chat", "QUIT", reason)
    assert made.count(b"\r\n") == 1 and made.endswith(b"\r\n") and b"\0" not in made
    assert made == b":ann!ann@chat QUIT :bye :evil!x@y PRIVMSG #chat :injected \r\n"
    assert line("chat", "432", "*", "\0x", "Erroneous nickname") == (
        b":chat 432 *  x :Erroneous nickname\r\n")


def _regex_mask_matches(mask, name):
    """The old rule, one regular expression of the whole mask: right, but exponential."""
    pattern = "".join(".*" if char == "*" else "." if char == "?" else re.escape(char)
                      for char in fold(mask))
    return re.fullmatch(pattern, fold(name), re.S) is not None


def test_a_mask_matches_as_one_regular_expression_of_it_would():
    rng = random.Random(9)
    for _ in range(20000):
        name = "".join(rng.choice("abAB[") for _ in range(rng.randrange(0, 7)))
        mask = "".join(rng.choice("ab[*?*A") for _ in range(rng.randrange(0, 7)))
        assert mask_matcher(mask)(name) == _regex_mask_matches(mask, name), (mask, name)


def test_a_mask_of_many_stars_is_answered_at_once():
    """One WHO of 65 stars and a letter held the server's thread for minutes; 500 stars, as a
    512-byte line allows, must be answered (a bounded wait on a process of its own, so that
    the old exponential rule fails the test instead of hanging it)."""
    code = ("import irc_wire; "
            "print(irc_wire.mask_matcher('*' * 500 + 'z')('wikipedia' * 40), "
            "irc_wire.mask_matcher('*' * 500 + 'a')('wikipedia' * 40), "
            "irc_wire.mask_matcher('*a' * 16 + '**')('a' * 300))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=WAIT_S)
    assert done.stdout.split() == ["False", "True", "True"], done.stderr


def test_a_mask_of_more_pieces_than_the_most_between_its_stars_matches_nobody():
    """(so a WHO's work stays a small multiple of its names)"""
    assert mask_matcher("*a" * MAX_MASK_PIECES + "*")("a" * MAX_MASK_PIECES)
    assert not mask_matcher("*a" * (MAX_MASK_PIECES + 1) + "*")("a" * 100)


def test_a_message_between_long_nicks_of_wide_letters_keeps_all_its_text():
    """(a reviewer's 64-character nicks of 4-byte letters: at least 100 bytes of text a line,
    the line was cut, and 3 characters of 300 lost)"""
    source, target = "𝔸" * 64 + "!~uuuuuuuuu@chat", "é" * 64
    room = text_bytes(source, "PRIVMSG", target)
    assert room < 100                       # (the line leaves less than the old floor)
    text = "word " * 60
    lines = [line(source, "PRIVMSG", target, piece) for piece in pieces(text.strip(), room)]
    assert all(len(data) <= 512 for data in lines)
    assert " ".join(data.decode().rstrip("\r\n").split(" :", 1)[1] for data in lines) == \
        text.strip()


@pytest.mark.parametrize("limit", range(469, 477))
def test_a_cut_never_splits_a_colour_code(limit):
    """(a reviewer's "\x0304,12" cut after its ",1" showed a stray "2", and the wrong
    background for the line before)"""
    text = "D" * 469 + "\x0304,12" + "E" * 20
    first, second = pieces(text, limit)
    assert first + second == text
    assert "\x0304,12" in first or "\x0304,12" in second       # whole, in one of them


def test_a_cut_keeps_combining_marks_with_their_letter_and_breaks_at_a_space_on_it():
    first, second = pieces("F" * 473 + "e\u0301" + "GGG", 475)
    assert (first, second) == ("F" * 473, "e\u0301GGG")
    first, second = pieces("A" * 474 + " :colon-start", 474)   # (a space at the cut)
    assert (first, second) == ("A" * 474, ":colon-start")


@pytest.mark.parametrize("limit", [-5, 0, 1, 3])
def test_pieces_move_on_whatever_the_limit(limit):
    """(a reviewer's /me between nicks of 64 four-byte letters left the action -5 bytes, and
    the server spun for ever, its memory growing)"""
    assert "".join(pieces("waves at everyone", limit)).replace(" ", "") == "wavesateveryone"


@pytest.mark.parametrize("joined", ["\u0938\u094d\u0924\u0947",    # a conjunct and its vowel sign
                                    "\u2764\ufe0f",                               # VS16
                                    "\U0001F44B\U0001F3FD",                       # skin tone
                                    "\U0001F468\u200d\U0001F4BB",                 # ZWJ
                                    "\x04FF00FF"])                                 # hex colour
def test_a_cut_keeps_what_joins_a_character_with_it(joined):
    """(a reviewer's lines began with a lone vowel sign, or a variation selector)"""
    for limit in range(20, 40):
        text = "x" * 17 + joined + "y" * 30
        cuts = pieces(text, limit)
        assert "".join(cuts) == text
        assert any(joined in piece for piece in cuts), (limit, cuts)


@pytest.mark.parametrize("text", ["a" + "\u0301" * 3999, "\u200d" * 4000, "\U0001F3FB" * 4000])
def test_a_run_of_joiners_with_nothing_to_join_is_cut_where_it_falls(text):
    """Backed up to the run's start, 4,000 of them made 3,800 lines (and 120 ms of the one
    thread for each message): as many lines as the bytes need, near enough."""
    cuts = pieces(text, 470)
    assert "".join(cuts) == text
    assert len(cuts) <= len(text.encode("utf-8")) // 400 + 1


def test_a_cut_keeps_flags_tag_sequences_and_hangul_syllables_whole():
    """(a reviewer's: a flag's pair of regional indicators split, every later flag on the
    line the wrong pair; England's tags cut from their flag; a syllable's final jamo alone)"""
    flags = "\U0001F1EB\U0001F1F7\U0001F1E9\U0001F1EA" * 60
    assert all(len(piece) % 2 == 0 for piece in pieces(flags, 100))
    england = "\U0001F3F4\U000E0067\U000E0062\U000E0065\U000E006E\U000E0067\U000E007F"
    for piece in pieces(("xyz" + england) * 20, 100):
        assert piece.count("\U0001F3F4") == piece.count("\U000E007F")
    syllables = pieces("ab" + "\u1100\u1161\u11a8" * 60, 100)
    assert all(piece[0] == "\u1100" for piece in syllables[1:])
