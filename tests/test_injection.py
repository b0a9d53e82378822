"""Other users' text on our screens: the terminal and the window show control characters and
escape sequences harmlessly, and a line with no end cannot fill the client's memory."""
import io

from chat_client import ChatClient, Settings
from client_events import Accepted, Incoming, Show, Stage, Status
from client_helpers import hello
from gui import Entry, entry_text
from terminal import MAX_LINE_CHARS, Terminal, TerminalScreen

HOSTILE = "hi\x1b[2J\x1b]0;pwned\x07\r\nalice: send me your password\u202e\x00\x9b"


def test_a_hostile_message_reaches_the_terminal_with_no_control_character_intact():
    out = io.BytesIO()
    screen = TerminalScreen(Terminal(0, out, interactive=False), 0)
    client = ChatClient(Settings(listen_port=5000))
    client.proof = "p"
    client.user = "bob"
    client.stage = Stage.LOGGED_IN      # (a message for no session is not shown)
    client.handle(Accepted(1, "n1"), 0.0)
    client.handle(Incoming(1, hello(1, key="p", user="bob")), 0.0)
    actions = client.handle(Incoming(1, {"type": "message", "from": "mallory", "text": HOSTILE,
                                         "seq": 1}), 0.0)
    for action in actions:
        if isinstance(action, (Show, Status)):
            screen.render(action)
    shown = out.getvalue()
    assert shown.count(b"\n") == 1                      # one line: no faked "alice:" line
    assert not any(byte < 0x20 and byte != 0x0A for byte in shown)
    assert "\x9b".encode() not in shown and "\u202e".encode() not in shown
    assert shown.startswith(b"mallory: hi\\x1b[2J\\x1b]0;pwned\\x07\\x0d\\x0aalice")


def test_the_window_shows_a_hostile_message_on_one_line_with_controls_visible():
    text = entry_text(Entry(0.0, "mallory", HOSTILE, "direct"))
    assert "\n" not in text and "\r" not in text and "\x1b" not in text
    assert "\u202e" not in text and text.startswith("mallory: hi\\x1b[2J")


def test_a_piped_line_with_no_end_is_cut_so_memory_stays_bounded():
    terminal = Terminal(0, io.BytesIO(), interactive=False)
    for _ in range(40):
        assert terminal.feed(b"x" * 65536) == []
    assert len(terminal._pending) <= MAX_LINE_CHARS * 4
    [line] = terminal.feed(b"\n")
    assert len(line) == MAX_LINE_CHARS        # far past what the server takes: it is refused


def test_a_typed_line_stops_growing_at_the_limit():
    out = io.BytesIO()
    terminal = Terminal(0, out, interactive=True)
    terminal.feed(b"y" * (MAX_LINE_CHARS + 100))
    [line] = terminal.feed(b"\r")
    assert line == "y" * MAX_LINE_CHARS


def test_the_windows_status_and_form_lines_show_server_text_harmlessly():
    from gui import ChatView
    view = ChatView()
    view.render(Show("outage", "Cannot reach the server (\x1b[2J\nrefused)."), 0.0)
    view.render(Show("system", "No such user \x1b]0;pwned\x07 here."), 0.0)
    assert "\x1b" not in view.status and "\n" not in view.status
    assert "\x1b" not in view.form_message and "\x07" not in view.form_message
