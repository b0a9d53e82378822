"""The GUI's view model, drawn by the real client core through the real ClientGlue and a
WindowScreen: no display, no sockets for requests.

Every server event goes in as the reply or delivery frame the core would get, and the tests look
at what the window would show: panes, the online list, the login form, dialogs, the status line.
"""
import sys
import time

import pytest

import client
import protocol
from chat_client import ChatClient, Settings
from client_events import (Accepted, AskConsent, ConsentLapsed, Expired, Fate, Incoming,
                           Interrupted, LinkClosed, OutboxRetry, Prompt, Replied, RequestFailed,
                           SendRequest, Show, ShowFate, ShowOnline, ShowSending, Stage, Status)
from client_glue import ClientGlue
from client_helpers import hello
from gui import (TARGET_NAME_CHARS, ChatView, Entry, Target, WindowScreen, entry_mark, entry_text,
                 exit_box_text, stamp)
from reactor import Reactor
from timers import VirtualClock
from words import waiting_words

USERNAME, PASSWORD, LOGGED_IN = Stage.USERNAME, Stage.PASSWORD, Stage.LOGGED_IN
WELCOME = {"type": "welcome", "user": "alice", "token": "t1", "proof": "p1"}
OK = {"type": "ok"}
AT = VirtualClock().wall()
# the form's questions, in the window's words (the terminal's are "Please enter username:")
ASK_USER = "Log in with your user name and password."
ASK_PASSWORD = "Enter the password for alice, or another name to log in as someone else."


class Recording(ClientGlue):
    """The real glue, but its requests are kept for the test to answer instead of leaving on a
    socket."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.open = {}              # request id -> frame, in the order they were sent

    def _send_request(self, action):
        self.open[action.request_id] = action.frame

    def _probe(self, action):
        self.open[action.request_id] = {"type": "probe"}


class Screen:
    """A core, its window screen and a virtual clock; the server's side is played by the test."""

    def __init__(self, **settings):
        self.clock = VirtualClock()
        reactor = Reactor(self.clock)
        self.logged = []
        self.window = WindowScreen(log=self.logged.append)
        self.view = self.window.view
        self.glue = Recording(reactor, self.window, ("127.0.0.1", 4119))
        self.window.attach(self.glue)
        self.listener = reactor.listen("127.0.0.1", 0, self.glue.listening)
        self.glue.core = ChatClient(Settings(self.listener.port, client_id="c", **settings))
        self.glue.start()

    def close(self):
        self.listener.close()

    def sent(self, kind=None):
        """Frames of the open requests (of type `kind`), oldest first."""
        return [f for f in self.glue.open.values() if kind is None or f["type"] == kind]

    def reply(self, frame, kind=None):
        rid = [r for r, f in self.glue.open.items() if kind is None or f["type"] == kind][-1]
        del self.glue.open[rid]
        self.glue.feed(Replied(rid, frame))

    def fail(self, reason="refused", kind=None):
        rid = [r for r, f in self.glue.open.items() if kind is None or f["type"] == kind][-1]
        del self.glue.open[rid]
        self.glue.feed(RequestFailed(rid, reason))

    def type(self, lines):
        self.window.type_lines(lines)

    def send(self, text):
        """The input line sent with Enter -> True if it went (the input may be emptied)."""
        return self.window.send(text)

    def login(self, users=()):
        self.type(self.view.login("alice", "pw"))
        self.reply(OK, "check_user")
        self.reply(WELCOME, "login")
        self.reply({"type": "online", "users": list(users)}, "online")

    def deliver(self, *frames, conn=7):
        if conn not in self.glue.core.doorkeeper.visitors:
            self.glue.feed(Accepted(conn, f"n{conn}"))
            self.glue.feed(Incoming(conn, hello(conn)))
        for frame in frames:
            self.glue.feed(Incoming(conn, frame))

    def texts(self):
        return [entry_text(e) for e in self.view.entries]


@pytest.fixture
def screen():
    s = Screen()
    yield s
    s.close()


def marks(screen):
    """The marks of the own messages in the pane, oldest first."""
    return [entry_mark(e) for e in screen.view.entries if e.kind == "mine"]


def err(code, **fields):
    return {"type": "error", "code": code, "message": f"server says {code}", **fields}


# -- logging in ---------------------------------------------------------------------------------

def test_a_new_window_shows_the_login_form(screen):
    view = screen.view
    assert (view.stage, view.prompt, view.form_message) == (USERNAME, ASK_USER, "")
    assert view.status == "Not logged in."
    assert view.entries == [] and view.users == []


def test_the_form_sends_the_name_then_the_password_once_the_name_is_known(screen):
    screen.type(screen.view.login("  alice ", "pw"))
    assert screen.sent() == [{"type": "check_user", "user": "alice"}]
    screen.reply(OK)
    assert screen.sent("login")[0]["password"] == "pw"
    assert screen.view.stage == PASSWORD and screen.view.prompt == ASK_PASSWORD


def test_welcome_shows_the_chat_and_asks_who_is_online(screen):
    screen.type(screen.view.login("alice", "pw"))
    screen.reply(OK)
    screen.reply(WELCOME)
    view = screen.view
    assert view.stage == LOGGED_IN and view.user == "alice"
    assert screen.texts() == ["You have successfully logged in."]
    assert screen.sent() == [{"type": "online", "token": "t1"}]
    # (a command: a logout on its way was counted as a message, a trial's)
    assert view.status == "Sending: 1 command waiting to be sent."
    screen.reply({"type": "online", "users": ["carol", "bob"]})
    assert view.users == ["bob", "carol"]
    assert screen.texts() == ["You have successfully logged in."]     # the list is not chat
    assert view.status == "Logged in as alice."


def test_online_reply_with_nobody_empties_the_list(screen):
    screen.login(users=["bob"])
    screen.send("/online")
    screen.reply({"type": "online", "users": []})
    assert screen.view.users == []
    assert screen.texts() == ["You have successfully logged in.", "No other users are online."]


def test_wrong_username_is_told_in_the_form_and_the_password_is_not_sent(screen):
    screen.type(screen.view.login("colu", "pw"))
    screen.reply(err("unknown_user"))
    view = screen.view
    assert view.form_message == "Wrong username." and view.prompt == ASK_USER
    assert screen.sent() == [] and view.entries == []
    assert view.name_refused            # the window types the next name there, over this one
    screen.type(view.login("alice", "pw"))
    assert view.form_message == "" and not view.name_refused    # a new try clears the words
    assert screen.sent() == [{"type": "check_user", "user": "alice"}]


def test_a_lockout_leaves_the_name_to_be_used_again(screen):
    """After the third wrong password the window types the next password in its own field:
    the name field took it, shown, and sent it as a name (a re-attack's)."""
    screen.type(screen.view.login("alice", "11"))
    screen.reply(OK)
    screen.reply(err("too_many_attempts", attempts=3, seconds=30))
    view = screen.view
    assert view.form_message == ("You have entered wrong password three times. You will be "
                                 "blocked for 30 seconds.")
    assert view.stage == USERNAME and not view.name_refused


