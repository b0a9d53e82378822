"""The core's Print kinds and ShowOnline, which the GUI reads, and the --gui switch.

The terminal must not change: it prints Print.text alone, so each test also checks the text.
"""
import io
import sys

import pytest

import client
from client import (ChatClient, ClientGlue, Incoming, LineIn, Print, Replied, RequestFailed,
                    Request, Settings, ShowOnline, Started, delivery_look, parse_args)
from reactor import Reactor, VirtualClock
from terminal import Terminal

WELCOME = {"type": "welcome", "user": "alice", "token": "t1", "proof": "p1"}


class Run:
    def __init__(self):
        self.client = ChatClient(Settings(listen_port=5000))
        self.open = []

    def do(self, event):
        actions = self.client.handle(event, 0.0)
        self.open += [a.request_id for a in actions if isinstance(a, Request)]
        return actions

    def reply(self, frame):
        return self.do(Replied(self.open.pop(), frame))

    def logged_in(self):
        self.do(Started())
        self.do(LineIn("alice"))
        self.reply({"type": "ok"})
        self.do(LineIn("pw"))
        self.reply(WELCOME)
        self.do(Incoming(1, {"type": "hello", "proof": "p1"}))
        return self


def prints(actions):
    return [a for a in actions if isinstance(a, Print)]


@pytest.mark.parametrize("frame, text, kind, sender", [
    ({"type": "message", "from": "bob", "text": "hi", "offline": False}, "bob: hi",
     "message", "bob"),
    ({"type": "message", "from": "bob", "text": "hi"}, "bob: hi", "message", "bob"),
    ({"type": "broadcast", "from": "bob", "text": "yo", "offline": False}, "bob: yo",
     "broadcast", "bob"),
    ({"type": "message", "from": "bob", "text": "old", "offline": True}, "bob: old",
     "offline", "bob"),
    ({"type": "broadcast", "from": "bob", "text": "old", "offline": True}, "bob: old",
     "offline", "bob"),
    ({"type": "presence", "user": "carol", "online": True}, "carol has logged in.",
     "joined", "carol"),
    ({"type": "presence", "user": "carol", "online": False}, "carol has logged out.",
     "left", "carol"),
])
def test_deliveries_print_the_same_text_with_their_kind_and_sender(frame, text, kind, sender):
    run = Run().logged_in()
    assert prints(run.do(Incoming(1, frame))) == [Print(text, kind, sender)]
    assert delivery_look(frame) == (kind, sender)


def test_online_reply_gives_the_list_then_the_same_lines():
    run = Run().logged_in()
    run.do(LineIn("online"))
    actions = run.reply({"type": "online", "users": ["bob", 7, "carol"]})
    assert actions[0] == ShowOnline(("bob", "carol"))
    assert prints(actions) == [Print("bob", "online"), Print("carol", "online")]


def test_empty_online_reply_gives_an_empty_list_and_the_usual_line():
    run = Run().logged_in()
    run.do(LineIn("online"))
    actions = run.reply({"type": "online", "users": []})
    assert actions[0] == ShowOnline(())
    assert prints(actions) == [Print("No other users are online.", "online")]


def test_an_online_error_is_a_system_line_and_no_list():
    run = Run().logged_in()
    run.do(LineIn("online"))
    actions = run.reply({"type": "error", "code": "bad_field", "message": "nope"})
    assert prints(actions) == [Print("nope")] and not any(
        isinstance(a, ShowOnline) for a in actions)


def test_an_unreachable_server_prints_an_outage_line():
    run = Run()
    run.do(Started())
    run.do(LineIn("alice"))
    actions = run.do(RequestFailed(run.open.pop(), "refused"))
    assert prints(actions)[0] == Print("Cannot reach the server (refused).", "outage")


def test_other_lines_stay_system_lines():
    run = Run()
    assert prints(run.do(Started())) == [Print(client.ASK_USER, "system", None)]


def test_the_terminal_glue_shows_text_alone_and_ignores_the_list():
    out = io.BytesIO()
    terminal = Terminal(0, out, interactive=False)
    glue = ClientGlue(Reactor(VirtualClock()), terminal, ("127.0.0.1", 1))
    glue._do_Print(Print("bob: hi", "message", "bob"))
    glue._do_ShowOnline(ShowOnline(("bob",)))
    assert out.getvalue() == b"bob: hi\n"


def test_gui_switch_is_parsed_and_off_by_default():
    assert parse_args(["127.0.0.1", "4119"]).gui is False
    assert parse_args(["127.0.0.1", "4119", "--gui"]).gui is True


def test_main_with_gui_hands_over_to_the_gui_module(monkeypatch):
    import gui
    seen = []
    monkeypatch.setattr(gui, "main", lambda args: seen.append(args) or 3)
    assert client.main(["127.0.0.1", "4119", "--gui"]) == 3
    assert seen[0].address == "127.0.0.1" and seen[0].port == 4119


def test_the_terminal_client_never_imports_tkinter():
    import subprocess
    code = ("import sys, client; client.parse_args(['127.0.0.1', '1']); "
            "print('tkinter' in sys.modules, 'gui' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=client.__file__.rsplit("/", 1)[0], check=True)
    assert done.stdout.split() == ["False", "False"]
