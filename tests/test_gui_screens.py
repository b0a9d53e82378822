"""The window on screens of two sizes (1280x800 and 800x600, on Xvfb): it fits, nothing in it is
cut off, and it has a title. Screenshots of the login form and of a conversation go to
tests/artifacts/ (login-1280x800.png, chat-800x600.png, ...) for a person to look at.
"""
import os

import pytest

from guiprocs import GuiProcess, NoDisplay, login, screenshot
from realprocs import ROOT, PtyClient, login as terminal_login

tkinter = pytest.importorskip("tkinter", reason="this Python has no tkinter, so no window")

ARTIFACTS = os.path.join(ROOT, "tests", "artifacts")
SIZES = [(1280, 800), (800, 600)]
LOGIN_WIDGETS = [".login.heading", ".login.prompt", ".login.username", ".login.password",
                 ".login.submit", ".login.message", ".status"]
CHAT_WIDGETS = [".chat.pane", ".chat.side.users", ".chat.side.userscroll", ".chat.side.message",
                ".chat.side.private", ".chat.side.getaddress", ".chat.side.block",
                ".chat.side.unblock", ".chat.side.hint", ".chat.side.everyone", ".chat.side.logout",
                ".chat.bottom.target", ".chat.bottom.input", ".chat.bottom.send", ".status"]
# what gives or takes room as the hint grows: the buttons stay where they are
LIST_AND_HINT = (".chat.side.users", ".chat.side.userscroll", ".chat.side.hint")


@pytest.fixture(params=SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
def screen(request, screens):
    """A virtual display of one size, and a Tk of the test's on it (to drive the window)."""
    try:
        return screens.get(request.param)
    except NoDisplay as why:
        pytest.skip(f"no display can be had: {why}")


def box(gui, path):
    """A widget's (left, top, right, bottom) on the screen, in pixels."""
    left, top = int(gui.call("winfo", "rootx", path)), int(gui.call("winfo", "rooty", path))
    return (left, top, left + int(gui.call("winfo", "width", path)),
            top + int(gui.call("winfo", "height", path)))


def assert_fits(gui, size, paths):
    """The window lies on the screen, and each widget is shown whole inside it: mapped, inside
    the window, and given at least the room it asks for (less would cut its text off)."""
    gui.settle()
    window = box(gui, ".")
    assert window[0] >= 0 and window[1] >= 0, window
    assert window[2] <= size[0] and window[3] <= size[1], f"{window} is off a {size} screen"
    for path in paths:
        assert gui.call("winfo", "ismapped", path) == "1", f"{path} is not shown"
        left, top, right, bottom = box(gui, path)
        assert (window[0] <= left and right <= window[2] and window[1] <= top
                and bottom <= window[3]), f"{path} at {(left, top, right, bottom)} is outside " \
                                          f"the window {window}"
        for axis in ("width", "height"):
            given = int(gui.call("winfo", axis, path))
            asked = int(gui.call("winfo", "req" + axis, path))
            assert given >= asked, f"{path} is {given} px {axis}, cut from {asked}"


def shoot(gui, display, name):
    gui.settle()
    os.makedirs(ARTIFACTS, exist_ok=True)
    size = display.size
    assert screenshot(display.frame_buffer,
                      os.path.join(ARTIFACTS, f"{name}-{size[0]}x{size[1]}.png")) == size


def test_the_window_fits_the_screen_with_a_title_and_nothing_cut_off(screen, server, tmp_path):
    display, tk = screen
    gui = GuiProcess(tk, display, server.port, tmp_path / "gui.err")
    seas = PtyClient(server.port)
    try:
        assert gui.call("wm", "title", ".") == "Chat room"
        gui.type_into(".login.username", "columbia")
        gui.type_into(".login.password", "not the password")
        gui.invoke(".login.submit")
        gui.wait(lambda: "Wrong password" in gui.label(".login.message"), "the wrong password")
        assert_fits(gui, display.size, LOGIN_WIDGETS)
        shoot(gui, display, "login")

        login(gui, "columbia")
        assert gui.call("wm", "title", ".") == "Chat room: columbia"
        terminal_login(seas, "seas")
        gui.wait(lambda: gui.list_items(".chat.side.users") == ["seas"], "seas in the list")
        seas.type("message columbia " + "a long message that wraps " * 8)
        seas.type("broadcast lunch at noon?")
        gui.wait(lambda: "lunch at noon?" in gui.text(".chat.pane"), "the broadcast")
        gui.settle()
        buttons = [box(gui, path) for path in CHAT_WIDGETS if path.startswith(".chat.side.")
                   and path not in LIST_AND_HINT]
        gui.select_item(".chat.side.users", "seas")
        gui.settle()                # the hint grows to two lines: no button moves
        assert [box(gui, path) for path in CHAT_WIDGETS if path.startswith(".chat.side.")
                and path not in LIST_AND_HINT] == buttons
        for n in range(40):                  # more than the pane shows
            seas.type(f"broadcast line {n}")
        gui.wait(lambda: "line 39" in gui.text(".chat.pane"), "the lines")
        gui.call(".chat.pane", "yview", "moveto", "0")      # scrolled up, reading
        seas.type("broadcast one more")
        gui.wait(lambda: "one more" in gui.text(".chat.pane"), "one more")
        gui.settle()                # left where the reader is (a trial's jumped to the end)
        assert float(gui.call(".chat.pane", "yview").split()[0]) == 0.0
        gui.call(".chat.pane", "yview", "moveto", "1")
        seas.type("broadcast and the last")
        gui.wait(lambda: "and the last" in gui.text(".chat.pane"), "the last")
        gui.settle()                # at the end, it follows
        assert float(gui.call(".chat.pane", "yview").split()[1]) == 1.0
        gui.invoke(".chat.side.message")
        gui.type_into(".chat.bottom.input", "see you there")
        gui.press_enter(".chat.bottom.input")
        gui.wait(lambda: "see you there  ✓" in gui.text(".chat.pane"), "the message taken")
        gui.invoke(".chat.side.getaddress")
        seas.expect("Do you agree to have a private talk with columbia?")
        seas.type("Y columbia")
        gui.wait(lambda: gui.call(".chat.side.private", "instate", "disabled") == "0",
                 "seas's consent")
        assert_fits(gui, display.size, CHAT_WIDGETS)
        shoot(gui, display, "chat")

        seas.type("getaddress columbia")
        gui.wait(lambda: gui.exists(".consent"), "the consent dialog")
        gui.settle()
        dialog = box(gui, ".consent")
        assert dialog[2] <= display.size[0] and dialog[3] <= display.size[1], dialog
        shoot(gui, display, "consent")
        gui.press(".consent.buttons.refuse")
        gui.close_window()
        assert gui.wait_exit() == 0
    finally:
        gui.kill()
        seas.kill()