def test_an_empty_password_is_asked_for(screen):
    screen.type(screen.view.login("alice", ""))     # (it did nothing, and said nothing)
    assert screen.sent() == [] and screen.view.form_message == "Type your password too."
    screen.type(screen.view.login("alice", "pw"))
    assert screen.sent() == [{"type": "check_user", "user": "alice"}]


def test_empty_name_asks_again_and_forgets_the_password(screen):
    screen.type(screen.view.login("  ", "pw"))
    assert screen.sent() == [] and screen.view.prompt == ASK_USER
    screen.type(screen.view.login("alice", "pw2"))
    screen.reply(OK)
    assert screen.sent("login")[0]["password"] == "pw2"


def test_wrong_password_then_the_form_sends_only_the_password(screen):
    screen.type(screen.view.login("alice", "11"))
    screen.reply(OK)
    screen.reply(err("wrong_password", attempts_left=2))
    view = screen.view
    assert view.form_message == "Wrong password. Please try again."
    assert view.prompt == ASK_PASSWORD and view.stage == PASSWORD
    screen.type(view.login("ignored", "12"))
    assert screen.sent() == [{"type": "login", "user": "alice", "password": "12", "client": "c",
                              "port": screen.listener.port}]


def test_after_a_wrong_password_another_name_starts_the_login_over(screen):
    screen.window.log_in("alice", "11")
    screen.reply(OK)
    screen.reply(err("wrong_password", attempts_left=2))
    view = screen.view
    assert view.changes_user("bob") and not view.changes_user(" alice ")
    screen.window.log_in("bob", "bobs")         # the form's name was changed
    assert screen.sent() == [{"type": "check_user", "user": "bob"}]
    assert view.stage == USERNAME and view.form_message == ""
    screen.reply(OK)
    assert screen.sent("login") == [{"type": "login", "user": "bob", "password": "bobs",
                                     "client": "c", "port": screen.listener.port}]
    assert view.prompt == ("Enter the password for bob, or another name to log in as "
                           "someone else.")


def test_the_same_name_again_only_sends_the_password(screen):
    screen.window.log_in("alice", "11")
    screen.reply(OK)
    screen.reply(err("wrong_password", attempts_left=2))
    screen.window.log_in("alice", "12")
    assert screen.sent() == [{"type": "login", "user": "alice", "password": "12", "client": "c",
                              "port": screen.listener.port}]
    assert not screen.view.changes_user("bob")  # the answer is awaited: nothing starts over


def test_lockout_words_are_the_terminals_and_the_form_asks_for_a_name(screen):
    screen.type(screen.view.login("alice", "11"))
    screen.reply(OK)
    screen.reply(err("too_many_attempts", seconds=30))
    view = screen.view
    assert view.form_message == ("You have entered wrong password three times. "
                                 "You will be blocked for 30 seconds.")
    assert view.stage == USERNAME and view.prompt == ASK_USER
    screen.type(view.login("alice", "pw"))
    screen.reply(OK)
    screen.reply(err("locked"))
    assert view.form_message == "You are still blocked, please try again later"


def test_a_second_submit_while_the_first_is_answered_types_nothing(screen):
    screen.type(screen.view.login("alice", "pw"))
    assert screen.view.login("alice", "pw") == []
    assert len(screen.sent()) == 1


def test_a_password_typed_again_while_the_name_is_checked_is_the_one_that_goes(screen):
    """(a re-trial's, typed again as a stopped server held the name's check, was dropped
    without a word, and the first, wrong, was sent: a strike toward the block)"""
    screen.type(screen.view.login("alice", "wrong"))
    assert screen.view.login("alice", "right") == []
    assert screen.view.form_notice == ("Your login waits for the server: the password you "
                                       "typed last goes.")
    screen.reply(OK)
    assert screen.sent("login")[0]["password"] == "right"
    assert screen.view.login("alice", "again") == []        # the login itself is on its way
    assert screen.view.form_notice == "Your login is on its way: wait for the server's answer."
    screen.reply(err("wrong_password", attempts_left=2))
    assert screen.view.form_notice == ""                    # answered: said no more


def test_the_server_unreachable_while_logging_in(screen):
    screen.type(screen.view.login("alice", "pw"))
    screen.fail("refused")
    view = screen.view
    assert view.form_message == "Cannot reach the server (refused)."
    assert view.status == "Cannot reach the server (refused)."
    assert screen.sent() == []                  # the password waits for no one
    # the name was not refused: the next password goes in its own field, not over the name
    assert not view.name_refused
    # a second try in the same outage is answered on the form too (a review's form went
    # blank: the pane's rule, said once, was the form's)
    view.login("alice", "pw")
    view.render(Show("outage", "Cannot reach the server (refused)."), AT)
    assert view.form_message == "Cannot reach the server (refused)."


def test_a_server_not_there_at_the_start_and_a_form_sent_meanwhile():
    screen = Screen(check_server=True, server="127.0.0.1:4119")
    try:
        screen.fail("refused", "probe")
        view = screen.view
        assert view.form_message == "Cannot reach the server at 127.0.0.1:4119 (refused)."
        assert view.status == "Cannot reach the server at 127.0.0.1:4119 (refused)."
        screen.type(view.login("alice", "pw"))          # kept until the server is there
        assert screen.sent() == []
        screen.clock.advance(1.0)
        screen.reply({}, "probe")
        assert view.form_message.endswith("The server is back.")
        assert "Cannot reach" not in view.status        # the name's check is on its way
        screen.reply(OK, "check_user")
        assert screen.sent("login")[0]["password"] == "pw"
    finally:
        screen.close()


# -- the conversation ---------------------------------------------------------------------------

def test_each_delivery_kind_becomes_its_own_entry(screen):
    screen.login()
    screen.clock.advance(1.5)
    screen.deliver({"type": "message", "from": "bob", "text": "hi: there", "offline": False},
                   {"type": "broadcast", "from": "carol", "text": "lunch?", "offline": False},
                   {"type": "message", "from": "dave", "text": "kept", "offline": True},
                   {"type": "broadcast", "from": "erin", "text": "old news", "offline": True})
    entries = screen.view.entries[1:]
    at = AT + 1.5
    assert entries == [Entry(at, "bob", "hi: there", "direct"),
                       Entry(at, "carol", "lunch?", "broadcast"),
                       Entry(at, "dave", "kept", "offline"),
                       Entry(at, "erin", "old news", "offline")]
    assert screen.texts()[1:] == ["bob: hi: there", "carol (to everyone): lunch?",
                                  "dave (while you were away): kept",
                                  "erin (while you were away): old news"]


