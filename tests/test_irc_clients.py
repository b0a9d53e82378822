"""End to end over IRC: the real server, real IRC clients from Debian's packages (WeeChat
headless, irssi in tmux) and real `client.py` users in pseudo-terminals, on 127.0.0.1.

How each client is driven and watched is in ircprocs.py: WeeChat through its fifo, read back
from its logger's files; irssi typed at with tmux send-keys, read with capture-pane. A test
whose client is missing skips and says which package would bring it (`make test` installs them
when it runs as root with apt-get: tests/setup_irc_clients.sh). The lockout test needs no IRC
client: it speaks IRC over a socket itself.
"""
import re
import time

import pytest

from ircprocs import (IrssiInTmux, RawIrc, WeeChat, missing_irssi, missing_weechat, poll,
                      sasl_plain)
from realprocs import ServerProcess, login

KEPT = "columbia is offline; your message will be delivered when they log in."


@pytest.fixture
def server(tmp_path, request):
    """The real server with an IRC port too (overrides conftest's, so `clients` use it);
    a test may pass more options: parametrize("server", [(options...)], indirect=True)."""
    proc = ServerProcess(tmp_path, "--irc-port", "0", *getattr(request, "param", ()))
    proc.irc_port = int(proc.wait_log(r"IRC clients on [\d.]+:(\d+)").group(1))
    yield proc
    assert proc.stop() == 0, proc.log()


def _starting(tmp_path, missing, make, end):
    """A fixture's body: start(name, port, nick, password) makes a client with its home in
    tmp_path/name (skipped, saying why, if the program is missing); `end` ends each after."""
    if missing:
        pytest.skip(missing)
    started = []

    def start(name, port, nick, password):
        client = make(tmp_path / name, port, nick, password)
        started.append(client)
        return client
    yield start
    for client in started:
        end(client)


@pytest.fixture
def weechats(tmp_path):
    """weechats(name, port, nick, password) starts WeeChat in tmp_path/name (the same name
    again: the same home, configured already); all are ended at the end."""
    yield from _starting(tmp_path, missing_weechat(), WeeChat, WeeChat.kill)


@pytest.fixture
def irssis(tmp_path):
    """irssis(name, port, nick, password) starts irssi in a tmux of its own; all end at the end."""
    yield from _starting(tmp_path, missing_irssi(), IrssiInTmux, IrssiInTmux.stop)


def said(nick, text):
    """A line of WeeChat's log in which `nick` said `text` (its fields are tab-separated)."""
    return rf"^[\d-]+ [\d:]+\t{re.escape(nick)}\t{re.escape(text)}$"


def kept_said(nick, text):
    """The line of a message kept while WeeChat was away: it says when it was sent."""
    return rf"^[\d-]+ [\d:]+\t{re.escape(nick)}\t\[sent [\d-]+ [\d:]+ UTC\] {re.escape(text)}$"


# -- WeeChat ------------------------------------------------------------------------------------

def test_weechat_logs_in_by_sasl_and_talks_with_client_py_users(weechats, server, clients):
    seas, google = clients(), clients()
    login(seas, "seas")
    login(google, "google")
    weechat = weechats("weechat", server.irc_port, "columbia", "116bway")
    weechat.wait_joined()
    weechat.wait_log("irc.server.chat", r"SASL authentication successful")
    server.wait_log(r"columbia logged in from 127\.0\.0\.1 by IRC")
    weechat.wait_log("irc.chat.#chat", r"Channel #chat: 3 nicks")      # seas, google and itself
    seas.expect("columbia has logged in.")

    seas.type("message columbia hello")                 # a client.py user to WeeChat
    weechat.wait_log("irc.chat.seas", said("seas", "hello"))
    weechat.wait_log("core.weechat", r"sent PONG :ack-\d+")           # ... which acknowledged it

    weechat.say("seas", "hi back")                      # WeeChat to a client.py user
    seas.expect("columbia: hi back")

    weechat.command("hello room", "irc.chat.#chat")     # said in #chat: a broadcast
    seas.expect("columbia (to everyone): hello room")
    google.expect("columbia (to everyone): hello room")
    google.type("broadcast hi all")                     # and a broadcast reaches #chat
    weechat.wait_log("irc.chat.#chat", said("google", "hi all"))

    weechat.command("/ctcp seas version", "irc.server.chat")    # CTCP is not passed on
    weechat.wait_log("irc.server.chat", r"CTCP VERSION is not passed on here")
    weechat.say("seas", "after the ctcp")
    assert "VERSION" not in seas.expect("columbia: after the ctcp")

    weechat.command("/buffer close", "irc.chat.#chat")  # parts: the room is joined again
    weechat.wait_log("irc.server.chat", r"QUIT to leave it")
    google.type("broadcast after the close")            # (dropped by WeeChat, acknowledged)
    weechat.wait_log("irc.chat.#chat", said("google", "after the close"))

    assert weechat.quit() == 0
    seas.expect("columbia has logged out (WeeChat ")    # its quit message: its version
    server.wait_log(r"columbia logged out")


