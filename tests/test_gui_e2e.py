"""End to end with windows: the real server and real `client.py --gui` processes on Xvfb.

The test drives each window through Tk's `send` (see guiprocs.py): it types into the entries,
presses Enter, invokes buttons and reads the widgets back. Screenshots go to tests/artifacts/.
"""
import os
import re
import signal
import socket
import subprocess
import sys
import time
import types

import pytest

from guiprocs import SCREEN, GuiProcess, NoDisplay, idle, login, screenshot
from reactor import Handler, Reactor
from timers import RealClock
from realprocs import ACCOUNTS, ROOT, WAIT_S, exchange, start_server, token_of

tkinter = pytest.importorskip("tkinter", reason="this Python has no tkinter, so no window")
from gui_tk import ERROR_COLOUR, REFRESH_S, TkLoop, TkScreen  # noqa: E402  (imports tkinter)

ARTIFACTS = os.path.join(ROOT, "tests", "artifacts")
IDLE_S = 3.0                # how long the idle CPU check watches
IDLE_CPU_LIMIT = 0.05       # the share of one core an idle window may use


@pytest.fixture
def display(screens):
    try:
        return screens.get(SCREEN)[0]
    except NoDisplay as why:
        pytest.skip(f"no display can be had: {why}")


@pytest.fixture
def tk(display, screens):
    return screens.get(SCREEN)[1]


@pytest.fixture
def windows(tk, display, server, tmp_path):
    started = []

    def open_window(*args, port=None):
        gui = GuiProcess(tk, display, port or server.port, tmp_path / f"gui{len(started)}.err",
                         *args)
        started.append(gui)
        return gui
    yield open_window
    for gui in started:
        gui.kill()


def wait_listed(gui, *users):
    """Wait until `gui`'s list of who is online shows just `users`."""
    gui.wait(lambda: gui.list_items(".chat.side.users") == list(users),
             f"{', '.join(users)} in the list")


def press_for(gui, user, button):
    """Once `user` is listed in `gui` (alone), select them and press `button`."""
    wait_listed(gui, user)
    gui.select_item(".chat.side.users", user)
    gui.invoke(button)


def shoot(display, name, *guis):
    """Save the screen, with every window drawn, to tests/artifacts/<name>."""
    for gui in guis:
        gui.settle()
    os.makedirs(ARTIFACTS, exist_ok=True)
    path = os.path.join(ARTIFACTS, name)
    assert screenshot(display.frame_buffer, path) == SCREEN
    with open(path, "rb") as png:
        assert png.read(8) == b"\x89PNG\r\n\x1a\n"


def colour(gui, path):
    """A label's text colour, as Tk names it."""
    return gui.call(path, "cget", "-foreground")


def display_line_starts(gui, text):
    """Where, in pixels, `text` (an entry's text) starts on its first display line, and where
    its second display line starts: (x, y) each."""
    pane = ".chat.pane"
    at = gui.call(pane, "search", "-exact", text, "1.0")
    assert at, f"{text!r} is not in the pane"
    gui.call(pane, "see", at)
    gui.call("update", "idletasks")
    wrapped = gui.call(pane, "index", f"{at} linestart + 1 display lines display linestart")
    assert wrapped.split(".")[0] == at.split(".")[0], "the entry did not wrap"
    starts = [gui.tk.splitlist(gui.call(pane, "bbox", index))[:2] for index in (at, wrapped)]
    return [tuple(int(v) for v in xy) for xy in starts]


def contrast(gui, colour_a, colour_b):
    """The WCAG contrast ratio of two Tk colours (1 to 21)."""
    def luminance(colour):
        channels = [int(v) / 65535 for v in gui.tk.splitlist(gui.call("winfo", "rgb", ".",
                                                                      colour))]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    light, dark = sorted([luminance(colour_a), luminance(colour_b)], reverse=True)
    return (light + 0.05) / (dark + 0.05)


def pane_has(gui, text):
    return lambda: text in gui.text(".chat.pane")


def pane_matches(gui, pattern):
    return lambda: re.search(pattern, gui.text(".chat.pane"))


def line_tags(gui, text):
    """The looks (Text tags) of the pane where `text` first appears."""
    at = gui.call(".chat.pane", "search", "-exact", text, "1.0")
    assert at, f"{text!r} is not in the pane"
    return gui.tk.splitlist(gui.call(".chat.pane", "tag", "names", at))