def test_presence_notices_keep_the_list_live_and_are_told_in_the_pane(screen):
    screen.login(users=["bob"])
    screen.deliver({"type": "presence", "user": "carol", "online": True},
                   {"type": "presence", "user": "bob", "online": True},      # already listed
                   {"type": "presence", "user": "bob", "online": False},
                   {"type": "presence", "user": "zed", "online": False},     # never listed
                   {"type": "presence", "user": "carol", "online": False,
                    "reason": "gone home"})                                # an IRC QUIT's words
    assert screen.view.users == []
    assert screen.texts()[1:] == ["carol has logged in.", "bob has logged in.",
                                  "bob has logged out.", "zed has logged out.",
                                  "carol has logged out (gone home)."]
    assert {e.kind for e in screen.view.entries} == {"system"}


def test_a_block_between_online_users_takes_the_user_off_the_list_or_back_without_words(
        screen):
    screen.login(users=["bob", "carol"])
    screen.deliver({"type": "listed", "user": "bob", "listed": False})
    assert screen.view.users == ["carol"]
    screen.deliver({"type": "listed", "user": "bob", "listed": True})
    assert screen.view.users == ["bob", "carol"]
    assert screen.texts()[1:] == []


def test_a_presence_batch_keeps_the_list_live_as_its_single_notices_would(screen):
    screen.login(users=["bob"])
    screen.deliver({"type": "presence", "changes": [["carol", True], ["alice", True],
                                                    ["bob", False], ["dave", True]]})
    assert screen.view.users == ["carol", "dave"]
    assert screen.texts()[1:] == ["carol has logged in.", "bob has logged out.",
                                  "dave has logged in."]


def test_logged_in_elsewhere_goes_back_to_the_form_and_says_why(screen):
    screen.login(users=["bob"])
    screen.view.aim("bob")
    screen.deliver({"type": "logged_out", "reason": "elsewhere"})
    view = screen.view
    assert view.stage == USERNAME and view.prompt == ASK_USER
    assert view.form_notice == ("You have been logged out because your account logged in "
                                "elsewhere.")
    assert view.form_message == ""
    assert view.users == [] and view.target == Target()
    assert view.status == "Not logged in."


def test_a_draft_keeps_its_target_through_the_same_users_next_login(screen):
    """A trial's half-typed message to one user, its session ended (a restart, a login
    elsewhere), went to everyone with one Enter after logging in again: the target had
    become everyone and the draft stayed."""
    screen.login(users=["bob"])
    screen.view.aim("bob")
    screen.deliver({"type": "logged_out", "reason": "elsewhere"})
    assert screen.view.target == Target()           # on the form: no one
    screen.login(users=["bob"])
    assert screen.view.target == Target("bob")
    screen.send("draft meant for bob only")
    assert [(f["type"], f.get("to")) for f in screen.sent("message")] == [("message", "bob")]
    assert screen.sent("broadcast") == []


def test_compose_broadcasts_by_default_and_shows_it_on_its_way_until_the_server_takes_it(screen):
    screen.login()
    screen.clock.advance(2)
    screen.send("hello all")
    assert screen.sent() == [{"type": "broadcast", "token": "t1", "mid": "c-1", "text": "hello all"}]
    assert screen.view.entries[-1] == Entry(AT + 2, "alice", "hello all", "mine", None, ref="c-1")
    assert screen.texts()[-1] == "me → everyone: hello all"
    assert marks(screen) == ["…"]
    screen.reply({"type": "ok", "skipped": 0})
    assert marks(screen) == ["✓"] and screen.view.take_changed() == [1]
    assert screen.view.take_changed() == []


def test_compose_to_a_user_messages_them(screen):
    screen.login(users=["bob"])
    screen.view.aim("bob")
    screen.send("hi  bob ")
    assert screen.sent() == [{"type": "message", "token": "t1", "mid": "c-1", "to": "bob",
                              "text": "hi  bob "}]
    assert screen.texts()[-1] == "me → bob: hi  bob "
    screen.reply(err("blocked"))
    # never shown as sent: marked where it stands, with the reason below it
    assert marks(screen) == ["✗ not sent"] and screen.view.entries[-2].fate is Fate.REFUSED
    assert screen.view.entries[-1] == Entry(AT, None, "Your message could not be delivered as "
                                            "the recipient has blocked you.", "error")


def test_compose_privately_types_a_private_command(screen):
    screen.login(users=["bob"])
    asked(screen)
    screen.deliver(ADDRESS)                     # bob agreed
    screen.view.aim("bob", private=True)
    assert screen.view.target == Target("bob", True)
    assert screen.view.compose("psst", AT) == ["private bob psst"]
    screen.view.aim(None, private=True)         # everyone is never private
    assert screen.view.target == Target()


def test_the_target_label_says_when_its_user_left_and_the_target_stays(screen):
    """(a trial's window still read "To bob:" after bob logged out; a message to bob still
    goes, and waits for bob's next login)"""
    screen.login(users=["bob"])
    assert screen.view.target_text() == "To everyone:"
    screen.view.aim("bob")
    assert screen.view.target_text() == "To bob:"
    screen.deliver({"type": "presence", "user": "bob", "online": False})
    assert screen.view.target_text() == "To bob (logged out):"
    assert screen.view.compose("later", AT) == ["message bob later"]
    screen.view.aim("bob", private=True)
    assert screen.view.target_text() == "Privately to bob (logged out):"
    screen.deliver({"type": "presence", "user": "bob", "online": True})
    assert screen.view.target_text() == "Privately to bob:"


def test_the_target_label_still_says_its_user_left_at_the_next_login(screen):
    """(a trial's label read "To seas:" again after its own logout and login, seas still
    away; the list, once it shows the user back, ends it)"""
    screen.login(users=["bob"])
    screen.view.aim("bob")
    screen.deliver({"type": "presence", "user": "bob", "online": False})
    screen.deliver({"type": "logged_out", "reason": "elsewhere"})
    screen.login(users=[])
    assert screen.view.target_text() == "To bob (logged out):"
    screen.deliver({"type": "logged_out", "reason": "elsewhere"})
    screen.login(users=["bob"])                 # bob came back meanwhile
    assert screen.view.target_text() == "To bob:"


def test_slash_me_is_an_action_to_whoever_the_line_goes_to_not_a_command(screen):
    screen.login(users=["bob"])
    assert screen.view.compose("/me waves", AT) == ["broadcast /me waves"]
    screen.view.aim("bob")
    assert screen.view.compose("/me waves at bob", AT) == ["message bob /me waves at bob"]
    assert screen.view.compose("/mention", AT) == ["mention"]          # a command as typed


