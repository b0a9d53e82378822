"""The client's pure line helpers: parse_command, shown, screen_lines, help_lines."""
import pytest

from client_events import AskConsent, Prompt, Show, ShowOnline, Stage, Status
from commands import (COMMANDS, Command, CommandSpec, Usage, help_lines, is_message_line,
                      parse_command, refusal, shown)
from terminal import screen_lines
from words import plural


@pytest.mark.parametrize("line, expected", [
    ("message bob hi", Command("message", user="bob", text="hi")),
    ("message bob hello  there  ", Command("message", user="bob", text="hello  there  ")),
    ("message   bob   spaced   out", Command("message", user="bob", text="spaced   out")),
    ("  message bob x", Command("message", user="bob", text="x")),
    ("message\tbob\ttab text", Command("message", user="bob", text="tab text")),
    ("broadcast hello all ", Command("broadcast", text="hello all ")),
    ("broadcast    lead", Command("broadcast", text="lead")),
    ("online", Command("online")),
    ("online   ", Command("online")),
    ("block bob", Command("block", user="bob")),
    ("block bob  ", Command("block", user="bob")),
    ("unblock bob", Command("unblock", user="bob")),
    ("logout", Command("logout")),
    ("help", Command("help")),
    # a window's or an IRC client's habits (a new user's were unknown commands)
    ("/quit", Command("quit")),
    ("/msg bob hi there", Command("message", user="bob", text="hi there")),
    ("msg bob hi", Command("message", user="bob", text="hi")),
    ("/y bob", Command("Y", user="bob")),
])
def test_valid_commands_parse_with_their_text_kept_as_typed(line, expected):
    assert parse_command(line) == expected


@pytest.mark.parametrize("line, usage", [
    ("message", "message <user> <text>"),
    ("message bob", "message <user> <text>"),
    ("message bob    ", "message <user> <text>"),
    ("broadcast", "broadcast <text>"),
    ("broadcast   ", "broadcast <text>"),
    ("online now", "online"),
    ("block", "block <user>"),
    ("block bob carol", "block <user>"),
    ("unblock", "unblock <user>"),
    ("logout now", "logout"),
    ("help me now", "help [<command>]"),
    ("whoelse extra", "whoelse"),               # in the words typed (it said "online")
    ("MSG bob", "msg <user> <text>"),
    ("/block", "block <user>"),
    ("y", "Y <user>"),

])
def test_wrong_argument_counts_give_a_one_line_usage(line, usage):
    assert parse_command(line) == Usage(usage)


def test_help_with_a_commands_name_shows_that_commands_line():
    # (a trial's new user typed `help getaddress`, and was told the usage of help)
    assert parse_command("help getaddress") == Command("help", text="getaddress")
    assert parse_command("HELP whoelse") == Command("help", text="online")
    assert parse_command("help y") == Command("help", text="Y")
    assert parse_command("help /private") == Command("help", text="private")     # as typed
    assert parse_command("help frobnicate") == Usage(unknown="frobnicate")
    assert parse_command("help /") == Command("help")       # (was "Unknown command ''")
    assert screen_lines(Show("help", "private")) == [
        "private <user> <text>  send <text> straight to <user>, not via the server"]
    assert screen_lines(Show("help")) == help_lines()


def test_unknown_command_points_to_help():
    assert parse_command("foo bar") == Usage(unknown="foo")


@pytest.mark.parametrize("line, expected", [
    ("MESSAGE bob Hi There", Command("message", user="bob", text="Hi There")),
    ("Online", Command("online")),
    ("y bob", Command("Y", user="bob")),
    ("N Bob", Command("N", user="Bob")),            # a name is kept as typed
    ("EXIT", Command("quit")),
    ("quit", Command("quit")),
])
def test_command_names_are_read_in_any_case_and_exit_is_quit(line, expected):
    assert parse_command(line) == expected


def test_an_unknown_command_is_named_as_typed():
    assert parse_command("Mesage bob hi") == Usage(unknown="Mesage")


def test_an_unknown_command_of_any_length_is_said_back_cut_short():
    assert parse_command("x" * 200_000 + " hi") == Usage(unknown="x" * 40 + "…")