def test_two_windows_log_in_talk_agree_to_a_private_talk_and_close(windows, server, display):
    alice, bob = windows(), windows()
    alice.place(0, 0)
    bob.place(SCREEN[0] // 2, 0)
    assert alice.label(".login.message") == ""
    login(alice, "columbia")
    assert "You have successfully logged in." in alice.text(".chat.pane")
    assert alice.call("wm", "title", ".") == "Chat room: columbia"
    login(bob, "seas")
    wait_listed(alice, "seas")
    wait_listed(bob, "columbia")
    alice.wait(pane_has(alice, "seas has logged in."), "the presence notice")

    alice.select_item(".chat.side.users", "seas")
    alice.invoke(".chat.side.message")
    assert alice.label(".chat.bottom.target") == "To seas:"
    alice.type_into(".chat.bottom.input", "hello seas")
    alice.press_enter(".chat.bottom.input")
    bob.wait(pane_has(bob, "columbia: hello seas"), "the message")
    alice.wait(pane_has(alice, "me → seas: hello seas  ✓"), "the server's yes")
    assert "mine" in line_tags(alice, "me → seas: hello seas")
    assert alice.call(".chat.bottom.input", "get") == ""
    # a message the server refuses is never shown as sent: struck through, the reason below
    alice.type_into(".chat.bottom.input", "/message nobody are you there?")
    alice.press_enter(".chat.bottom.input")
    alice.wait(pane_matches(alice, r"me → nobody: are you there\?  ✗ not sent\n"
                                   r"[\d:]{8}  User nobody does not exist\."), "the refusal")
    assert "refused" in line_tags(alice, "me → nobody: are you there?")
    assert "error" in line_tags(alice, "User nobody does not exist.")

    # a long message wraps under its own text, not under the time stamps
    long_text = "a long message " * 12
    alice.type_into(".chat.bottom.input", long_text)
    alice.press_enter(".chat.bottom.input")
    alice.wait(pane_has(alice, long_text + "  ✓"), "the long message taken")
    first, second = display_line_starts(alice, "me → seas: " + long_text)
    assert second[0] == first[0] > 0 and second[1] > first[1]      # same x, next line down
    # the selected user stands out: strong colour behind, readable text on it
    users = ".chat.side.users"
    assert contrast(alice, alice.call(users, "cget", "-selectbackground"),
                    alice.call(users, "cget", "-background")) >= 3
    assert contrast(alice, alice.call(users, "cget", "-selectforeground"),
                    alice.call(users, "cget", "-selectbackground")) >= 4.5

    bob.type_into(".chat.bottom.input", "hi all")
    bob.invoke(".chat.bottom.send")
    alice.wait(pane_has(alice, "seas (to everyone): hi all"), "the broadcast")

    # no private talk without consent: the button waits for it, and says so
    assert alice.call(".chat.side.private", "instate", "disabled") == "1"
    assert alice.label(".chat.side.hint") == (
        "Private messages go to seas once they agree: Get address asks them.")
    bob.call("focus", "-force", ".chat.bottom.input")      # bob is typing
    alice.invoke(".chat.side.getaddress")       # seas is still selected
    alice.wait(pane_has(alice, "You asked seas for a private talk; waiting for their answer."),
               "the request")
    bob.wait(lambda: bob.exists(".consent"), "the consent dialog")
    # it takes the keyboard from the window, above it (a trial's opened behind the window,
    # and took no key until clicked)
    bob.wait(lambda: bob.call("focus") == ".consent", "the dialog to take the focus")
    # what bob goes on typing is not lost (a trial's half sentence was): it reaches the input
    bob.call(".chat.bottom.input", "insert", "end", "typing a lo")
    for key in ("<Key-n>", "<Key-g>", "<Key-x>", "<BackSpace>"):
        bob.call("event", "generate", ".consent", key)
    assert bob.call(".chat.bottom.input", "get") == "typing a long"
    bob.call(".chat.bottom.input", "icursor", "0")
    bob.call("event", "generate", ".consent", "<BackSpace>")     # nothing before the cursor
    assert bob.call(".chat.bottom.input", "get") == "typing a long"
    bob.call(".chat.bottom.input", "delete", "0", "end")
    assert bob.call("wm", "transient", ".consent") == "."
    assert bob.label(".consent.question") == (
        "Do you agree to have a private talk with columbia?")
    shoot(display, "gui-consent.png", alice, bob)
    bob.press(".consent.buttons.agree")
    bob.wait(lambda: not bob.exists(".consent"), "the dialog to close")
    alice.wait(pane_has(alice, "seas agreed to a private talk: select seas and press Private "
                               "message."), "the address")
    assert alice.call(".chat.side.private", "instate", "disabled") == "0"
    assert alice.label(".chat.side.hint") == "seas agreed to a private talk."
    assert "You agreed to a private talk with columbia." in bob.text(".chat.pane")
    alice.invoke(".chat.side.private")
    assert alice.label(".chat.bottom.target") == "Privately to seas:"
    alice.type_into(".chat.bottom.input", "just us")
    alice.press_enter(".chat.bottom.input")
    bob.wait(pane_has(bob, "columbia (private): just us"), "the private message")
    assert "me → seas (private): just us" in alice.text(".chat.pane")
    assert "just us" not in server.log()        # it went straight to seas, not via the server
    alice.wait(pane_has(alice, "me → seas (private): just us  ✓"), "seas's client took it")
    for gui in (alice, bob):                    # the window's words, never the terminal's
        for terminal_words in ("request sent", "got address!", "Type getaddress", "Y columbia"):
            assert terminal_words not in gui.text(".chat.pane")
    shoot(display, "gui.png", alice, bob)
    # seas takes its yes back from the window (a re-attack's had no way but typing /N)
    assert bob.call(".chat.side.takeback", "instate", "disabled") == "1"   # nobody selected
    bob.select_item(".chat.side.users", "columbia")
    assert bob.call(".chat.side.takeback", "instate", "disabled") == "0"
    bob.invoke(".chat.side.takeback")
    bob.wait(pane_has(bob, "columbia may no longer send you private messages (your yes is "
                           "taken back)."), "the yes taken back")
    # said once: by the server's news, or by seas's listener ending the link, which comes
    # first (a re-attack's user read both, every time)
    news = ("seas took back their agreement to a private talk: press Get address to ask again.",
            "seas no longer takes your private messages: press Get address to ask again.")
    alice.wait(lambda: any(pane_has(alice, line)() for line in news), "the news of it")
    bob.wait(lambda: bob.call(".chat.side.takeback", "instate", "disabled") == "1",
             "the button to go grey")
    alice.invoke(".chat.side.everyone")
    assert alice.label(".chat.bottom.target") == "To everyone:"

    alice.close_window()
    assert alice.wait_exit() == 0
    bob.wait(pane_has(bob, "columbia has logged out."), "columbia leaving")
    bob.wait(lambda: bob.list_items(".chat.side.users") == [], "an empty list")
    server.wait_log(r"columbia logged out")
    bob.invoke(".chat.side.logout")
    bob.wait(lambda: bob.label(".login.notice") == "You have logged out.", "the logout")
    assert bob.label(".login.message") == ""            # news, in the notice's neutral colour
    assert colour(bob, ".login.notice") != colour(bob, ".login.message")
    bob.close_window()
    assert bob.wait_exit() == 0


def test_a_refused_consent_and_a_list_that_keeps_its_selection(windows):
    seas, google = windows(), windows()
    login(seas, "seas")
    login(google, "google")
    wait_listed(google, "seas")
    before = google.text(".chat.pane")
    google.invoke(".chat.side.getaddress")          # nobody selected: nothing happens
    assert google.text(".chat.pane") == before
    google.select_item(".chat.side.users", "seas")
    for _ in range(2):                          # a double-click is Message
        for event in ("<ButtonPress-1>", "<ButtonRelease-1>"):
            google.call("event", "generate", ".chat.side.users", event, "-x", "5", "-y", "5")
    assert google.label(".chat.bottom.target") == "To seas:"
    google.invoke(".chat.side.everyone")
    assert google.label(".chat.bottom.target") != "To seas:"
    google.press_key(".chat.side.users", "<Return>")    # and so is Enter (it did nothing)
    assert google.label(".chat.bottom.target") == "To seas:"
    refusals = []
    for say_no in (lambda: seas.press(".consent.buttons.refuse"),
                   lambda: seas.call(seas.call("wm", "protocol", ".consent", "WM_DELETE_WINDOW")),
                   lambda: seas.press_key(".consent", "<Escape>")):
        google.invoke(".chat.side.getaddress")
        seas.wait(lambda: seas.exists(".consent"), "the consent dialog")
        say_no()                                    # Refuse, closed, Escape: each a no
        seas.wait(lambda: not seas.exists(".consent"), "the dialog to close")
        refusals.append("seas refused to give you their address.")
        google.wait(lambda: google.text(".chat.pane").count(refusals[0]) == len(refusals),
                    "the refusal")
    third = windows()
    login(third, "columbia")
    wait_listed(google, "columbia", "seas")
    assert google.call(".chat.side.users", "curselection") == "1"      # seas, still selected
    for gui in (seas, google, third):
        gui.close_window()
        assert gui.wait_exit() == 0


def test_unblock_with_nobody_selected_asks_for_the_name_a_blocked_user_is_not_listed(windows):
    """A trial's window could never unblock: a blocked user leaves the list, and the buttons
    waited for a selection."""
    seas, google = windows(), windows()
    login(seas, "seas")
    login(google, "google")
    press_for(google, "seas", ".chat.side.block")
    google.wait(lambda: google.list_items(".chat.side.users") == [], "seas out of the list")
    assert google.call(".chat.side.unblock", "instate", "disabled") == "0"
    google.type_into(".chat.bottom.input", "a draft I care about")
    google.invoke(".chat.side.unblock")     # a draft stays (a trial's was replaced)
    google.wait(pane_has(google, "To unblock someone, type /unblock"), "how to unblock")
    assert google.call(".chat.bottom.input", "get") == "a draft I care about"
    google.call(".chat.bottom.input", "delete", "0", "end")
    google.invoke(".chat.side.unblock")
    assert google.call(".chat.bottom.input", "get") == "/unblock "
    google.call(".chat.bottom.input", "insert", "end", "seas")
    google.press_enter(".chat.bottom.input")
    google.wait(lambda: google.list_items(".chat.side.users") == ["seas"], "seas listed again")
    assert "User seas has been unblocked." in google.text(".chat.pane")
    for gui in (seas, google):
        gui.close_window()
        assert gui.wait_exit() == 0


def test_wrong_password_and_lockout_are_told_in_the_form(windows):
    gui = windows()
    assert gui.label(".login.heading") == "Chat room"
    assert gui.label(".login.prompt") == "Log in with your user name and password."
    gui.type_into(".login.username", "nobody")
    gui.type_into(".login.password", "x")
    gui.press_enter(".login.submit")            # Enter on the focused button presses it
    gui.wait(lambda: gui.label(".login.message") == "Wrong username.", "wrong username")
    assert colour(gui, ".login.message") == ERROR_COLOUR
    # the name is typed again where names go (a trial's went, hidden, into the password)
    assert gui.call("focus", "-lastfor", ".") == ".login.username"
    # ... over the refused one: a name typed after it was joined to it ("nobodygoogle")
    assert gui.call(".login.username", "selection", "present") == "1"
    gui.type_into(".login.username", "google")
    for _ in range(2):
        gui.type_into(".login.password", "nope")
        gui.invoke(".login.submit")
        gui.wait(lambda: "Wrong password" in gui.label(".login.message"), "wrong password")
        assert gui.label(".login.prompt") == (
            "Enter the password for google, or another name to log in as someone else.")
        assert gui.call(".login.username", "instate", "disabled") == "0"   # it can change
        gui.call(".login.message", "configure", "-text", "")
    gui.type_into(".login.password", "nope")
    gui.invoke(".login.submit")
    gui.wait(lambda: gui.label(".login.message") == (
        "You have entered wrong password three times. You will be blocked for 30 seconds."),
        "the lockout")
    # the password is typed again in its own field: it went into the name's, shown, and was
    # sent as a name (a re-attack's)
    assert gui.call("focus", "-lastfor", ".") == ".login.password"
    gui.close_window()
    assert gui.wait_exit() == 0


def test_after_a_wrong_password_another_user_can_log_in(windows):
    gui = windows()
    gui.type_into(".login.username", "google")
    gui.type_into(".login.password", "nope")
    gui.invoke(".login.submit")
    gui.wait(lambda: "Wrong password" in gui.label(".login.message"), "wrong password")
    login(gui, "seas")                      # another name in the same form, with its password
    assert gui.call("wm", "title", ".") == "Chat room: seas"
    gui.close_window()
    assert gui.wait_exit() == 0


def test_the_pane_stays_at_its_end_when_ones_own_long_message_is_marked_sent(windows):
    """(a trial's own 4,000 characters, marked ✓, left the pane at their top: what came next
    arrived out of sight)"""
    seas, gui = windows(), windows()
    login(seas, "seas")
    login(gui, "google")
    gui.type_into(".chat.bottom.input", "y" * 4000)
    gui.press_enter(".chat.bottom.input")
    gui.wait(lambda: "✓" in gui.text(".chat.pane"), "the long one taken")
    seas.type_into(".chat.bottom.input", "after the long one")
    seas.press_enter(".chat.bottom.input")
    gui.wait(pane_has(gui, "after the long one"), "the next message")
    assert float(gui.call(".chat.pane", "yview").split()[1]) == 1.0
    for window in (seas, gui):
        window.close_window()
        assert window.wait_exit() == 0


def test_a_login_as_someone_else_in_the_same_window_shows_a_new_conversation(windows):
    """A trial's window, logged out and in as another user, showed the first one's
    messages to the second."""
    seas, gui = windows(), windows()
    login(seas, "seas")
    login(gui, "google")
    seas.type_into(".chat.bottom.input", "for google only")
    seas.press_enter(".chat.bottom.input")
    gui.wait(pane_has(gui, "for google only"), "the broadcast")
    too_long = "x" * 4001                   # refused as typed: it stays to be shortened
    gui.type_into(".chat.bottom.input", too_long)
    gui.press_enter(".chat.bottom.input")
    gui.wait(pane_has(gui, "Shorten it, and send it again."), "the refusal")
    assert gui.call(".chat.bottom.input", "get") == too_long
    gui.type_into(".chat.bottom.input", "google's draft")
    gui.invoke(".chat.side.logout")
    gui.wait(lambda: gui.exists(".login.username") and gui.call(
        "winfo", "ismapped", ".login.username") == "1", "the login form")
    # the name is kept, so the password is typed next, not into the name (a trial's was,
    # shown, and sent as a name)
    assert gui.call(".login.username", "get") == "google"
    assert gui.call("focus", "-lastfor", ".") == ".login.password"
    login(gui, "columbia")
    gui.wait(lambda: "for google only" not in gui.text(".chat.pane"), "a new conversation")
    assert gui.call(".chat.bottom.input", "get") == ""      # not google's draft
    for window in (seas, gui):
        window.close_window()
        assert window.wait_exit() == 0


def test_a_draft_left_by_a_user_who_logged_out_is_not_shown_at_the_close(windows):
    """(a re-trial's box at the close, at the login form, showed the logged-out user's
    unsent draft to whoever was there)"""
    gui = windows()
    login(gui, "google")
    gui.type_into(".chat.bottom.input", "secret plan of google")
    gui.invoke(".chat.side.logout")
    gui.wait(lambda: gui.call("winfo", "ismapped", ".login.username") == "1", "the form")
    gui.close_window()
    assert gui.wait_exit() == 0         # no box waits for a click


def test_a_staying_window_without_a_port_chats_and_resumes_after_a_cut(windows, server, relay,
                                                                       display):
    """--stay-connected in a window: one connection (through a relay the test cuts), no
    listening port; what is sent either way during the cut arrives once, and the window's
    private-talk words and buttons hold for a client that cannot take private messages."""
    alice = windows("--stay-connected", "--no-listen", port=relay.port)
    bob = windows()
    alice.place(0, 0)
    bob.place(SCREEN[0] // 2, 0)
    login(alice, "columbia")
    server.wait_log(r"columbia logged in from 127\.0\.0\.1, staying connected")
    login(bob, "seas")
    press_for(alice, "seas", ".chat.side.message")
    alice.type_into(".chat.bottom.input", "hello from behind a NAT")
    alice.press_enter(".chat.bottom.input")
    alice.wait(pane_has(alice, "me → seas: hello from behind a NAT  ✓"), "the server's yes")
    bob.wait(pane_has(bob, "columbia: hello from behind a NAT"), "the message")

    # alice may dial seas once seas agrees; seas can never be given alice's address
    alice.invoke(".chat.side.getaddress")
    bob.wait(lambda: bob.exists(".consent"), "the consent dialog")
    bob.press(".consent.buttons.agree")
    alice.wait(lambda: alice.call(".chat.side.private", "instate", "disabled") == "0",
               "seas's consent")
    alice.invoke(".chat.side.private")
    alice.type_into(".chat.bottom.input", "psst")
    alice.press_enter(".chat.bottom.input")
    bob.wait(pane_has(bob, "columbia (private): psst"), "the private message")
    alice.wait(pane_has(alice, "This client cannot take private messages (it has no listening "
                               "port): others can answer you with Message, not Private "
                               "message."), "the word about the port")
    bob.select_item(".chat.side.users", "columbia")
    bob.invoke(".chat.side.getaddress")
    alice.wait(lambda: alice.exists(".consent"), "the consent dialog")
    alice.press(".consent.buttons.agree")
    bob.wait(pane_has(bob, "columbia agreed, but their client cannot take private messages: "
                           "press Message to write to them through the server."), "the answer")
    assert bob.call(".chat.side.private", "instate", "disabled") == "1"
    assert bob.label(".chat.side.hint") == (
        "columbia's client cannot take private messages: use Message.")

    # the cut: messages both ways while alice's connection is down arrive once it is back
    relay.sever()
    server.wait_log("columbia's staying connection closed")
    alice.invoke(".chat.side.message")
    alice.type_into(".chat.bottom.input", "typed while away")
    alice.press_enter(".chat.bottom.input")
    bob.invoke(".chat.side.message")
    for n in (1, 2):
        bob.type_into(".chat.bottom.input", f"while away {n}")
        bob.press_enter(".chat.bottom.input")
    server.wait_log("columbia resumed the session on connection")
    alice.wait(pane_has(alice, "seas: while away 2"), "the messages kept for alice")
    alice.wait(pane_has(alice, "me → seas: typed while away  ✓"), "alice's message taken")
    bob.wait(pane_has(bob, "columbia: typed while away"), "alice's message")
    for text in ("seas: while away 1", "seas: while away 2"):
        assert alice.text(".chat.pane").count(text) == 1
    assert bob.text(".chat.pane").count("columbia: typed while away") == 1
    alice.wait(lambda: alice.label(".status") == "Logged in as columbia.", "the status line")
    shoot(display, "gui-stay.png", alice, bob)

    alice.close_window()
    assert alice.wait_exit() == 0
    server.wait_log("columbia logged out")
    bob.wait(pane_has(bob, "columbia has logged out."), "columbia leaving")
    bob.close_window()
    assert bob.wait_exit() == 0


def test_closing_with_messages_on_their_way_asks_and_closes_once_they_are_taken(windows,
                                                                                server):
    """(a trial's window closed in an outage at once, its messages listed as not sent on a
    standard error nobody read)"""
    alice, bob = windows(), windows()
    login(alice, "columbia")
    login(bob, "seas")
    press_for(alice, "seas", ".chat.side.message")
    server.proc.send_signal(signal.SIGSTOP)         # the server away: the message waits
    try:
        alice.type_into(".chat.bottom.input", "on its way")
        alice.press_enter(".chat.bottom.input")
        alice.close_window()
        alice.wait(lambda: alice.exists(".leave"), "the question before closing")
        alice.wait(lambda: alice.label(".leave.count") == "1 message waiting.", "the count")
        alice.close_window()                        # an impatient second click: still asks
        assert alice.call("wm", "state", ".") == "normal" and alice.proc.poll() is None
        alice.press(".leave.buttons.keep")          # kept open, the message still waiting
        alice.wait(lambda: not alice.exists(".leave"), "the question gone")
        # the keyboard back where it was: with no window manager, nobody gave it back, and
        # what was typed next was lost (a trial's)
        assert alice.call("focus") == ".chat.bottom.input"
        alice.close_window()
        alice.wait(lambda: alice.exists(".leave"), "the question again")
    finally:
        server.proc.send_signal(signal.SIGCONT)
    assert alice.wait_exit() == 0                   # closed by itself once the message is taken
    bob.wait(pane_has(bob, "columbia: on its way"), "the message")
    server.wait_log("columbia logged out")
    assert "Not sent" not in alice.errors()
    bob.close_window()
    assert bob.wait_exit() == 0


def test_closing_before_a_login_the_server_has_not_answered_does_not_ask(windows):
    """(a login waiting for a server not there is no message on its way: a reviewer's
    question waited for ever, and would have logged in and out when the server came)"""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))               # a port nobody listens on
        gui = windows(port=unused.getsockname()[1])
        gui.type_into(".login.username", "columbia")
        gui.type_into(".login.password", "116bway")
        gui.press_enter(".login.password")
        gui.wait(lambda: "Cannot reach" in gui.label(".status"), "the outage said")
        gui.close_window()                          # no question: it closes at once
        assert gui.wait_exit() == 0