def test_slash_types_a_command_as_the_terminal_would(screen):
    screen.login()
    screen.send("/help")
    assert screen.texts()[1].startswith("Type a message and press Enter")
    assert screen.texts()[2].startswith("  /message <user> <text>  send <text> to <user>")
    listed = [e for e in screen.view.entries if e.kind == "help"]    # a fixed font: aligned
    assert listed[0].text.startswith("  /message") and screen.texts()[1] not in [
        e.text for e in listed]
    assert listed[-1].text.startswith("  /me <action>") and "an action" in listed[-1].text
    screen.send("/help getaddress")
    assert screen.texts()[-1] == ("/getaddress <user>  ask <user> for their address, to talk "
                                  "privately")
    shown = len(screen.texts())
    screen.send("/help /")      # (was "Unknown command '/'")
    assert screen.texts()[shown:][1].startswith("  /message <user> <text>")
    screen.send("/mesage bob hi")
    assert screen.texts()[-1] == "Unknown command '/mesage'. Type /help for the list of commands."
    screen.send("/block")
    assert screen.texts()[-1] == "Usage: /block <user>"
    assert screen.view.compose("   ", AT) == []
    assert all(e.kind != "mine" for e in screen.view.entries)


def test_offline_recipient_is_told_in_the_pane(screen):
    screen.login()
    screen.view.aim("bob")
    screen.send("later")
    screen.reply({"type": "ok", "stored": True})
    assert screen.texts()[-1] == ("bob is offline; your message will be delivered when they "
                                  "log in.")
    assert marks(screen) == ["✓"]           # the server has it: it is sent


def test_block_and_unblock_buttons_type_the_commands(screen):
    screen.login(users=["bob"])
    screen.type(screen.view.act("block", "bob"))
    assert screen.sent() == [{"type": "block", "token": "t1", "user": "bob"}]
    screen.reply(OK)
    assert screen.texts()[-1] == "User bob has been blocked."
    assert screen.view.act("getaddress", "bob") == ["getaddress bob"]


def test_a_login_as_someone_else_begins_a_new_conversation_the_same_user_keeps_theirs(screen):
    """The last user's messages are theirs: a trial's window, logged out and in as another
    user, showed the first user's messages to the second."""
    screen.login(users=["bob"])
    screen.deliver({"type": "message", "from": "bob", "text": "for alice only", "seq": 1})
    assert "bob: for alice only" in screen.texts()
    for name, kept in (("alice", True), ("carol", False)):
        screen.type(screen.view.logout())
        screen.reply(OK, "logout")
        screen.type(screen.view.login(name, "pw"))
        screen.reply(OK, "check_user")
        screen.reply({**WELCOME, "user": name}, "login")
        screen.reply({"type": "online", "users": ["bob"]}, "online")
        assert ("bob: for alice only" in screen.texts()) is kept, name
    assert screen.view.cleared == 1


def test_logout_goes_back_to_the_form(screen):
    screen.login(users=["bob"])
    screen.type(screen.view.logout())
    screen.reply(OK)
    view = screen.view
    # news, not an error: the form shows it as a notice
    assert view.stage == USERNAME and view.form_notice == "You have logged out."
    assert view.form_message == ""
    screen.type(view.login("alice", "nope"))
    assert view.form_notice == ""               # a new try clears the old words
    screen.reply(OK)
    screen.reply(err("wrong_password", attempts_left=2))
    assert view.form_message == "Wrong password. Please try again." and view.form_notice == ""
    assert view.users == []


def test_commands_typed_behind_a_message_are_counted_as_commands(screen):
    """(a re-attack's `block google`, typed behind a message, was "2 messages")"""
    screen.login()
    screen.send("one")
    screen.type(["block google", "message bob two", "logout"])
    assert screen.view.status == "Sending: 2 messages and 2 commands waiting to be sent."


def test_unreachable_server_and_waiting_messages_show_in_the_status_line(screen):
    screen.login()
    screen.send("one")
    screen.send("two")
    assert screen.view.status == "Sending: 2 messages waiting to be sent."
    assert marks(screen) == ["…"]               # "two" waits for "one" to be answered
    screen.fail("timed out")                    # both stay, in order, for the next try
    assert screen.view.status == ("Cannot reach the server (timed out). "
                                  "2 messages waiting to be sent.")
    assert marks(screen) == ["… waiting", "… waiting"]     # (two's shown in the outage)
    assert not any(t.startswith("Waiting to be sent") for t in screen.texts())  # the marks say it
    screen.clock.advance(1)
    screen.glue.feed(Expired(OutboxRetry()))
    assert [f["text"] for f in screen.sent("broadcast")] == ["one"]
    screen.reply({"type": "ok", "skipped": 0}, "broadcast")
    assert [f["text"] for f in screen.sent("broadcast")] == ["two"]
    screen.reply({"type": "ok", "skipped": 0}, "broadcast")
    screen.reply({"type": "online", "users": ["bob"]}, "online")    # back: the list again
    assert screen.view.status == "Logged in as alice." and screen.view.users == ["bob"]
    assert "Cannot reach the server (timed out)." in screen.texts()
    assert marks(screen) == ["✓", "✓"]


def test_an_outage_is_said_once_in_the_pane_not_again_with_each_message_sent(screen):
    """(a trial's pane said "Cannot reach the server" again after each message it sent in an
    outage: the terminal's answer to a line, which the window gives with the line's mark)"""
    screen.login()
    screen.send("one")
    screen.fail("refused")
    screen.send("two")
    screen.view.render(Show("outage", "Cannot reach the server (refused)."), AT)   # (its again)
    assert screen.texts().count("Cannot reach the server (refused).") == 1
    assert marks(screen)[-1] == "… waiting"     # its mark says it (it looked on its way)
    screen.view.render(Show("outage", "Cannot reach the server (timed out)."), AT)
    assert screen.texts()[-1] == "Cannot reach the server (timed out)."    # news: said


def test_the_windows_own_online_cut_by_the_network_is_not_laid_on_the_user(screen):
    """(a trial's pane said "/online may not have been done: type it again", an /online the
    window had sent itself, after a staying connection came back and was cut again)"""
    screen.login(users=["bob"])
    screen.send("one")
    screen.fail("timed out")                    # an outage ...
    screen.clock.advance(1)
    screen.glue.feed(Expired(OutboxRetry()))
    screen.reply({"type": "ok", "skipped": 0}, "broadcast")     # ... over: the list asked again
    screen.fail("reset", "online")              # ... and that request cut
    assert not any("online" in text.lower() and "done" in text for text in screen.texts())
    screen.send("/online")                      # the user's own is said, as before
    screen.fail("reset", "online")
    assert any(text.endswith("/online may not have been done: type it again once the server "
                             "is back.") for text in screen.texts())