def test_weechat_gets_a_message_kept_while_it_was_away_exactly_once(weechats, server, clients):
    seas = clients()
    login(seas, "seas")
    seas.type("message columbia kept for you")
    seas.expect(KEPT)

    weechat = weechats("weechat", server.irc_port, "columbia", "116bway")
    weechat.wait_log("irc.chat.seas", kept_said("seas", "kept for you"))
    # its PONG to the server's PING after the delivery is the acknowledgement: wait for it,
    # or quitting first would rightly have the message delivered again
    weechat.wait_log("core.weechat", r"sent PONG :ack-\d+")
    assert weechat.quit() == 0
    seas.expect("columbia has logged out (WeeChat ")    # its quit message: its version

    again = weechats("weechat", server.irc_port, "columbia", "116bway")    # the same home
    again.wait_joined(count=2)
    seas.expect("columbia has logged in.")
    seas.type("message columbia and now this")          # after anything kept, in order
    again.wait_log("irc.chat.seas", said("seas", "and now this"))
    assert len(re.findall(kept_said("seas", "kept for you"), again.log("irc.chat.seas"),
                          re.MULTILINE)) == 1
    assert again.quit() == 0


# -- irssi --------------------------------------------------------------------------------------

def goto_the_room(irssi):
    """irssi asked for no room (-c): it is put in it JOIN_WAIT_S after its login, a window of
    its own, which /window goto finds once it is there."""
    def in_the_room():
        irssi.type("/window goto #chat")
        return "[#chat]" in irssi.screen()
    poll(in_the_room, "irssi's window of #chat", every_s=0.5)


def test_irssi_in_tmux_gets_a_message_and_replies(irssis, server, clients):
    seas = clients()
    login(seas, "seas")
    irssi = irssis("irssi", server.irc_port, "columbia", "116bway")
    irssi.wait_screen(r"End of /MOTD command")
    server.wait_log(r"columbia logged in from 127\.0\.0\.1 by IRC")
    seas.expect("columbia has logged in.")

    irssi.type("/query seas")                           # seas's messages come to this window
    irssi.wait_screen(r"Starting query in \S+ with seas")
    seas.type("message columbia hello irssi")
    irssi.wait_screen(r"<seas> hello irssi")
    irssi.type("hi back")                               # said in the query: to seas
    irssi.wait_screen(r"<columbia> hi back")
    seas.expect("columbia: hi back")

    goto_the_room(irssi)
    seas.type("broadcast to the room")
    irssi.wait_screen(r"<.?seas> to the room")

    irssi.type("/window 1")                             # the status window
    screen = irssi.wait_screen(r"End of /MOTD command").string
    assert "Unknown MODE flag" not in screen            # its MODE columbia +i is taken
    irssi.type("/quit gone home")
    seas.expect("columbia has logged out (gone home).")     # a QUIT's words reach natives


def test_irssi_keeps_its_window_of_the_room_when_it_reconnects(irssis, server, clients):
    """irssi joins its rooms again as it reconnects; a second JOIN of the room (the server's
    own, then the answer to irssi's) made it drop its window of the room and open a new one,
    every line in it gone (a trial's)."""
    seas = clients()
    login(seas, "seas")
    irssi = irssis("irssi", server.irc_port, "columbia", "116bway")
    server.wait_log(r"columbia logged in from 127\.0\.0\.1 by IRC")
    goto_the_room(irssi)
    seas.type("broadcast said before the reconnect")
    irssi.wait_screen(r"<.?seas> said before the reconnect")
    irssi.type("/reconnect")
    server.wait_log(r"(?s)(columbia logged in from 127\.0\.0\.1 by IRC.*){2}")
    seas.type("broadcast said after it")
    screen = irssi.wait_screen(r"<.?seas> said after it").string
    assert "said before the reconnect" in screen        # the same window, its lines kept
    assert "[#chat]" in screen


# -- one lockout, whichever protocol ------------------------------------------------------------

BLOCK_S = 3


