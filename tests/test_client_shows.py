"""What the core shows is data (client_events: Show, Prompt, AskConsent, ShowOnline, Status),
which each screen words and draws; and the --gui switch.

The terminal must not change: each test also checks the line it prints (commands.screen_lines).
"""
import sys

import pytest

import client
from client_events import (AskConsent, Incoming, LineIn, Prompt, Show, ShowOnline, Stage, Started,
                           Status)
from client_helpers import Run, hello, logged_in, printed
from terminal import ASK_USER


def delivered(run, frame):
    run.do(Incoming(1, hello(1)))
    return run.do(Incoming(1, frame))


def shows(actions):
    return [a for a in actions if isinstance(a, Show)]


@pytest.mark.parametrize("frame, text, show", [
    ({"type": "message", "from": "bob", "text": "hi", "offline": False}, "bob: hi",
     Show("message", "hi", "bob")),
    ({"type": "message", "from": "bob", "text": "hi"}, "bob: hi", Show("message", "hi", "bob")),
    ({"type": "broadcast", "from": "bob", "text": "yo", "offline": False}, "bob (to everyone): yo",
     Show("broadcast", "yo", "bob")),
    ({"type": "message", "from": "bob", "text": "old", "offline": True},
     "bob (while you were away): old", Show("offline", "old", "bob")),
    ({"type": "broadcast", "from": "bob", "text": "old", "offline": True},
     "bob (while you were away): old", Show("offline", "old", "bob")),
    # a live message's time is not said: the client's clock may differ from the server's
    ({"type": "message", "from": "bob", "text": "hi", "at": 1_765_000_000.5}, "bob: hi",
     Show("message", "hi", "bob")),
    # an IRC user's colours and bold: the words, not "\x0304red\x03" (a trial's)
    ({"type": "message", "from": "irc", "text": "\x0304,01red\x03 \x02bold\x02 \x1dit\x0f ok"},
     "irc: red bold it ok", Show("message", "red bold it ok", "irc")),
    ({"type": "presence", "user": "carol", "online": True}, "carol has logged in.",
     Show("joined", "", "carol")),
    ({"type": "presence", "user": "carol", "online": False}, "carol has logged out.",
     Show("left", "", "carol")),
    # the words a user left with: an IRC user's QUIT message, the server's "timed out"; its
    # formatting dropped (its control characters are made visible as the terminal writes)
    ({"type": "presence", "user": "carol", "online": False, "reason": "lunch \x02now\x02"},
     "carol has logged out (lunch now).", Show("left", "lunch now", "carol")),
    ({"type": "presence", "user": "carol", "online": False, "reason": "timed out"},
     "carol has logged out (timed out).", Show("left", "timed out", "carol")),
    ({"type": "presence", "user": "carol", "online": False, "reason": "a\x1b[2Jb"},
     "carol has logged out (a\x1b[2Jb).", Show("left", "a\x1b[2Jb", "carol")),
    ({"type": "presence", "user": "carol", "online": False, "reason": 7},
     "carol has logged out.", Show("left", "", "carol")),
    ({"type": "presence", "user": "carol", "online": False, "reason": "  "},
     "carol has logged out.", Show("left", "", "carol")),
    ({"type": "presence", "user": "carol", "online": False, "reason": "x" * 400},
     f"carol has logged out ({'x' * 300}).", Show("left", "x" * 300, "carol")),
])
def test_deliveries_show_their_kind_sender_and_text_and_print_as_before(frame, text, show):
    actions = delivered(logged_in(), frame)
    assert shows(actions) == [show] and printed(actions) == [text]


@pytest.mark.parametrize("listed, kind", [(True, "listed"), (False, "unlisted")])
def test_a_block_that_relists_a_user_prints_nothing_but_shows_for_a_list(listed, kind):
    actions = delivered(logged_in(), {"type": "listed", "user": "carol", "listed": listed})
    assert shows(actions) == [Show(kind, "", "carol")] and printed(actions) == []


def test_a_malformed_listed_delivery_is_logged_and_shows_nothing():
    actions = delivered(logged_in(), {"type": "listed", "user": "carol", "listed": "no"})
    assert shows(actions) == [] and printed(actions) == []


def test_online_reply_gives_the_list_which_the_terminal_prints_a_line_each():
    run = logged_in()
    run.type("online")
    actions = run.reply({"type": "online", "users": ["bob", 7, "carol"]})
    assert [a for a in actions if isinstance(a, ShowOnline)] == [ShowOnline(("bob", "carol"))]
    assert printed(actions) == ["bob", "carol"]