def test_a_message_sent_on_another_day_says_which_beside_its_time():
    """(a reviewer's kept message of 2 days before read 03:28, as if of today)"""
    view = ChatView()
    today = time.mktime((2026, 12, 7, 8, 30, 0, 0, 0, -1))
    old = time.mktime((2026, 12, 5, 3, 28, 0, 0, 0, -1))
    view.render(Show("offline", "old one", "columbia", old), today)
    view.render(Show("offline", "this morning", "columbia", today - 3600), today)
    view.render(Show("message", "live", "columbia"), today)
    assert [entry_text(e) for e in view.entries] == [
        "columbia (while you were away, sent Dec 5): old one",
        "columbia (while you were away): this morning", "columbia: live"]


def test_an_empty_name_is_asked_for():
    view = ChatView()
    view.render(status(USERNAME), AT)
    assert view.login("  ", "pw") == [] and view.form_message == "Type your user name first."
    assert view.login("alice", "pw") == ["alice"] and view.form_message == ""


def test_messages_kept_for_the_next_login_are_not_called_a_login_that_waits():
    """(a trial's window, its messages kept past a logout, said its login waited)"""
    view = ChatView()
    view.render(status(USERNAME, waiting=1), AT)
    assert view.status == "1 message waiting for your next login."
    view.render(status(USERNAME, waiting=1, busy=True), AT)
    assert view.status == "Your login waits for the server."


def test_a_command_that_could_not_reach_the_server_is_named_as_typed_here(screen):
    """(the window named it without its /, as the terminal types it: a trial's)"""
    screen.login()
    screen.send("/block bob")
    screen.fail("refused")
    assert screen.texts()[-1] == "/block bob was not done: type it again once the server is back."


def test_a_message_too_long_stays_in_the_input_to_be_shortened(screen):
    screen.login()
    assert screen.send("x" * 4001) is False and screen.sent("broadcast") == []
    assert screen.texts()[-1] == ("Your message is 4,001 characters long; the most is 4,000. "
                                  "Shorten it, and send it again.")


def test_a_paste_of_several_lines_is_a_message_a_line(screen):
    """(a trial's paste came as one message, its line breaks shown as escapes)"""
    screen.login(users=["bob"])
    screen.view.aim("bob")
    assert screen.view.compose("line one\r\n\nline two\n", AT) == [
        "message bob line one", "message bob line two"]


def test_a_long_name_is_cut_in_the_target_label():
    """(a 64-character name left the input no room to type in)"""
    view = ChatView()
    view.aim("x" * 64)
    assert view.target_text() == f"To {'x' * (TARGET_NAME_CHARS - 1)}…:"
    view.aim("seas", private=True)
    assert view.target_text() == "Privately to seas:"


def test_a_paste_that_begins_with_a_command_is_a_line_each_too(screen):
    """(a trial's "/online" and a line after it were one bad command, the line lost; and
    "/message seas one" and "two" one message with an escape in it)"""
    screen.login(users=["bob"])
    assert screen.view.compose("/online\nthis second line", AT) == [
        "online", "broadcast this second line"]
    assert screen.view.compose("/message bob line one\nline two", AT) == [
        "message bob line one", "broadcast line two"]
    assert screen.view.compose("/online\n/block bob\n", AT) == ["online", "block bob"]
    assert screen.view.compose("/online\n" + "x" * 4001, AT) is None     # kept whole


@pytest.mark.parametrize("typed, lines", [
    ("//etc/passwd is a path", ["broadcast /etc/passwd is a path"]),
    ("/ME waves", ["broadcast /me waves"]),
    ("/Me", None), ("/me  ", None)])
def test_a_slash_line_is_text_an_action_or_a_command(screen, typed, lines):
    screen.login()
    assert screen.view.compose(typed, AT) == lines
    if lines is None:
        assert screen.texts()[-1] == "Usage: /me <action>"


def test_ones_own_action_reads_as_one(screen):
    screen.login()
    screen.send("/me waves")
    assert screen.texts()[-1] == "me → everyone: * alice waves"


def test_a_message_kept_while_away_is_stamped_when_the_server_took_it(screen):
    """(a trial's fifty kept messages all read the time of the login)"""
    screen.login()
    screen.deliver({"type": "message", "from": "bob", "text": "old", "offline": True,
                    "at": AT - 3600.0, "seq": 1},
                   {"type": "message", "from": "bob", "text": "new", "seq": 2})
    assert [(e.text, e.at) for e in screen.view.entries[-2:]] == [
        ("old", AT - 3600.0), ("new", screen.clock.wall())]


def test_a_user_a_block_hides_is_not_said_to_have_logged_out(screen):
    """(a trial's label read "To google (logged out ...)" of a google online, blocked)"""
    screen.login(users=["bob"])
    screen.view.aim("bob")
    screen.deliver({"type": "listed", "user": "bob", "listed": False})
    assert "bob" not in screen.view.users and screen.view.target_text() == "To bob:"


def test_a_session_the_server_forgot_goes_back_to_the_form(screen):
    screen.login()
    screen.send("hi")
    screen.reply(err("no_session"))
    assert screen.view.form_notice.splitlines() == [
        "Your session has ended. Please log in again.",
        "The server has not acknowledged 1 message yet: sent again at your next login as alice, "
        "or listed if you quit first."]
    # and in the conversation, which the next login as alice shows (a trial's had no word of it)
    assert "Your session has ended. Please log in again." in screen.texts()
    screen.login()
    assert "Your session has ended. Please log in again." in screen.texts()


def test_a_message_kept_when_the_session_ended_does_not_hold_up_the_login_and_goes_after_it(
        screen):
    """The kept message counts as waiting, but no reply is awaited: the form logs in (a
    trial's window sat on its form, and its close lost the message)."""
    screen.login()
    screen.send("hi")
    screen.reply(err("no_session"))
    assert screen.view.waiting == 1
    screen.type(screen.view.login("alice", "pw"))
    assert screen.sent() == [{"type": "check_user", "user": "alice"}]
    screen.reply(OK, "check_user")
    screen.reply(WELCOME, "login")
    assert [f["text"] for f in screen.sent("broadcast")] == ["hi"]


# -- the consent dialog -------------------------------------------------------------------------

def ask(screen, asker):
    screen.deliver({"type": "consent_request", "from": asker})


def test_a_consent_request_opens_the_dialog_and_agree_types_y(screen):
    screen.login(users=["bob"])
    assert screen.view.consent is None and screen.view.answer(True) == []
    ask(screen, "bob")
    assert screen.view.consent == "bob"
    assert screen.texts()[-1] == "bob asks to talk with you privately."
    screen.type(screen.view.answer(True))
    assert screen.sent() == [{"type": "consent", "token": "t1", "user": "bob", "agree": True}]
    assert screen.view.consent is None
    screen.reply({"type": "ok", "key": "k1"})
    assert screen.texts()[-1] == "You agreed to a private talk with bob."
    # and Take back yes may end it (a re-attack's window had no way but typing /N bob)
    assert screen.view.agreed("bob") and screen.view.user_hint("bob").endswith(
        "You agreed to one with bob: Take back yes ends it.")
    screen.type(screen.view.act("N", "bob"))
    assert screen.sent()[-1] == {"type": "consent", "token": "t1", "user": "bob",
                                 "agree": False}
    screen.reply({"type": "ok", "revoked": True})
    assert screen.texts()[-1] == ("bob may no longer send you private messages (your yes is "
                                  "taken back).")
    assert not screen.view.agreed("bob") and "Take back" not in screen.view.user_hint("bob")