@pytest.mark.parametrize("server", [("--block-time", str(BLOCK_S))], indirect=True)
def test_wrong_passwords_over_irc_and_the_native_port_make_one_lockout(server, clients):
    native = clients()                  # at the password prompt before anything is locked
    native.expect("Please enter username:")
    native.type("columbia")
    native.expect("Please enter password:")

    by_pass = RawIrc(server.irc_port, source="127.0.0.2")     # 1: IRC, PASS
    by_pass.send("PASS nope", "NICK columbia", "USER u 0 * :u")
    by_pass.expect(r"^:\S+ 464 columbia :Wrong password \(2 more and the name is blocked")
    assert by_pass.closed()
    by_sasl = RawIrc(server.irc_port, source="127.0.0.3")     # 2: IRC, SASL PLAIN
    by_sasl.send("CAP LS 302", "NICK columbia", "USER u 0 * :u", "CAP REQ :sasl")
    by_sasl.expect(r"CAP \S+ ACK :?sasl")
    by_sasl.send("AUTHENTICATE PLAIN")
    by_sasl.expect(r"^AUTHENTICATE \+$")
    by_sasl.send(f"AUTHENTICATE {sasl_plain('columbia', 'nope')}")
    by_sasl.expect(r"^:\S+ 904 columbia :SASL authentication failed: Wrong password \(1 more and the name is blocked")
    native.type("wrong too")                                    # 3: the native port
    native.expect(f"You have entered wrong password three times. You will be blocked for "
                  f"{BLOCK_S} seconds.")
    locked_at = time.monotonic()

    # the right password is refused now, by either port, from any address
    by_sasl.send("AUTHENTICATE PLAIN")
    by_sasl.expect(r"^AUTHENTICATE \+$")
    by_sasl.send(f"AUTHENTICATE {sasl_plain('columbia', '116bway')}")
    by_sasl.expect(r"^:\S+ 904 columbia :SASL authentication failed: This name is blocked")
    native.expect("Please enter username:")
    native.type("columbia")
    native.expect("Please enter password:")
    native.type("116bway")
    native.expect("You are still blocked, please try again later")
    assert time.monotonic() - locked_at < BLOCK_S, "too slow to see the lock: raise BLOCK_S"

    # ... and taken once the block time is over (each try from an address of its own: an
    # address's failed logins are limited too)
    sources = iter(range(10, 250))

    def logged_in():
        irc = RawIrc(server.irc_port, source=f"127.0.0.{next(sources)}")
        welcomed = False
        try:
            irc.send("PASS 116bway", "NICK columbia", "USER u 0 * :u")
            welcomed = irc.expect(r"^:\S+ (001|464) columbia ").group(1) == "001"
        finally:
            if not welcomed:
                irc.close()
        return irc if welcomed else None
    welcomed = poll(logged_in, "a login after the block time", timeout_s=BLOCK_S + 10,
                    every_s=0.25)
    assert time.monotonic() - locked_at >= BLOCK_S - 0.5
    welcomed.send("QUIT")
    assert welcomed.closed()
    for irc in (by_pass, by_sasl, welcomed):
        irc.close()


def test_weechat_and_irssi_wrong_passwords_count_toward_the_same_lockout(weechats, irssis, server,
                                                                          clients):
    port = server.irc_port
    weechat = weechats("weechat", port, "columbia", "nope")             # 1: SASL PLAIN
    weechat.wait_log("irc.server.chat", r"SASL authentication failed: Wrong password "
                                        r"\(2 more and the name is blocked")
    irssi = irssis("irssi", port, "columbia", "nope")                   # 2: PASS
    irssi.wait_screen(r"Wrong password \(1 more and the name is blocked")
    native = clients()                                                  # 3: the native port
    native.expect("Please enter username:")
    native.type("columbia")
    native.expect("Please enter password:")
    native.type("nope")
    native.expect("You have entered wrong password three times. You will be blocked for 30 "
                  "seconds.")

    weechat.command("/set irc.server.chat.sasl_password 116bway")       # right, but blocked
    weechat.command("/connect chat")
    weechat.wait_log("irc.server.chat", r"SASL authentication failed: This name is blocked")
    irssi.type(f"/connect 127.0.0.1 {port} 116bway columbia")
    irssi.wait_screen(r"This name is blocked for a while after wrong passwords")
    native.expect("Please enter username:")
    native.type("columbia")
    native.expect("Please enter password:")
    native.type("116bway")
    native.expect("You are still blocked, please try again later")
    assert "logged in" not in server.log()