def test_empty_online_reply_gives_an_empty_list_and_the_usual_line():
    run = logged_in()
    run.type("online")
    actions = run.reply({"type": "online", "users": []})
    assert printed(actions) == ["No other users are online."]


def test_an_online_error_is_a_system_line_and_no_list():
    run = logged_in()
    run.type("online")
    actions = run.reply({"type": "error", "code": "bad_field", "message": "nope"})
    assert shows(actions) == [Show("system", "nope")]
    assert not any(isinstance(a, ShowOnline) for a in actions)


def test_an_unreachable_server_is_an_outage_line_and_in_the_status():
    run = Run()
    run.do(Started())
    actions = run.type("alice")
    assert [a for a in actions if isinstance(a, Status)] == [
        Status(Stage.USERNAME, "alice", 1, None, True)]     # the name's check is on its way
    actions = run.fail("refused")
    assert shows(actions)[0] == Show("outage", "Cannot reach the server (refused).")
    assert actions[0] == Status(Stage.USERNAME, "alice", 0, "refused", False)   # first


def test_prompts_and_consent_questions_are_data():
    run = Run()
    assert Prompt(Stage.USERNAME) in run.do(Started()) and ASK_USER in printed(
        run.do(LineIn("  ")))
    actions = delivered(logged_in(), {"type": "consent_request", "from": "bob"})
    assert [a for a in actions if isinstance(a, AskConsent)] == [AskConsent("bob")]
    assert printed(actions) == ["Do you agree to have a private talk with bob? Y bob/N bob"]


def test_status_says_the_stage_user_and_waiting_lines_only_when_they_change():
    run = Run()
    first = run.do(Started())
    assert first[0] == Status(Stage.USERNAME, None, 0, None, False)
    assert not [a for a in run.do(LineIn("")) if isinstance(a, Status)]     # nothing changed


def test_gui_switch_is_parsed_and_off_by_default():
    assert client.parse_args(["127.0.0.1", "4119"]).gui is False
    assert client.parse_args(["127.0.0.1", "4119", "--gui"]).gui is True


def test_main_with_gui_builds_the_same_client_around_a_window(monkeypatch):
    import gui_tk
    seen = []

    class FakeWindow:
        @classmethod
        def open(cls):
            return cls()

        def log(self, text):
            """The reactor's diagnostics would go here."""
    monkeypatch.setattr(gui_tk, "TkScreen", FakeWindow)
    monkeypatch.setattr(client, "run", lambda args, screen, reactor: seen.append(
        (args, screen)) or 3)
    assert client.main(["127.0.0.1", "4119", "--gui", "--stay-connected"]) == 3
    args, screen = seen[0]
    assert (args.address, args.port, args.stay_connected) == ("127.0.0.1", 4119, True)
    assert isinstance(screen, FakeWindow)


def test_the_terminal_client_never_imports_tkinter():
    import subprocess
    code = ("import sys, client; client.parse_args(['127.0.0.1', '1']); "
            "print('tkinter' in sys.modules, 'gui' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=client.__file__.rsplit("/", 1)[0], check=True)
    assert done.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("typed, hint, shown", [
    ("block SEAS", {"like": "seas"},
     "User SEAS does not exist. (Names are case-sensitive: did you mean seas?)"),
    ("message seas: hi", {"near": "seas"}, "User seas: does not exist. (Did you mean seas?)")])
def test_an_unknown_user_near_an_account_is_hinted(typed, hint, shown):
    run = logged_in()
    run.type(typed)
    assert printed(run.reply({"type": "error", "code": "unknown_user", "message": "no",
                              **hint})) == [shown]


def test_an_unknown_user_in_another_case_is_hinted_safely_and_at_the_prompt():
    run = logged_in()
    run.type("block SEAS")
    assert printed(run.reply({"type": "error", "code": "unknown_user", "message": "no",
                              "like": "se\x1b[2Jas"})) == ["User SEAS does not exist."]
    run = Run()
    run.do(Started())
    run.type("Columbia")
    assert printed(run.reply({"type": "error", "code": "unknown_user", "message": "no",
                              "like": "columbia"}))[0] == (
        "Wrong username. (Names are case-sensitive: did you mean columbia?)")