def test_refuse_types_n_and_requests_wait_their_turn_once_each(screen):
    screen.login()
    ask(screen, "bob")
    ask(screen, "carol")
    ask(screen, "bob")                          # asked again: still one question
    assert screen.view.asking == ["bob", "carol"]
    assert screen.view.answer(False) == ["N bob"]
    assert screen.view.consent == "carol"


def test_a_question_like_line_from_a_user_opens_no_dialog(screen):
    screen.login()
    screen.deliver({"type": "message", "from": "eve", "offline": False,
                    "text": "Do you agree to have a private talk with eve? Y eve/N eve"})
    assert screen.view.consent is None


def test_logging_out_forgets_the_questions(screen):
    screen.login()
    ask(screen, "bob")
    screen.type(screen.view.logout())
    screen.reply(OK)
    assert screen.view.consent is None


def test_a_private_message_is_sent_once_the_peer_takes_it_and_refused_if_it_cannot(screen):
    screen.login(users=["bob"])
    asked(screen)
    screen.deliver(sealed({"type": "address", "user": "bob", "host": "127.0.0.1", "port": 1,
                           "key": "k"}))
    screen.view.aim("bob", private=True)
    screen.send("psst")
    assert screen.texts()[-1] == "me → bob (private): psst" and marks(screen) == ["…"]
    link = next(iter(screen.glue.core.peers.links))
    screen.glue.feed(LinkClosed(link, "refused"))
    assert marks(screen) == ["✗ not sent"]
    assert "Not sent: bob's client could not be reached." in screen.texts()
    assert not any("Not delivered" in text for text in screen.texts())  # the terminal's words
    # one sent on an open link and never acknowledged was sent: perhaps not delivered (a
    # re-attack's window said "perhaps not sent")
    screen.send("again")
    ref = next(iter(screen.view._mine))
    screen.view.render(ShowFate(ref, Fate.UNSURE, "Perhaps not delivered to bob: again",
                                "bob's client did not acknowledge it"), 0.0)
    assert marks(screen)[-1] == "? perhaps not delivered"
    assert screen.texts()[-1] == "Perhaps not delivered: bob's client did not acknowledge it."


def test_private_messages_are_their_own_kind(screen):
    # the whole path from a peer is in test_gui_e2e.py: here only what the core prints
    screen.login()
    screen.view.render(Show("private", "a: b", "bob"), AT)
    assert screen.view.entries[-1] == Entry(AT, "bob", "a: b", "private")
    assert screen.texts()[-1] == "bob (private): a: b"


# -- the glue -----------------------------------------------------------------------------------

def test_closing_the_window_logs_out_then_exits(screen):
    screen.login()
    screen.window.close()
    assert screen.sent() == [{"type": "logout", "token": "t1"}]
    assert screen.glue.exit_code is None
    screen.reply(OK)
    assert screen.glue.exit_code == 0


def test_closing_the_window_with_messages_unsent_says_them_on_stderr(screen):
    """The window is going: what was never sent is said where it outlives it (a trial's
    closed window said nothing of its message)."""
    screen.login()
    screen.send("one")
    screen.fail("timed out", "broadcast")       # it went out: perhaps the server took it
    screen.send("two")
    screen.window.close()
    screen.reply(OK, "logout")
    assert screen.glue.exit_code == 0
    assert screen.logged == [
        "Perhaps not sent (the server may have it; it may yet arrive): broadcast one",
        "Not sent (the server never acknowledged it): broadcast two"]
    assert marks(screen) == ["? perhaps not sent", "✗ not sent"]
    # the box at the window's end names them as its pane did (it said "broadcast two")
    assert screen.window.left_behind == [
        "Perhaps not sent (the server may have it; it may yet arrive): me → everyone: one",
        "Not sent (the server never acknowledged it): me → everyone: two"]


def test_closing_the_window_before_login_exits_at_once(screen):
    screen.window.close()
    assert screen.glue.exit_code == 0 and screen.sent() == []


def test_logs_go_to_the_log(screen):
    screen.glue.feed(Replied(999, OK))
    assert screen.logged == ["reply to unknown request 999 ignored"]


def test_the_window_is_built_by_client_run_as_the_terminal_is(loop):
    """One builder: a listening port, a core with a random message id, and --stay-connected."""
    built = []

    class Window(WindowScreen):
        def run(self, glue):
            self.attach(glue)
            glue.start()
            built.append(glue)
            glue.feed(Interrupted())         # closed at once: exits
    args = client.parse_args(["127.0.0.1", "4119", "--gui", "--stay-connected"])
    assert client.run(args, Window(log=lambda text: None), loop) == 0
    glue = built[0]
    assert glue.core.settings.listen_port is not None and glue.stay is not None
    assert glue.server == ("127.0.0.1", 4119) and glue.screen.view.prompt == ASK_USER
    other = []
    client.run(args, type("W", (Window,), {"run": lambda self, g: other.append(g) or
                                                  Window.run(self, g)})(log=print), loop)
    assert glue.core.settings.client_id != other[0].core.settings.client_id


def test_a_login_waiting_for_the_server_is_called_a_login_not_a_message():
    """A trial's window said "1 message waiting to be sent" of its login."""
    view = ChatView()
    view.render(Show("outage", "Cannot reach the server (refused)."), AT)
    view.render(status(USERNAME, waiting=1, outage="refused", busy=True), AT)
    assert view.status == "Cannot reach the server (refused). Your login waits for the server."
    view.render(status(LOGGED_IN, waiting=2, outage="refused"), AT)
    assert view.status == "Cannot reach the server (refused). 2 messages waiting to be sent."


def test_the_status_line_says_an_outages_reason_as_it_is_now():
    """(a re-attack's window kept "not connected", the first reason, for a whole outage while
    the server refused)"""
    view = ChatView()
    view.render(status(LOGGED_IN, waiting=1, outage="not connected"), AT)
    view.render(Show("outage", "Cannot reach the server at h:1 (not connected)."), AT)
    assert view.status.startswith("Cannot reach the server at h:1 (not connected).")
    view.render(status(LOGGED_IN, waiting=1, outage="refused"), AT)
    assert view.status == "Cannot reach the server (refused). 1 message waiting to be sent."


def test_a_request_that_fails_at_once_is_handled_inside_the_feed(screen):
    screen.login()

    def refused(action):        # as a refused connect reports back from inside the glue
        screen.glue.feed(RequestFailed(action.request_id, "refused"))
    screen.glue._actions[SendRequest] = refused
    screen.send("hi")
    assert screen.view.status == "Cannot reach the server (refused). 1 message waiting to be sent."