def test_sigterm_logs_out_like_ctrl_c_and_idle_costs_no_cpu(windows, server):
    gui = windows()
    login(gui, "google")
    gui.wait(lambda: "Logged in as google." == gui.label(".status"), "the status line")
    before = gui.cpu_s()
    idle(gui, IDLE_S)
    used = gui.cpu_s() - before
    assert used < IDLE_S * IDLE_CPU_LIMIT, f"idle window used {used:.3f} s of CPU in {IDLE_S} s"
    gui.proc.send_signal(signal.SIGTERM)
    assert gui.wait_exit() == 0
    server.wait_log(r"google logged out")


def test_without_a_display_the_gui_says_why_and_exits_1():
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    done = subprocess.run([sys.executable, os.path.join(ROOT, "client.py"), "127.0.0.1", "1",
                           "--gui"], env=env, capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert done.returncode == 1
    assert "cannot open a window" in done.stderr


# -- the loop on its own, in this process ------------------------------------------------------

def pump(tk, condition, timeout_s=10.0):
    """Run Tk's event loop until `condition()` is true, at most `timeout_s`."""
    end = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < end, "timed out"
        tick = tk.after(20, lambda: None)       # bounds this wait; not a pause of its own
        tk.tk.dooneevent(0)
        tk.after_cancel(tick)


class Frames(Handler):
    def __init__(self):
        self.frames = []

    def on_frame(self, conn, line):
        self.frames.append(line)


def test_tk_loop_wakes_the_reactor_for_timers_and_sockets_and_sleeps_between(tk):
    reactor = Reactor(RealClock())
    passes = []
    loop = TkLoop(tk, reactor, lambda: passes.append(reactor.clock.now()))
    fired = []
    started_at = reactor.clock.now()
    reactor.call_later(0.05, lambda: fired.append(reactor.clock.now()))
    loop.start()
    pump(tk, lambda: fired)
    assert fired[0] - started_at >= 0.05
    mine, theirs = socket.socketpair()
    frames = Frames()
    reactor.watch(mine, frames)
    loop.kick()
    quiet_from = len(passes) + 1
    end = time.monotonic() + 0.3
    pump(tk, lambda: time.monotonic() >= end)   # one pass for the kick, then nothing to do
    assert len(passes) == quiet_from
    theirs.sendall(b"hello\n")
    pump(tk, lambda: frames.frames)
    assert frames.frames == [b"hello"]
    loop.stop()
    loop.stop()                                 # twice is harmless
    loop.kick()                                 # a stopped loop schedules nothing
    theirs.sendall(b"late\n")
    end = time.monotonic() + 0.1
    pump(tk, lambda: time.monotonic() >= end)
    assert frames.frames == [b"hello"]
    theirs.close()
    mine.close()


def test_a_flood_of_passes_draws_the_window_at_most_every_refresh_s(tk):
    """(a trial's 2,000 long messages redrew the pane 1,748 times and froze the window)"""
    clock = RealClock()
    screen = TkScreen(tk)
    screen.glue = types.SimpleNamespace(exit_code=None, reactor=types.SimpleNamespace(clock=clock))
    drawn = []
    screen.window = types.SimpleNamespace(refresh=lambda: drawn.append(clock.now()))
    started = clock.now()
    for _ in range(100):                    # a hundred passes at once: one drawing now ...
        screen._after_pass()
    assert len(drawn) == 1
    pump(tk, lambda: len(drawn) == 2)       # ... and one when REFRESH_S is over, for the rest
    assert drawn[1] - drawn[0] >= REFRESH_S - 0.001 and drawn[0] - started < REFRESH_S


def test_an_acknowledgement_waits_for_the_drawing_and_a_closed_window_sends_none(tk):
    """A window draws at most every REFRESH_S: closed meanwhile, a trial's acknowledged
    messages it never drew, and they were lost. Unacknowledged, they come at the next login."""
    clock = RealClock()
    screen = TkScreen(tk)
    fed = []
    screen.glue = types.SimpleNamespace(exit_code=None, feed=fed.append,
                                        reactor=types.SimpleNamespace(clock=clock))
    drawn = []
    screen.window = types.SimpleNamespace(refresh=lambda: drawn.append(clock.now()))
    kicked = []
    screen.loop = types.SimpleNamespace(kick=lambda: kicked.append(len(sent)))
    screen._after_pass()                    # drawn now: the next drawing waits REFRESH_S
    sent = []
    screen.once_drawn(lambda: sent.append("ack 1"))
    screen._after_pass()
    assert sent == [] and len(drawn) == 1
    pump(tk, lambda: len(drawn) == 2)
    assert sent == ["ack 1"]                # sent with the drawing that showed it ...
    # ... and a pass asked for at once, which writes it: queued outside a pass, a trial's
    # acknowledgements waited for the next event, and a close overtook them
    assert kicked == [1]
    screen.once_drawn(lambda: sent.append("ack 2"))
    screen._after_pass()
    screen.close()                          # the close button, before the drawing
    assert fed and type(fed[0]).__name__ == "Interrupted"
    pump(tk, lambda: len(drawn) == 3)
    screen.once_drawn(lambda: sent.append("ack 3"))
    screen._refresh()
    assert sent == ["ack 1"]


def test_a_pass_run_for_a_ready_socket_leaves_no_timer_of_the_last_pass_behind(tk):
    """(left armed, a stopped loop's after fired inside the exit dialog's own loop, and the
    window ended in a traceback: a reviewer's)"""
    reactor = Reactor(RealClock())
    loop = TkLoop(tk, reactor, lambda: None)
    reactor.call_later(30.0, lambda: None)      # (a heartbeat's, say: an after armed for it)
    loop.start()
    pump(tk, lambda: loop._after_id is not None)
    armed = loop._after_id
    loop._ready(None, None)                     # (the descriptor was readable)
    assert armed not in tk.tk.call("after", "info")
    loop.stop()
    assert loop._after_id is None or loop._after_id not in tk.tk.call("after", "info")


def test_a_window_whose_client_fails_says_why_before_it_closes(tk):
    """(a reviewer's window at a port that speaks TLS vanished, the reason on a standard error
    nobody saw)"""
    screen = TkScreen(tk)
    told, stopped = [], []
    screen.tell_exit = lambda title, text, parent: told.append(text)
    screen.loop = types.SimpleNamespace(stop=lambda: stopped.append(True))
    screen.root = types.SimpleNamespace(destroy=lambda: None)
    screen.glue = types.SimpleNamespace(exit_code=1, exit_reason="this port speaks TLS")
    screen._after_pass()
    screen._after_pass()                    # (a pass more, in the dialog's loop: nothing more)
    assert told == ["This port speaks TLS"] and stopped == [True]
    quiet = TkScreen(tk)
    quiet.tell_exit = lambda title, text, parent: told.append(text)
    quiet.loop = types.SimpleNamespace(stop=lambda: None)
    quiet.root = types.SimpleNamespace(destroy=lambda: None)
    quiet.glue = types.SimpleNamespace(exit_code=0, exit_reason="")
    quiet._after_pass()                     # an ordinary end says nothing
    assert told == ["This port speaks TLS"]
    unsent = TkScreen(tk)                   # an end with messages not sent says so, status 0
    unsent.tell_exit = lambda title, text, parent: told.append(text)
    unsent.loop = types.SimpleNamespace(stop=lambda: None)
    unsent.root = types.SimpleNamespace(destroy=lambda: None)
    unsent.glue = types.SimpleNamespace(exit_code=0, exit_reason="1 message was not sent")
    unsent.left_behind = ["Not sent (you did not log in again as columbia): message seas hi"]
    unsent._after_pass()
    # (named: a trial's box said only the count, the message itself on a standard error)
    assert told[-1] == ("1 message was not sent\n\n"
                        "Not sent (you did not log in again as columbia): message seas hi")
    drafted = TkScreen(tk)                  # a close with a line typed, never sent, says it
    drafted.tell_exit = lambda title, text, parent: told.append(text)
    drafted.loop = types.SimpleNamespace(stop=lambda: None)
    drafted.root = types.SimpleNamespace(destroy=lambda: None)
    drafted.glue = types.SimpleNamespace(exit_code=0, exit_reason="")
    drafted.draft = "half typed"            # (ChatWindow._close_now's, from the input)
    drafted._after_pass()
    assert told[-1] == "What you typed was not sent (Enter was not pressed):\n\nhalf typed"


def test_perhaps_not_sent_is_not_struck_through_as_a_refused_message_is():
    """(a trial's peer showed a message the window had struck through, "perhaps not sent":
    read as refused, it invites a second sending, shown twice)"""
    import gui_tk
    from client_events import Fate
    text_look, mark_look = gui_tk._OWN_LOOKS[Fate.UNSURE]
    assert not gui_tk._LOOKS[text_look].get("overstrike")
    assert gui_tk._LOOKS[gui_tk._OWN_LOOKS[Fate.REFUSED][0]]["overstrike"]
    assert mark_look != gui_tk._OWN_LOOKS[Fate.REFUSED][1]


def test_a_restart_ending_the_session_a_close_waited_on_keeps_the_window_for_a_login(
        windows, tmp_path):
    """(a trial's window, closed as its message waited for a stopped server, closed by itself
    once the restarted server had ended the session: the message, promised to go at the next
    login, was never sent)"""
    data = tmp_path / "restarted"
    data.mkdir()
    proc, port = start_server(data, 0)
    alice = windows(port=port)
    try:
        login(alice, "columbia")
        proc.terminate()
        proc.wait(WAIT_S)
        alice.type_into(".chat.bottom.input", "/message seas pending while down")
        alice.press_enter(".chat.bottom.input")
        alice.wait(pane_has(alice, "pending while down  … waiting"), "the message waiting")
        alice.close_window()
        alice.wait(lambda: alice.exists(".leave"), "the question before closing")
        proc, _ = start_server(data, port)
        # the session is over: the window stays, its form asking for the login the message
        # waits for, the question gone
        alice.wait(lambda: alice.call("winfo", "ismapped", ".login") == "1", "the login form")
        alice.wait(lambda: not alice.exists(".leave"), "the question gone")
        alice.wait(lambda: "waiting for your next login" in alice.label(".status"),
                   "what waits, said")
        # and the close put off, said (a trial's wondered)
        alice.wait(lambda: "The window stayed open" in alice.label(".login.notice"),
                   "the close put off, said")
        assert alice.proc.poll() is None and alice.call("wm", "state", ".") == "normal"
        login(alice, "columbia")
        alice.wait(pane_has(alice, "pending while down  ✓"), "the message sent after all")
        alice.close_window()
        assert alice.wait_exit() == 0
    finally:
        proc.terminate()
        proc.wait(WAIT_S)


def test_a_login_with_more_kept_messages_than_fit_shows_the_newest(windows, server):
    """(a trial's window, logged in to 444 kept messages, showed the oldest, and what came
    after them out of sight; one's own message, sent while scrolled up, was out of sight too)"""
    token = token_of(server.port, "seas", ACCOUNTS["seas"])
    for start in range(0, 80, 20):
        exchange(server.port, [{"type": "message", "token": token, "to": "columbia",
                                "text": f"kept {n}"} for n in range(start, start + 20)])
    alice = windows()
    login(alice, "columbia")
    alice.wait(pane_has(alice, "kept 79"), "the kept messages")
    alice.settle()
    assert float(alice.call(".chat.pane", "yview").split()[1]) == 1.0
    # made smaller, the pane keeps its end in view, and shows what comes next (a trial's,
    # shrunk, kept its top line and followed nothing until Ctrl+End)
    alice.call("wm", "geometry", ".", "640x440")
    alice.settle()
    exchange(server.port, [{"type": "message", "token": token, "to": "columbia",
                            "text": "after the shrink"}])
    alice.wait(pane_has(alice, "after the shrink"), "a message after the shrink")
    alice.settle()
    assert float(alice.call(".chat.pane", "yview").split()[1]) == 1.0
    alice.call(".chat.pane", "yview", "moveto", "0")             # scrolled up to read
    alice.settle()
    assert float(alice.call(".chat.pane", "yview").split()[1]) < 1.0
    alice.type_into(".chat.bottom.input", "/broadcast my own")
    alice.press_enter(".chat.bottom.input")
    alice.wait(pane_has(alice, "my own"), "one's own line")
    alice.settle()
    assert float(alice.call(".chat.pane", "yview").split()[1]) == 1.0
    # read from the keyboard, the input keeping the focus (a trial's could not scroll it)
    alice.press_key(".chat.bottom.input", "<Prior>")
    alice.settle()
    assert float(alice.call(".chat.pane", "yview").split()[1]) < 1.0
    alice.press_key(".chat.bottom.input", "<Control-End>")
    alice.settle()
    assert float(alice.call(".chat.pane", "yview").split()[1]) == 1.0
    # a button's answer is shown too (a trial's came out of sight)
    alice.call(".chat.pane", "yview", "moveto", "0")
    alice.call(".chat.bottom.input", "insert", "0", "a draft")
    alice.invoke(".chat.side.unblock")
    alice.wait(pane_has(alice, "To unblock someone"), "the button's answer")
    alice.settle()
    assert float(alice.call(".chat.pane", "yview").split()[1]) == 1.0
    alice.call(".chat.bottom.input", "delete", "0", "end")     # (a draft's box would wait)
    alice.close_window()
    assert alice.wait_exit() == 0