@pytest.mark.parametrize("line", ["", "   ", "\t"])
def test_empty_line_does_nothing(line):
    assert parse_command(line) is None


def test_a_new_command_is_one_table_row(monkeypatch):
    # the P2P commands slot in without changing Command or the parser
    monkeypatch.setitem(COMMANDS, "private", CommandSpec(("user", "text"), "talk directly"))
    monkeypatch.setitem(COMMANDS, "Y", CommandSpec(("user",), "agree"))
    assert parse_command("private bob psst  ") == Command("private", user="bob", text="psst  ")
    assert parse_command("Y bob") == Command("Y", user="bob")
    assert parse_command("Y") == Usage("Y <user>")


def test_the_terminal_words_a_wrong_command_as_the_original_did():
    assert screen_lines(Show("usage", "message <user> <text>")) == [
        "Usage: message <user> <text>"]
    assert screen_lines(Show("unknown_command", "foo")) == [
        "Unknown command 'foo'. Type help for the list of commands."]
    assert screen_lines(Show("help")) == help_lines()


def test_help_lists_every_command_typed_after_a_prefix():
    assert help_lines("/")[1].startswith("  /message <user> <text>  send <text> to <user>")


def test_a_message_that_is_an_action_reads_as_one():
    """("/me waves" from an IRC user or the window read raw: "alice: /me waves")"""
    assert screen_lines(Show("message", "/me waves", "alice")) == ["* alice waves"]
    assert screen_lines(Show("broadcast", "/me waves", "alice")) == [
        "* alice waves (to everyone)"]
    assert screen_lines(Show("private", "/me waves", "alice")) == ["* alice waves (private)"]
    assert screen_lines(Show("offline", "/me waves", "alice")) == [
        "* alice waves (while you were away)"]
    assert screen_lines(Show("message", "/me", "alice")) == ["alice: /me"]
    assert screen_lines(Show("message", "/me  ", "alice")) == ["alice: /me  "]  # nothing done
    assert screen_lines(Show("message", "/mention", "alice")) == ["alice: /mention"]


def test_help_aligns_more_forms_with_the_commands():
    lines = help_lines("/", more=[("/me <action>", "an action")])
    assert lines[-1].startswith("  /me <action> ") and lines[-1].endswith("  an action")
    assert len({line.index(" send ") for line in lines if " send " in line} |
               {lines[-1].index(" an action")}) == 1


def test_help_lists_every_command_with_its_format():
    lines = help_lines()
    text = "\n".join(lines)
    for form in ["message <user> <text>", "broadcast <text>", "online", "block <user>",
                 "unblock <user>", "logout", "help"]:
        assert form in text
    assert len(lines) == len(COMMANDS) + 1


@pytest.mark.parametrize("frame, show, text", [
    ({"type": "message", "from": "bob", "text": "hi  there ", "offline": False},
     Show("message", "hi  there ", "bob"), "bob: hi  there "),
    ({"type": "message", "from": "bob", "text": "old", "offline": True},
     Show("offline", "old", "bob"), "bob (while you were away): old"),
    ({"type": "broadcast", "from": "carol", "text": "all"},
     Show("broadcast", "all", "carol"), "carol (to everyone): all"),
    ({"type": "presence", "user": "bob", "online": True}, Show("joined", "", "bob"),
     "bob has logged in."),
    ({"type": "presence", "user": "bob", "online": False}, Show("left", "", "bob"),
     "bob has logged out."),
    ({"type": "logged_out", "reason": "elsewhere"},
     Show("system", "You have been logged out because your account logged in elsewhere."),
     "You have been logged out because your account logged in elsewhere."),
    ({"type": "logged_out", "reason": "timed_out", "seconds": 31},
     Show("system", "Your session timed out: the server heard nothing from this client for "
                    "31 s, and ended it. Please log in again."),
     "Your session timed out: the server heard nothing from this client for 31 s, and ended "
     "it. Please log in again."),
    ({"type": "logged_out", "reason": "timed_out", "seconds": "x"},
     Show("system", "Your session timed out: the server heard nothing from this client, and "
                    "ended it. Please log in again."),
     "Your session timed out: the server heard nothing from this client, and ended it. Please "
     "log in again."),
])
def test_deliveries_are_shown_as_data_and_the_terminal_words_them(frame, show, text):
    assert shown(frame) == show
    assert screen_lines(show) == [text]