def test_without_tkinter_the_client_says_why_and_exits_1(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "gui_tk", None)    # as if tkinter could not be imported
    assert client.main(["127.0.0.1", "4119", "--gui"]) == 1
    assert "cannot open a window" in capsys.readouterr().err


def test_default_log_writes_to_stderr_unless_diagnostics_are_off(capsys):
    window = WindowScreen()
    window.log("a diagnostic")
    assert capsys.readouterr().err == "a diagnostic\n"
    window.diagnostics = False              # (client.py --gui on a terminal, not --verbose)
    window.log("refused peer connection 29: no consent")
    assert capsys.readouterr().err == ""


# -- pure helpers -------------------------------------------------------------------------------

def status(stage, user="alice", waiting=0, outage=None, busy=False):
    return Status(stage, user, waiting, outage, busy)


def test_render_routes_prompts_to_the_form_and_other_lines_by_stage():
    view = ChatView()
    view.render(status(PASSWORD), AT)
    view.render(Prompt(PASSWORD), AT)
    assert view.form_lines == []
    view.render(Show("system", "Wrong password. Please try again."), AT)
    view.render(status(LOGGED_IN), AT)
    view.render(Show("system", "You have successfully logged in."), AT)
    view.render(ShowOnline(("b", "a", "b")), AT)
    assert view.prompt == ASK_PASSWORD
    assert view.form_lines == []        # logging in cleared the form
    assert [e.text for e in view.entries] == ["You have successfully logged in."]
    assert view.users == ["a", "b"]
    assert view.take_lines() == ["online"]
    view.render(status(USERNAME), AT)
    view.render(Show("system", "You have logged out."), AT)
    assert view.form_lines == [("notice", "You have logged out.")] and view.users == []
    view.render(Show("outage", "Cannot reach the server (refused)."), AT)
    assert view.form_message == "Cannot reach the server (refused)."   # always an error


def test_the_users_online_asks_for_is_answered_in_the_conversation_the_views_own_is_not():
    """A trial's /online in the window said nothing: only the list beside it changed."""
    view = ChatView()
    view.render(status(LOGGED_IN), AT)
    assert view.take_lines() == ["online"]              # the view's own, to seed its list
    view.render(ShowOnline(("b",)), AT)
    assert view.entries == [] and view.users == ["b"]
    view.render(ShowOnline(("b", "a")), AT)             # the user's /online
    view.render(ShowOnline(()), AT)
    assert [e.text for e in view.entries] == ["Online: a, b", "No other users are online."]


def test_the_list_is_asked_for_again_when_the_server_is_back():
    """Who came and went during an outage was told to no one: a trial's list stayed empty
    after a staying window's resume, until /online."""
    view = ChatView()
    view.render(status(LOGGED_IN), AT)
    view.take_lines()
    view.render(ShowOnline(("bob",)), AT)
    view.render(Show("outage", "Cannot reach the server (refused)."), AT)
    view.render(status(LOGGED_IN, outage="refused"), AT)
    assert view.take_lines() == []
    view.render(status(LOGGED_IN), AT)                  # back
    assert view.take_lines() == ["online"]
    view.render(ShowOnline(("bob", "carol")), AT)
    assert view.users == ["bob", "carol"] and view.entries[-1].text.startswith("Cannot")
    view.render(status(LOGGED_IN), AT)
    assert view.take_lines() == []                      # (once a return)


def test_a_message_is_its_sender_and_its_text_never_parsed_back_out():
    view = ChatView()
    view.render(status(LOGGED_IN), AT)
    view.render(Show("message", "bobby: hi", "bob"), AT)
    view.render(Show("broadcast", "no colon", "bob"), AT)
    assert [(e.sender, e.text, e.kind) for e in view.entries] == [
        ("bob", "bobby: hi", "direct"), ("bob", "no colon", "broadcast")]


def test_consent_questions_are_data_not_a_sentence_to_match():
    view = ChatView()
    view.render(status(LOGGED_IN), AT)
    view.render(AskConsent("bob"), AT)
    view.render(AskConsent("bob"), AT)
    view.render(AskConsent("carol"), AT)
    assert view.consent == "bob" and view.asking == ["bob", "carol"]
    assert view.answer(True) == ["Y bob"] and view.consent == "carol"


def test_a_question_that_lapses_leaves_the_dialog_and_says_so():
    view = ChatView()
    view.render(status(LOGGED_IN), AT)
    view.render(AskConsent("bob"), AT)
    view.render(AskConsent("carol"), AT)
    view.render(ConsentLapsed("bob"), AT)
    assert view.consent == "carol" and view.asking == ["carol"]
    assert view.entries[-1].text == ("bob asked for your address, but the request lapsed "
                                     "before you answered.")
    view.render(ConsentLapsed("dave"), AT)      # never asked: only said
    assert view.asking == ["carol"]


def test_a_message_that_is_an_action_reads_as_one_in_the_pane():
    assert entry_text(Entry(AT, "bob", "/me waves", "broadcast")) == "* bob waves (to everyone)"
    assert entry_text(Entry(AT, "bob", "/me waves", "direct")) == "* bob waves"
    assert entry_text(Entry(AT, "bob", "/me nods", "offline")) == (
        "* bob nods (while you were away)")
    assert entry_text(Entry(AT, None, "/me is no action without a sender", "system")) == (
        "/me is no action without a sender")


def test_entry_text_for_every_kind():
    assert entry_text(Entry(AT, "me", "yo", "mine", "bob")) == "me → bob: yo"
    assert entry_text(Entry(AT, "me", "yo", "mine")) == "me → everyone: yo"
    assert entry_text(Entry(AT, "bob", "psst", "private")) == "bob (private): psst"
    assert entry_text(Entry(AT, "bob", "hi", "direct")) == "bob: hi"
    assert entry_text(Entry(AT, None, "bob has logged in.", "system")) == "bob has logged in."


def test_stamp_is_local_hours_minutes_seconds():
    assert stamp(AT) == time.strftime("%H:%M:%S", time.localtime(AT))


def test_a_fate_for_no_message_shown_still_says_its_line():
    view = ChatView()
    view.render(status(LOGGED_IN), AT)
    view.render(ShowSending("r1", "bob", "hi"), AT)
    view.render(ShowFate("r1", Fate.WAITING, "Waiting to be sent: message bob hi"), AT)
    view.render(ShowFate("r1", Fate.SENT), AT)
    view.render(ShowFate("r1", Fate.REFUSED, "late"), AT)       # answered already: only said
    view.render(ShowFate("r9", Fate.WAITING, "Waiting to be sent: message bob x"), AT)
    assert [entry_mark(e) for e in view.entries] == ["✓", "", ""]
    assert [e.text for e in view.entries[1:]] == ["late", "Waiting to be sent: message bob x"]
    assert view.take_changed() == [0, 0]


# -- a private talk, in the window's words ------------------------------------------------------

def sealed(address, proof="p1", salt="1"):
    """`address` with its key, as the server delivers it to a session with a proof (WELCOME's):
    sealed."""
    fields = {name: value for name, value in address.items() if name != "key"}
    return {**fields, "salt": salt, "sealed": protocol.seal(
        address["key"], proof, protocol.ADDRESS_KEY_LABEL, address["user"], salt)}


ADDRESS = sealed({"type": "address", "user": "bob", "host": "10.0.0.2", "port": 6001,
                  "key": "k"})


def asked(screen, user="bob"):
    """The user asked `user` for their address (Get address), and the server said ok."""
    screen.type(screen.view.act("getaddress", user))
    screen.reply(OK)


def test_getaddress_and_its_answer_are_told_in_the_windows_words(screen):
    screen.login(users=["bob"])
    assert not screen.view.can_private("bob")
    assert screen.view.user_hint("bob") == ("Private messages go to bob once they agree: "
                                            "Get address asks them.")
    assert screen.view.user_hint(None) == ("Select a user to message, block or ask for a "
                                           "private talk. Unblock asks for a name: blocked "
                                           "users are not listed.")
    screen.type(screen.view.act("getaddress", "bob"))
    screen.reply(OK)
    assert screen.texts()[-1] == "You asked bob for a private talk; waiting for their answer."
    screen.deliver(ADDRESS)
    assert screen.texts()[-1] == ("bob agreed to a private talk: select bob and press Private "
                                  "message.")
    assert screen.view.can_private("bob") and screen.view.private_to == ("bob",)
    assert screen.view.user_hint("bob") == "bob agreed to a private talk."
    screen.deliver({"type": "address_revoked", "user": "bob"})
    assert screen.texts()[-1] == ("Your private talk with bob has ended (they logged out or in "
                                  "again): press Get address to ask again.")
    assert not screen.view.can_private("bob")


def test_a_private_message_without_consent_names_the_buttons_not_the_commands(screen):
    screen.login(users=["bob"])
    screen.view.aim("bob", private=True)
    assert screen.send("psst") is False         # it stays in the input (a trial's was lost)
    assert screen.texts()[-1] == ("bob has not agreed to a private talk with you: select bob and "
                                  "press Get address to ask, or Message to send it through the "
                                  "server.")
    assert all(e.kind != "mine" for e in screen.view.entries)     # nothing went
    assert screen.sent("message") == []
    # typed as a command, to anyone who has not agreed: kept too (a trial's was emptied)
    screen.view.aim(None)
    for typed in ("/private bob psst", "/PRIVATE bob psst", "/online\n/private carol hi"):
        assert screen.send(typed) is False, typed
        assert screen.texts()[-1].startswith(typed.split()[-2] + " has not agreed")
    assert screen.send("/private") is not False     # (its usage is the core's to say)


def test_an_unreachable_peer_is_told_with_the_way_through_the_server(screen):
    screen.login(users=["bob"])
    asked(screen)
    screen.deliver(ADDRESS)
    screen.send("/private bob psst")
    screen.glue.feed(LinkClosed(1, "refused"))
    assert screen.texts()[-3:] == [
        "Could not reach bob's client directly (their address may have changed).",
        "Not sent: bob's client could not be reached.",
        "To leave it for bob on the server instead, select bob, press Message and send it again."]


@pytest.mark.parametrize("show, words", [
    (Show("peer_refused", sender="bob"), "bob no longer takes your private messages: press Get "
                                         "address to ask again."),
    (Show("peer_no_port", sender="bob"), "bob agreed, but their client cannot take private "
                                         "messages: press Message to write to them through the "
                                         "server."),
    (Show("no_port"), "This client cannot take private messages (it has no listening port): "
                      "others can answer you with Message, not Private message."),
    # (a command the window's input took, named with its /: a re-attack's had the terminal's)
    (Show("ended_not_done", "getaddress bob"), "/getaddress bob was not done: the session had "
                                               "ended."),
])
def test_every_private_talk_notice_has_the_windows_words(show, words):
    view = ChatView()
    view.render(status(LOGGED_IN), AT)
    view.render(show, AT)
    assert [e.text for e in view.entries] == [words]


def test_a_user_whose_client_takes_no_private_messages_is_hinted_to_message_instead(screen):
    screen.login(users=["bob"])
    screen.deliver({"type": "address_unavailable", "user": "bob"})
    assert not screen.view.can_private("bob")
    assert screen.view.user_hint("bob") == "bob's client cannot take private messages: use Message."
    screen.type(screen.view.logout())
    screen.reply(OK)
    assert screen.view.user_hint("bob").startswith("Private messages go to bob once")


def test_logging_out_forgets_who_agreed(screen):
    screen.login(users=["bob"])
    asked(screen)
    screen.deliver(ADDRESS)
    screen.type(screen.view.logout())
    screen.reply(OK)
    assert screen.view.private_to == () and not screen.view.can_private("bob")


def test_the_box_at_the_end_says_a_private_message_perhaps_not_delivered_as_the_pane_does():
    """(a review's box said "perhaps not sent" of a private message its peer may have shown)"""
    view = ChatView()
    view.render(ShowSending("r1", "seas", "just us", private=True), AT)
    fate = ShowFate("r1", Fate.UNSURE, "Perhaps not delivered ...", "you quit before it was "
                    "acknowledged", True)
    assert view.exit_line(fate) == ("Perhaps not delivered (you quit before it was "
                                    "acknowledged): me → seas (private): just us")


def test_the_box_at_the_windows_end_names_what_was_not_sent_the_first_ten():
    lines = [f"Not sent (you quit before it went): message seas m{n}" for n in range(12)]
    said = exit_box_text("the logout got no answer; 12 messages were not sent", lines)
    assert said.splitlines() == ["The logout got no answer; 12 messages were not sent", "",
                                 *lines[:10], "... and 2 more."]
    assert exit_box_text("", lines) == ""       # nothing counted undone: an ordinary close
    # the input's draft, typed and never sent, is said too, as the terminal says it
    assert exit_box_text("", [], " half typed\n") == (
        "What you typed was not sent (Enter was not pressed):\n\nhalf typed")
    assert exit_box_text("1 message was not sent", lines[:1], "half").splitlines()[-1] == (
        "Not sent (Enter was not pressed): half")
    assert exit_box_text("", [], "  ") == ""


def test_the_status_line_counts_messages_and_commands_apart():
    assert [waiting_words(*counts) for counts in ((2, 0), (2, 1), (1, 1), (3, 2))] == [
        "2 messages", "1 message and 1 command", "1 command", "1 message and 2 commands"]