@pytest.mark.parametrize("action, lines", [
    (Show("private", "psst", "bob"), ["bob (private): psst"]),
    (Show("outage", "Cannot reach the server (refused)."), ["Cannot reach the server (refused)."]),
    (AskConsent("bob"), ["Do you agree to have a private talk with bob? Y bob/N bob"]),
    (Prompt(Stage.USERNAME), ["Please enter username:"]),
    (Prompt(Stage.PASSWORD), ["Please enter password:"]),
    (ShowOnline(("bob", "carol")), ["bob", "carol"]),
    (ShowOnline(()), ["No other users are online."]),
    (Status(Stage.PASSWORD, "bob", 0, None, False), []),
])
def test_the_terminal_words_what_the_core_shows(action, lines):
    assert screen_lines(action) == lines
    with pytest.raises(TypeError):
        screen_lines("not shown")


@pytest.mark.parametrize("frame", [
    {"type": "hello", "proof": "p"},
    {"type": "bye"},
    {"type": "mystery"},
    {"type": "message", "from": "bob"},
    {"type": "message", "from": 3, "text": "x"},
    {"type": "presence", "user": "bob"},
    {"type": "presence", "user": "bob", "online": "yes"},
])
def test_nothing_is_shown_for_silent_or_malformed_frames(frame):
    assert shown(frame) is None


@pytest.mark.parametrize("line, words", [
    ("message bob " + "x" * 4001, "Your message is 4,001 characters long; the most is 4,000. It was not sent."),
    ("broadcast " + "x" * 5000, "Your message is 5,000 characters long; the most is 4,000. It was not sent."),
    # (a line is cut at 64 Ki characters: its length past that is not known; a trial's)
    ("broadcast " + "x" * 65_526, "Your message is more than 60,000 characters long; the most is 4,000. It was not sent."),
    ("message b\x1bob hi", "'b\x1bob' cannot be a user name: it holds a character no name has."),
    ("block " + "x" * 65, "No user name is longer than 64 characters."),
])
def test_what_the_server_would_refuse_is_said_in_the_users_words_before_sending(line, words):
    assert refusal(parse_command(line)) == words


def test_a_message_at_the_limit_and_a_plain_name_go_out():
    assert refusal(parse_command("message bob " + "x" * 4000)) is None
    assert refusal(parse_command("getaddress seas")) is None


@pytest.mark.parametrize("count, said", [(0, "0 messages"), (1, "1 message"), (2, "2 messages"),
                                         (12000, "12,000 messages")])
def test_counts_are_said_in_one_way_on_every_screen_and_in_the_log(count, said):
    assert plural(count, "message") == said


def test_a_line_that_sends_a_message_is_told_from_a_command_in_any_spelling():
    """(what waits is counted as messages and commands apart: a re-attack's /message was a
    command)"""
    assert [is_message_line(line) for line in (
        "message seas hi", "/message seas hi", "msg seas hi", "/MSG seas hi", "broadcast x",
        "private seas x", "block seas", "/quit", "", "  ")] == [True] * 6 + [False] * 4


def test_replies_with_fields_of_the_wrong_type_are_refusals_not_tracebacks():
    """(a hostile server's `"code": ["x"]` raised in the reply's words: the message was taken
    from the outbox, never said sent or not, and a script hung; `"users": 5` raised too)"""
    from client_events import ShowFate
    from client_helpers import logged_in
    run = logged_in()
    run.type("message bob hi")
    actions = run.reply({"type": "error", "code": ["x"], "message": "m"})
    assert [a.fate.name for a in actions if isinstance(a, ShowFate)] == ["REFUSED"]
    run.type("block bob")
    run.reply({"type": "error", "code": {"a": 1}})
    run.type("online")
    assert [a for a in run.reply({"type": "online", "users": 5})
            if isinstance(a, ShowOnline)] == [ShowOnline(())]
