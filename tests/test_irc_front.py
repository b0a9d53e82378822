"""IRC clients and native clients in one room: the real core, store, native glue and IRC front
end (irc_glue) on a real reactor under a virtual clock, over loopback sockets; at the end, a
seeded fuzzer of IRC lines. Each IRC client
here is a raw socket that writes down every line it gets (and answers PING as IRC clients do);
each native client is a staying connection speaking JSON, as client.py --stay-connected does."""
import base64
import dataclasses
import os
import pathlib
import random
import ssl
import types

import pytest

import protocol
from chat_server import ChatServer, Settings
from irc_glue import IDLE_S, LINES_PER_READ, PING_AFTER_S, REGISTER_S, IrcFront
from irc_session import ACK_PING_GAP_S
from irc_wire import parse
from passwords import OPEN, load_credentials
from reactor import FRAME_TIME_S, Handler, Reactor
from timers import VirtualClock
from replay import counting_secrets
from reactor_helpers import Recorder, pump
from server_glue import TLS_AT_PLAIN, ServerGlue
from storage import Store

CREDENTIALS = pathlib.Path(__file__).resolve().parent.parent / "credential.txt"
PASSWORDS = dict(columbia="116bway", seas="summerisover", foobar="passpass")


class IrcClient(Handler):
    """A raw IRC connection: every line it got, parsed; it answers PING unless `deaf`."""

    def __init__(self, reactor, port, deaf=False):
        self.messages = []
        self.closed = None
        self.deaf = deaf
        self.conn = reactor.connect("127.0.0.1", port, self)

    def on_frame(self, conn, line):
        message = parse(line)
        self.messages.append(message)
        if message.command == "PING" and not self.deaf:
            self.send("PONG :" + message.params[-1])

    def on_closed(self, conn, reason):
        self.closed = reason

    def send(self, *lines):
        for text in lines:
            self.conn.send(text.encode() + b"\r\n" if isinstance(text, str) else text)

    def of(self, command):
        return [m for m in self.messages if m.command == command]

    def texts(self, command="PRIVMSG"):
        return [(m.source.split("!")[0], m.params[0], m.params[-1]) for m in self.of(command)]


class NativeClient(Handler):
    """A staying native connection; it acknowledges what it is given."""

    def __init__(self, reactor, port):
        self.frames = []
        self.closed = None
        self.conn = reactor.connect("127.0.0.1", port, self)
        self.token = None
        self.next_id = 100

    def on_frame(self, conn, line):
        frame = protocol.decode(line)
        self.frames.append(frame)
        if "seq" in frame and "id" not in frame:
            self.send({"type": "ack", "seq": frame["seq"]})

    def on_closed(self, conn, reason):
        self.closed = reason

    def send(self, frame):
        self.conn.send(protocol.encode(frame))

    def request(self, kind, **fields):
        self.next_id += 1
        self.send({"type": kind, "token": self.token, "id": self.next_id, **fields})
        return self.next_id

    def of(self, kind):
        return [f for f in self.frames if f["type"] == kind and "id" not in f]

    def reply(self, request_id):
        return [f for f in self.frames if f.get("id") == request_id]


@pytest.fixture
def world():
    yield from a_world(Settings())


def a_world(settings):
    clock = VirtualClock()
    log = []            # the glue's and the reactor's (an exception in a callback) in one
    reactor = Reactor(clock, log=log.append)
    store = Store(":memory:", clock)
    credentials = load_credentials(CREDENTIALS)
    credentials["guest"] = OPEN         # an open account: no password needed
    core = ChatServer(credentials, store, settings, make_secret=counting_secrets())
    glue = ServerGlue(reactor, core, store, log.append)
    native = glue.listen("127.0.0.1", 0)
    front = IrcFront(glue, credentials, "chat.test", "#chat", settings)
    irc = reactor.listen("127.0.0.1", 0, front)
    w = types.SimpleNamespace(clock=clock, reactor=reactor, store=store, core=core, glue=glue,
                              log=log, port=native.port, irc_port=irc.port, front=front)
    yield w
    reactor.close_all()
    native.close()
    irc.close()


def settle(w, until):
    pump(w.reactor, until)


def settle_in_time(w, until):
    """settle, the clock moving on between passes: an ack PING held back (for its gap, or
    while the client is heard from) goes when its time comes."""
    pump(w.reactor, until, between=lambda: w.clock.advance(0.5))


def irc_login(w, nick, password=None, deaf=False, caps=()):
    """Logged in, and in the room: its JOIN sent at once, as a client's autojoin does."""
    client = IrcClient(w.reactor, w.irc_port, deaf=deaf)
    if caps:
        client.send("CAP LS 302", "CAP REQ :" + " ".join(caps), "CAP END")
    client.send(f"PASS {password or PASSWORDS[nick]}", f"NICK {nick}", f"USER {nick} 0 * :{nick}",
                "JOIN #chat")
    settle(w, lambda: client.of("366") or client.closed)
    return client


def sasl_login(w, nick, password=None, caps=("sasl",)):
    client = IrcClient(w.reactor, w.irc_port)
    client.send("CAP LS 302", f"NICK {nick}", "USER u 0 * :u", "CAP REQ :" + " ".join(caps),
                "AUTHENTICATE PLAIN")
    settle(w, lambda: client.of("AUTHENTICATE"))
    blob = base64.b64encode(f"\0{nick}\0{password or PASSWORDS[nick]}".encode()).decode()
    client.send(f"AUTHENTICATE {blob}")
    settle(w, lambda: client.of("903") or client.of("904"))
    return client


def native_login(w, user):
    client = NativeClient(w.reactor, w.port)
    client.send({"type": "login", "user": user, "password": PASSWORDS[user], "stay": True,
                 "id": 1})
    settle(w, lambda: client.reply(1))
    client.token = client.reply(1)[0].get("token")
    return client


# -- logging in ---------------------------------------------------------------------------------

def test_pass_nick_user_log_in_and_the_room_is_joined_with_everyone_in_it(world):
    seas = native_login(world, "seas")
    columbia = irc_login(world, "columbia")
    commands = [m.command for m in columbia.messages]
    assert commands[:5] == ["001", "002", "003", "004", "005"]
    # its mode, as every user's, told before the room
    assert commands.index("376") < commands.index("MODE") < commands.index("JOIN")
    assert columbia.of("MODE")[0].params == ("columbia", "+i")
    assert commands.index("376") < commands.index("JOIN") < commands.index("353")
    assert columbia.of("JOIN")[0].params == ("#chat",)
    assert columbia.of("353")[0].params[-1].split() == ["columbia", "seas"]
    settle(world, lambda: seas.of("presence"))
    assert seas.of("presence")[0]["user"] == "columbia"
    # the log says which port each came by
    logins = [line for line in world.log if " logged in from " in line]
    assert logins == ["seas logged in from 127.0.0.1, staying connected",
                      "columbia logged in from 127.0.0.1 by IRC"]


def test_a_nick_in_another_case_logs_in_as_the_account(world):
    client = irc_login(world, "Columbia", password="116bway")
    assert client.of("001")[0].params[0] == "columbia"


def test_no_password_is_refused_before_any_attempt_counts(world):
    client = IrcClient(world.reactor, world.irc_port)
    client.send("NICK columbia", "USER c 0 * :c")
    settle(world, lambda: client.closed)
    assert client.of("464") and client.of("ERROR") and not client.of("001")
    assert "columbia" not in world.store._lockouts


def test_an_open_account_logs_in_with_no_password(world):
    client = IrcClient(world.reactor, world.irc_port)
    client.send("NICK guest", "USER g 0 * :g")
    settle_in_time(world, lambda: client.of("366") or client.closed)
    assert client.of("001")[0].params[0] == "guest"


def test_wrong_passwords_on_either_port_count_toward_one_lockout(world):
    for _ in range(2):
        bad = irc_login(world, "columbia", password="wrong")
        settle(world, lambda: bad.closed)
        assert "more and the name is blocked" in bad.of("464")[0].params[-1]
    native = NativeClient(world.reactor, world.port)
    native.send({"type": "login", "user": "columbia", "password": "wrong", "stay": True, "id": 1})
    settle(world, lambda: native.reply(1))
    assert native.reply(1)[0]["code"] == "too_many_attempts"
    locked = irc_login(world, "columbia")           # the right password, but blocked
    settle(world, lambda: locked.closed)
    assert "blocked" in locked.of("464")[0].params[-1]
    world.clock.advance(30.0)
    assert irc_login(world, "columbia").of("001")


def test_sasl_plain_logs_in_before_registration_ends(world):
    client = sasl_login(world, "columbia")
    assert client.of("900") and client.of("903") and not client.of("001")
    client.send("CAP END")
    settle_in_time(world, lambda: client.of("366"))
    assert client.of("001")[0].params[0] == "columbia"


@pytest.mark.parametrize("user_first", [True, False])
def test_a_sasl_login_has_one_mask_in_its_join_and_every_line_after(world, user_first):
    """(USER before AUTHENTICATE, as irssi and WeeChat send it, or after, as irctest does: the
    JOIN the others saw at the login said nick!nick@chat, and every line after ~user)"""
    seas = irc_login(world, "seas")
    client = IrcClient(world.reactor, world.irc_port)
    client.send("CAP REQ :sasl", *(["NICK columbia", "USER cu 0 * :C"] if user_first else []),
                "AUTHENTICATE PLAIN")
    settle(world, lambda: client.of("AUTHENTICATE"))
    client.send("AUTHENTICATE " + base64.b64encode(b"\x00columbia\x00116bway").decode())
    settle(world, lambda: client.of("903"))
    client.send(*([] if user_first else ["NICK columbia", "USER cu 0 * :C"]), "CAP END",
                "PRIVMSG #chat :hello", "WHO columbia")
    settle(world, lambda: seas.of("PRIVMSG") and client.of("352"))
    mask = "columbia!~cu@chat" if user_first else "columbia!columbia@chat"
    assert [m.source for m in seas.of("JOIN")[1:]] == [mask]
    assert [m.source for m in seas.of("PRIVMSG")] == [mask]
    assert client.of("352")[0].params[2] == mask.split("!")[1].split("@")[0]
    assert client.of("001")[0].params[-1].endswith(mask)


def test_a_failed_sasl_attempt_says_904_and_may_be_tried_again(world):
    client = sasl_login(world, "columbia", password="wrong")
    assert client.of("904") and client.closed is None
    client.send("AUTHENTICATE PLAIN")
    settle(world, lambda: len(client.of("AUTHENTICATE")) == 2)
    client.send("AUTHENTICATE " + base64.b64encode(b"\x00columbia\x00116bway").decode(), "CAP END")
    settle_in_time(world, lambda: client.of("366"))
    assert client.of("903")


def test_a_pass_given_beside_a_failed_sasl_attempt_logs_in_at_cap_end(world):
    """(a trial's PASS, right, after a wrong SASL password, was said never given: 464, and
    the link closed)"""
    client = IrcClient(world.reactor, world.irc_port)
    client.send("CAP LS 302", f"PASS {PASSWORDS['columbia']}", "CAP REQ :sasl", "NICK columbia",
                "USER u 0 * :u", "AUTHENTICATE PLAIN")
    settle(world, lambda: client.of("AUTHENTICATE"))
    client.send("AUTHENTICATE " + base64.b64encode(b"\x00columbia\x00wrong").decode())
    settle(world, lambda: client.of("904"))
    client.send("CAP END")
    settle_in_time(world, lambda: client.of("001") or client.closed)
    assert client.of("001") and not client.of("464") and client.closed is None


def test_a_second_login_by_either_protocol_wins_and_the_irc_one_is_told(world):
    irc = irc_login(world, "columbia")
    native_login(world, "columbia")
    settle(world, lambda: irc.closed)
    assert "elsewhere" in irc.of("ERROR")[0].params[-1]


# -- messages both ways ----------------------------------------------------------------------------

def test_a_private_message_from_irc_reaches_a_native_user(world):
    seas = native_login(world, "seas")
    columbia = irc_login(world, "columbia")
    columbia.send("PRIVMSG seas :hello from irssi")
    settle(world, lambda: seas.of("message"))
    assert seas.of("message")[0]["from"] == "columbia"
    assert seas.of("message")[0]["text"] == "hello from irssi"


def test_a_native_message_reaches_irc_with_its_time_and_a_pong_acknowledges_it(world):
    columbia = irc_login(world, "columbia", caps=("server-time",))
    seas = native_login(world, "seas")
    seas.request("message", to="columbia", text="hi columbia")
    settle(world, lambda: columbia.texts())
    assert columbia.texts() == [("seas", "columbia", "hi columbia")]
    assert dict(columbia.of("PRIVMSG")[0].tags)["time"].startswith("2023-11-14T22:13:20")
    settle_in_time(world, lambda: world.store.count_waiting("columbia") == 0)


def test_unacknowledged_messages_come_again_at_the_next_login_and_acknowledged_ones_never(world):
    seas = native_login(world, "seas")
    deaf = irc_login(world, "columbia", deaf=True)      # reads, but never answers a PING
    seas.request("message", to="columbia", text="one")
    settle(world, lambda: deaf.texts())
    deaf.conn.close()
    settle(world, lambda: deaf.closed)
    again = irc_login(world, "columbia")
    settle(world, lambda: again.texts())
    assert again.texts() == [("seas", "columbia", "one")]
    settle_in_time(world, lambda: world.store.count_waiting("columbia") == 0)
    again.send("QUIT")
    settle(world, lambda: again.closed)
    third = irc_login(world, "columbia")
    third.send("PING sync")
    settle(world, lambda: third.of("PONG"))
    assert third.texts() == []


def test_a_message_kept_for_an_absent_irc_user_arrives_at_login_with_its_original_time(world):
    seas = native_login(world, "seas")
    request = seas.request("message", to="columbia", text="while you were out")
    settle(world, lambda: seas.reply(request))
    assert seas.reply(request)[0]["stored"] is True
    world.clock.advance(3600.0)
    plain = irc_login(world, "columbia")
    settle(world, lambda: plain.texts())
    assert plain.texts()[0][2] == "[sent 2023-11-14 22:13 UTC] while you were out"


def test_offline_messages_carry_server_time_when_the_client_takes_it(world):
    seas = native_login(world, "seas")
    seas.request("message", to="columbia", text="kept")
    settle(world, lambda: seas.reply(seas.next_id))
    world.clock.advance(3600.0)
    columbia = irc_login(world, "columbia", caps=("server-time",))
    settle(world, lambda: columbia.texts())
    message = columbia.of("PRIVMSG")[0]
    assert message.params[-1] == "[sent 2023-11-14 22:13 UTC] kept"
    assert dict(message.tags)["time"] == "2023-11-14T22:13:20.000Z"


def test_the_room_is_broadcast_both_ways(world):
    seas = native_login(world, "seas")
    columbia = irc_login(world, "columbia")
    columbia.send("PRIVMSG #chat :hello room")
    settle(world, lambda: seas.of("broadcast"))
    assert seas.of("broadcast")[0]["text"] == "hello room"
    seas.request("broadcast", text="hello irc")
    settle(world, lambda: columbia.texts())
    assert columbia.texts() == [("seas", "#chat", "hello irc")]


def test_every_irc_recipient_of_a_broadcast_gets_it_in_its_own_form(world):
    timed = irc_login(world, "columbia", caps=("server-time",))
    plain = irc_login(world, "foobar")
    seas = native_login(world, "seas")
    for n in range(3):
        seas.request("broadcast", text=f"news {n}")
    settle(world, lambda: len(timed.texts()) == 3 and len(plain.texts()) == 3)
    assert timed.texts() == plain.texts() == [("seas", "#chat", f"news {n}") for n in range(3)]
    assert all("time" in dict(m.tags) for m in timed.of("PRIVMSG"))
    assert not any(m.tags for m in plain.of("PRIVMSG"))


def test_pongs_acknowledge_as_they_come_with_several_pings_unanswered(world):
    columbia = irc_login(world, "columbia", deaf=True)
    seas = native_login(world, "seas")
    for n in range(12):             # a PING after each delivery, one per ACK_PING_GAP_S
        world.clock.advance(ACK_PING_GAP_S)
        seas.request("message", to="columbia", text=f"m{n}")
        settle(world, lambda n=n: len(columbia.texts()) == n + 1)
    settle(world, lambda: len(columbia.of("PING")) == 8)
    pings = [m.params[-1] for m in columbia.of("PING")]
    assert len(set(pings)) == 8                 # at most 8 unanswered at once
    columbia.send(f"PONG :{pings[2]}")          # the third: the first three acknowledged
    settle(world, lambda: world.store.count_waiting("columbia") == 9)
    columbia.send(f"PONG :{pings[2]}", "PONG :ack-999", "PONG :nonsense")   # nothing more
    settle_in_time(world, lambda: len(columbia.of("PING")) == 9)   # room for one covering the rest
    columbia.send(f"PONG :{columbia.of('PING')[-1].params[-1]}")
    settle(world, lambda: world.store.count_waiting("columbia") == 0)


def test_an_ack_ping_held_back_goes_when_its_gap_is_over(world):
    """One ack PING per ACK_PING_GAP_S: a client counts its PONGs against its own flood
    limit (irssi held a typed line back 2 s behind a PING per delivery, a trial's)."""
    columbia = irc_login(world, "columbia", deaf=True)
    seas = native_login(world, "seas")
    world.clock.advance(ACK_PING_GAP_S)             # (the client quiet since its login)
    seas.request("message", to="columbia", text="one")
    settle(world, lambda: len(columbia.of("PING")) == 1)
    seas.request("message", to="columbia", text="two")
    settle(world, lambda: len(columbia.texts()) == 2)
    for _ in range(20):
        world.reactor.run_once(timeout_s=0)
    assert len(columbia.of("PING")) == 1                # held back ...
    world.clock.advance(ACK_PING_GAP_S)
    settle(world, lambda: len(columbia.of("PING")) == 2)   # ... until its gap is over
    columbia.send(f"PONG :{columbia.of('PING')[-1].params[-1]}")
    settle(world, lambda: world.store.count_waiting("columbia") == 0)


def test_no_ack_ping_goes_while_the_client_is_heard_from(world):
    """A PONG takes a turn of the client's own flood limit: irssi, sent a PING every 3 s
    while its user typed, let one typed line go per PING (a trial's lines fell 15 s behind).
    While the client talks, the PING waits until it has been quiet ACK_PING_GAP_S."""
    columbia = irc_login(world, "columbia", deaf=True)
    seas = native_login(world, "seas")
    seas.request("message", to="columbia", text="first")
    settle(world, lambda: columbia.of("PING"))      # (a connection's first goes at once)
    columbia.send("PRIVMSG seas :typing")
    settle(world, lambda: seas.of("message"))
    seas.request("message", to="columbia", text="meanwhile")
    settle(world, lambda: len(columbia.texts()) == 2)
    for _ in range(20):
        world.reactor.run_once(timeout_s=0)
    assert len(columbia.of("PING")) == 1             # held: columbia spoke just now
    world.clock.advance(ACK_PING_GAP_S)
    settle(world, lambda: len(columbia.of("PING")) == 2)


def test_a_stopping_server_says_error_to_each_irc_client(world):
    """As IRC servers do; its connection only closed, WeeChat said "error 2 (connection
    closed by peer)" (a trial's)."""
    columbia, seas = irc_login(world, "columbia"), irc_login(world, "seas")
    world.front.farewell("The server is shutting down")
    settle(world, lambda: columbia.closed and seas.closed)
    for client in (columbia, seas):
        assert [m.params[-1] for m in client.of("ERROR")] == [
            "Closing link: The server is shutting down"]


def test_echo_message_shows_the_sender_its_message_once_it_is_stored(world):
    native_login(world, "seas")
    columbia = irc_login(world, "columbia", caps=("echo-message",))
    columbia.send("PRIVMSG seas :echoed")
    settle(world, lambda: columbia.texts())
    assert columbia.texts() == [("columbia", "seas", "echoed")]


def test_a_message_to_an_absent_user_is_kept_and_the_sender_told(world):
    columbia = irc_login(world, "columbia")
    columbia.send("PRIVMSG seas :see you later")
    settle(world, lambda: columbia.of("NOTICE"))
    assert "waits for their next login" in columbia.of("NOTICE")[0].params[-1]
    assert world.store.count_waiting("seas") == 1


def test_long_or_multi_line_native_text_arrives_as_safe_lines(world):
    columbia = irc_login(world, "columbia")
    seas = native_login(world, "seas")
    seas.request("message", to="columbia", text="x" * 3000 + "\r\nQUIT :gotcha")
    settle(world, lambda: "".join(text for _, _, text in columbia.texts()).endswith("gotcha"))
    pieces = [m for m in columbia.messages if m.command == "PRIVMSG"]
    assert len(pieces) == 7     # (each as full as its line may be: 8 when cut at 400 bytes)
    assert "".join(text for _, _, text in columbia.texts()).endswith("x QUIT :gotcha")


def test_unknown_users_and_other_channels_get_their_numerics(world):
    columbia = irc_login(world, "columbia")
    columbia.send("PRIVMSG nobody :hi", "JOIN #other", "PRIVMSG #other :hi")
    settle(world, lambda: columbia.of("404"))
    assert columbia.of("401")[0].params[1] == "nobody"
    assert columbia.of("403")[0].params[1] == "#other"


# -- presence, the room's members, blocking ----------------------------------------------------

def test_logins_and_logouts_are_joins_and_quits(world):
    columbia = irc_login(world, "columbia")
    seas = native_login(world, "seas")
    settle(world, lambda: columbia.of("JOIN")[1:])
    assert columbia.of("JOIN")[1].source.startswith("seas!")
    seas.request("logout")
    settle(world, lambda: columbia.of("QUIT"))
    assert columbia.of("QUIT")[0].source.startswith("seas!")


def test_names_who_whois_and_ison_list_who_is_online(world):
    native_login(world, "seas")
    columbia = irc_login(world, "columbia")
    columbia.send("NAMES #chat", "WHO #chat", "WHOIS seas", "WHOIS csee4119", "ISON seas nobody")
    settle(world, lambda: columbia.of("303"))
    assert columbia.of("353")[-1].params[-1].split() == ["columbia", "seas"]
    assert [m.params[5] for m in columbia.of("352")] == ["columbia", "seas"]
    assert columbia.of("311")[0].params[1] == "seas"
    assert columbia.of("401")[0].params[1] == "csee4119"       # an account, not online
    assert columbia.of("303")[0].params[-1] == "seas"


def test_silence_blocks_and_unblocks(world):
    columbia = irc_login(world, "columbia")
    columbia.send("SILENCE +seas")
    settle(world, lambda: columbia.of("SILENCE"))
    seas = native_login(world, "seas")
    request = seas.request("message", to="columbia", text="let me in")
    settle(world, lambda: seas.reply(request))
    assert seas.reply(request)[0]["code"] == "blocked"
    columbia.send("SILENCE -seas")
    settle(world, lambda: len(columbia.of("SILENCE")) == 2)
    assert [m.params for m in columbia.of("SILENCE")] == [("+seas",), ("-seas",)]
    assert world.store.blocks("columbia") == set()


def test_a_user_who_blocks_an_irc_user_comes_and_goes_unseen_by_them(world):
    """The native rule: presence is not told to those the user blocks."""
    columbia = irc_login(world, "columbia")
    seas = native_login(world, "seas")
    seas.request("block", user="columbia")
    seas.request("logout")
    native_login(world, "seas")
    columbia.send("PING sync")
    settle(world, lambda: columbia.of("PONG"))
    assert [m.source.split("!")[0] for m in columbia.of("JOIN") + columbia.of("QUIT")] == [
        "columbia", "seas"]         # seas's first login, before the block; then nothing


def test_a_block_between_online_users_parts_and_joins_them_in_each_others_nick_lists(world):
    """Nobody comes or goes, but the nick list must follow NAMES: a blocked user kept in it
    would stay for ever, its logout untold."""
    columbia = irc_login(world, "columbia")
    seas = native_login(world, "seas")
    settle(world, lambda: columbia.of("JOIN")[1:])
    seas.request("block", user="columbia")
    settle(world, lambda: columbia.of("PART"))
    columbia.send("SILENCE +seas", "SILENCE -seas")   # unseen both ways: no change either
    settle(world, lambda: len(columbia.of("SILENCE")) == 2)
    seas.request("unblock", user="columbia")
    settle(world, lambda: len(columbia.of("JOIN")) == 3)
    moves = [(m.command, m.source.split("!")[0], m.params[0])
             for m in columbia.messages if m.command in ("JOIN", "PART", "QUIT")]
    assert moves == [("JOIN", "columbia", "#chat"), ("JOIN", "seas", "#chat"),
                     ("PART", "seas", "#chat"), ("JOIN", "seas", "#chat")]
    assert [f["listed"] for f in seas.of("listed")] == [False, True]


def test_a_read_of_many_refused_lines_ends_the_connection_and_others_are_served(world):
    """A trial's 10 connections of "X" lines (each a 451) held everyone up: 64 refused in one
    read end the connection (irc_glue, as limits.REFUSALS_PER_READ)."""
    seas = irc_login(world, "seas")
    flooder = IrcClient(world.reactor, world.irc_port)
    flooder.send(b"X\r\n" * 200)
    settle(world, lambda: flooder.closed)
    assert [m.command for m in flooder.messages] == ["421"] * 64 + ["ERROR"]
    assert "Excess Flood" in flooder.messages[-1].params[-1]
    columbia = irc_login(world, "columbia")
    columbia.send(b"NOSUCH\r\n" * 63 + b"PING still-here\r\n")
    settle(world, lambda: columbia.of("PONG"))
    assert len(columbia.of("421")) == 63 and columbia.closed is None
    columbia.send("PRIVMSG seas :hi")
    settle(world, lambda: seas.texts())
    assert seas.texts() == [("columbia", "seas", "hi")]


def test_one_line_of_many_refusals_counts_once_toward_the_flood_rule(world):
    """irssi's autojoin list is one JOIN of every channel: 69 403s ended the connection as a
    flood (a trial's); a line counts once, however many errors it gets."""
    columbia = irc_login(world, "columbia")
    columbia.send("JOIN " + ",".join(f"#c{n}" for n in range(69)), "PING :after")
    settle(world, lambda: columbia.of("PONG") or columbia.closed)
    assert columbia.closed is None and len(columbia.of("403")) == 69


def test_a_read_of_more_lines_than_the_limit_ends_the_connection_even_unanswered_ones(world):
    """PONGs and empty lines are answered by nothing, so never refused: 8 KiB of them is
    1,024 parses a read."""
    seas = irc_login(world, "seas")
    flooder = irc_login(world, "columbia")
    flooder.send(b"PONG :x\r\n" * (LINES_PER_READ + 1))
    settle(world, lambda: flooder.closed)
    assert "Excess Flood" in flooder.of("ERROR")[0].params[-1]
    fine = irc_login(world, "foobar")
    fine.send(b"PONG :x\r\n" * (LINES_PER_READ - 1) + b"PING :done\r\n")
    settle(world, lambda: fine.of("PONG") or fine.closed)
    assert fine.closed is None
    seas.send("PING :still")
    settle(world, lambda: seas.of("PONG"))


def test_an_address_that_never_registers_is_closed_past_its_lines_and_others_go_on(world):
    """(a trial's 900 connections of one address, each sending CAP REQ lines, every one
    answered and none refused, held everyone's messages 6 s)"""
    seas = irc_login(world, "seas")
    flooders = [IrcClient(world.reactor, world.irc_port) for _ in range(6)]
    for flooder in flooders:
        for _ in range(3):
            flooder.send(b"CAP REQ :bogus\r\n" * 100)
    settle(world, lambda: sum(bool(flooder.closed) for flooder in flooders) >= 2)
    closed = [flooder for flooder in flooders if flooder.closed]
    assert all("Excess Flood" in flooder.of("ERROR")[0].params[-1] for flooder in closed)
    assert sum(len(flooder.of("CAP")) for flooder in flooders) <= 1000      # its burst
    assert any("closed an IRC connection of 127.0.0.1 (not logged in): more lines than its "
               "address may send" in line for line in world.log)
    seas.send("PING :still here")                   # a user's lines are its own to spend
    settle(world, lambda: seas.of("PONG"))
    world.clock.advance(5.0)                        # (the address's lines come back)
    assert irc_login(world, "columbia").of("001")


def test_hundreds_of_logins_at_once_from_one_address_all_register(world):
    """(a trial's 300 honest logins from one address, each a registration of 6 lines: counted
    against the address's 1,000 lines, 292 were closed mid-registration)"""
    names = list(PASSWORDS) * 100                   # (a login elsewhere takes the name over)
    clients = [IrcClient(world.reactor, world.irc_port) for _ in names]
    for client, name in zip(clients, names):
        client.send("CAP LS 302", f"PASS {PASSWORDS[name]}", f"NICK {name}",
                    f"USER {name} 0 * :{name}", "CAP END", "JOIN #chat")
    settle(world, lambda: all(client.of("001") or client.closed for client in clients))
    assert not [client for client in clients if client.of("ERROR") and "Excess Flood" in
                client.of("ERROR")[0].params[-1]]


def test_a_user_past_its_lines_is_closed_and_logged_out(world):
    """(a trial's one logged-in connection of PINGs, each answered by the session, took 80%
    of the server's time)"""
    seas = irc_login(world, "seas")
    flooder = irc_login(world, "columbia")
    for _ in range(3):
        flooder.send(b"PING :x\r\n" * 200)
    settle(world, lambda: flooder.closed)
    assert "Excess Flood" in flooder.of("ERROR")[0].params[-1]
    settle(world, lambda: seas.of("QUIT"))
    assert any("(columbia): more lines than its user may send" in line for line in world.log)


def test_the_service_nick_takes_the_native_words(world):
    native_login(world, "seas")
    columbia = irc_login(world, "columbia")
    columbia.send("PRIVMSG chat :online", "PRIVMSG chat :block seas", "PRIVMSG chat :getaddress seas")
    settle(world, lambda: len(columbia.of("NOTICE")) == 3)
    notices = [m.params[-1] for m in columbia.of("NOTICE")]
    assert "Online: seas" in notices and "User seas has been blocked." in notices
    assert any("client.py" in notice for notice in notices)


# -- the connection ------------------------------------------------------------------------------

def test_a_dropped_connection_logs_the_user_out(world):
    seas = native_login(world, "seas")
    columbia = irc_login(world, "columbia")
    columbia.conn.close()
    settle(world, lambda: [f for f in seas.of("presence") if f["online"] is False])
    assert "columbia" not in world.core.online_users()
    # the words it left with, as IRC servers say them: not "Logged out" (a trial's kill -9)
    assert [f.get("reason") for f in seas.of("presence")][-1] == "Connection closed"


def test_quit_logs_out_and_says_goodbye(world):
    columbia = irc_login(world, "columbia")
    columbia.send("QUIT :gone fishing")
    settle(world, lambda: columbia.closed)
    assert columbia.of("ERROR")[0].params[-1] == "Closing link: Quit: gone fishing"
    assert "columbia" not in world.core.online_users()


def test_an_idle_but_answering_client_stays_logged_in_and_a_silent_one_is_closed(world):
    alive = irc_login(world, "columbia")
    silent = irc_login(world, "seas", deaf=True)
    for _ in range(int(IDLE_S // 10) + 2):
        world.clock.advance(10.0)       # the answering one's PONGs get a pass to arrive
        world.reactor.run_once(timeout_s=0.01)
    settle(world, lambda: silent.closed)
    assert alive.closed is None and "columbia" in world.core.online_users()
    assert silent.of("PING") and "seas" not in world.core.online_users()
    # told why, as IRC servers do (a trial's was closed with nothing said)
    assert silent.of("ERROR")[-1].params == (f"Closing link: Ping timeout: {IDLE_S:g} seconds",)
    assert PING_AFTER_S < IDLE_S
    settle(world, lambda: alive.of("QUIT"))
    assert alive.of("QUIT")[-1].params == (f"Ping timeout: {IDLE_S:g} seconds",)


@pytest.mark.parametrize("timeout_s", [4.0, 10.0, 31.0])
def test_an_idle_irc_user_stays_logged_in_under_any_time_out(timeout_s):
    """(with --timeout 10 every idle IRC user timed out: its keepalive came every 15 s)"""
    for world in a_world(dataclasses.replace(Settings(), timeout_s=timeout_s)):
        alive = irc_login(world, "columbia")
        for _ in range(int(3 * timeout_s)):
            world.clock.advance(1.0)
            world.reactor.run_once(timeout_s=0.01)
        assert alive.closed is None and "columbia" in world.core.online_users()


def test_a_line_past_the_reactors_frame_limit_gets_417_and_the_connection_goes_on(world):
    columbia = irc_login(world, "columbia")
    columbia.send(b"PRIVMSG seas :" + b"x" * 70_000 + b"\r\n", "PING after")
    settle(world, lambda: columbia.of("PONG"))
    assert columbia.of("417") and columbia.closed is None
    assert world.store.count_waiting("seas") == 0          # nothing of it was taken


def test_commands_before_registration_and_unknown_ones_get_numerics_not_a_close(world):
    client = IrcClient(world.reactor, world.irc_port)
    client.send("PRIVMSG seas :hi", "FROB")
    settle(world, lambda: client.of("421"))
    assert client.of("451") and client.closed is None


@pytest.mark.parametrize("port", ["port", "irc_port"])
def test_a_tls_client_at_a_plain_port_is_closed_at_once_and_told_so(world, port):
    """Its handshake was answered as lines: bad_utf8 and bad_json, or 421s that echoed its
    bytes (a trial's)."""
    client = Recorder()
    world.reactor.connect("127.0.0.1", getattr(world, port), client,
                          tls=ssl.create_default_context())
    settle(world, lambda: client.closed)
    assert client.closed == ["tls: the other end closed the handshake (does it speak TLS?)"]
    assert client.frames == []
    settle(world, lambda: any(TLS_AT_PLAIN in line for line in world.log))


def test_a_cr_alone_ends_a_line_as_a_cr_lf_does(world):
    """(a trial's "PING one\rPING two\r\n" got one PONG; "PRIVMSG seas :hi\rQUIT :bye"
    reached seas as "hi QUIT :bye")"""
    columbia = irc_login(world, "columbia")
    columbia.send(b"PING one\rPING two\r\nPING three\r\r\nPRIVMSG seas :hi\rPING four\n")
    settle(world, lambda: len(columbia.of("PONG")) == 4)
    assert [m.params[-1] for m in columbia.of("PONG")] == ["one", "two", "three", "four"]
    columbia.send(b"PING five\r")                 # no LF comes: answered all the same
    settle(world, lambda: len(columbia.of("PONG")) == 5)
    assert b'"text":"hi",' in world.store.waiting("seas")[0][1]      # "hi", and no more


def test_hostile_lines_get_errors_and_the_connection_goes_on(world):
    columbia = irc_login(world, "columbia")
    columbia.send(b"PRIVMSG seas :" + b"x" * 600 + b"\r\n", b"PRIVMSG seas :caf\xe9\r\n",
                  b"\x00\x01\x02\r\n", b":::: :::\r\n", "PING still-here")
    settle(world, lambda: columbia.of("PONG"))
    assert columbia.of("417") and columbia.of("FAIL")[0].params[:2] == ("PRIVMSG", "INVALID_UTF8")
    assert columbia.closed is None


def test_refusals_of_lines_sent_while_the_login_is_answered_come_in_their_order(world):
    """A trial's 417 and FAIL came after the PONG of a line sent after theirs."""
    client = IrcClient(world.reactor, world.irc_port)
    client.send(b"PASS 116bway\r\nNICK columbia\r\nUSER c 0 * :c\r\nPRIVMSG seas :"
                + b"x" * 600 + b"\r\nPRIVMSG seas :caf\xe9\r\nPING :end\r\n")
    settle(world, lambda: client.of("PONG"))
    said = [m.command for m in client.messages]
    assert said.index("001") < said.index("417") < said.index("FAIL") < said.index("PONG")


def test_lines_sent_before_the_login_is_answered_wait_for_it_in_order(world):
    seas = native_login(world, "seas")
    client = IrcClient(world.reactor, world.irc_port)
    client.send("PASS 116bway", "NICK columbia", "USER c 0 * :c", "PRIVMSG seas :first",
                "PRIVMSG seas :second")
    settle(world, lambda: len(seas.of("message")) == 2)
    assert [f["text"] for f in seas.of("message")] == ["first", "second"]
    assert not client.of("451")


def test_lines_after_a_refused_login_are_not_read(world):
    seas = native_login(world, "seas")
    client = IrcClient(world.reactor, world.irc_port)
    client.send("PASS wrong", "NICK columbia", "USER c 0 * :c", "PRIVMSG seas :sneaky")
    settle(world, lambda: client.closed)
    seas.request("online")
    settle(world, lambda: seas.reply(seas.next_id))
    assert seas.of("message") == []


def test_an_irc_action_reads_as_slash_me_to_native_users_and_back(world):
    seas = native_login(world, "seas")
    columbia = irc_login(world, "columbia")
    columbia.send("PRIVMSG seas :\x01ACTION waves\x01")
    settle(world, lambda: seas.of("message"))
    assert seas.of("message")[0]["text"] == "/me waves"
    seas.request("message", to="columbia", text="/me waves back")
    settle(world, lambda: columbia.texts())
    assert columbia.texts() == [("seas", "columbia", "\x01ACTION waves back\x01")]


def test_version_and_time_are_answered(world):
    columbia = irc_login(world, "columbia")
    columbia.send("VERSION", "TIME")
    settle(world, lambda: columbia.of("391"))
    assert columbia.of("351")[0].params[1] == "chat-1"
    assert "2023" in columbia.of("391")[0].params[-1]


def test_a_connection_that_never_logs_in_is_closed_however_busy(world):
    junk = IrcClient(world.reactor, world.irc_port)
    for _ in range(int(REGISTER_S // 10) - 1):
        junk.send("FROB", "CAP LS")             # lines, but never a login
        settle(world, lambda: junk.of("CAP"))
        junk.messages.clear()
        world.clock.advance(10.0)
    assert junk.closed is None
    world.clock.advance(20.0)                   # past REGISTER_S since it was made
    settle(world, lambda: junk.closed)
    assert "in time" in junk.of("ERROR")[0].params[-1]


def test_a_registration_typed_by_hand_has_register_s_from_the_start_not_the_frame_time(world):
    """A user typing into nc takes longer than the native port's first-frame limit (10 s)."""
    slow = IrcClient(world.reactor, world.irc_port)
    settle(world, lambda: len(world.glue.conns) == 1)   # taken: its time runs
    world.clock.advance(REGISTER_S - 5)         # a long look at the README: nothing typed yet
    world.reactor.run_once(timeout_s=0)
    assert slow.closed is None
    slow.send(f"PASS {PASSWORDS['columbia']}", "NICK columbia", "USER c 0 * :c")
    settle_in_time(world, lambda: slow.of("366"))
    world.clock.advance(REGISTER_S)             # logged in: idle limits from now on
    world.reactor.run_once(timeout_s=0)
    assert slow.closed is None
    silent = IrcClient(world.reactor, world.irc_port)
    settle(world, lambda: len(world.glue.conns) == 2)
    world.clock.advance(REGISTER_S + 1)
    settle(world, lambda: silent.closed)        # and one that never says anything goes
    assert "in time" in silent.of("ERROR")[0].params[-1]


def line_begun(w):
    """True once the server has read a line's beginning (its time runs from then)."""
    return any(conn.handler is w.front and conn._inbuf for conn in w.reactor.connections())


def test_a_logged_in_users_line_cut_by_a_stall_waits_as_long_as_its_silence_may(world):
    """A trial's network stall in the middle of a line ended the session at the frame time
    (10 s), the half-sent message lost; ngIRCd waited for the rest."""
    seas = native_login(world, "seas")
    columbia = irc_login(world, "columbia")
    columbia.conn.send(b"PRIVMSG seas :half a li")
    settle(world, lambda: line_begun(world))
    world.clock.advance(FRAME_TIME_S + 20)
    world.reactor.run_once(timeout_s=0)
    assert columbia.closed is None
    columbia.conn.send(b"ne after a stall\r\n")
    settle(world, lambda: seas.of("message"))
    assert seas.of("message")[0]["text"] == "half a line after a stall"
    columbia.conn.send(b"PRIVMSG seas :never ended")      # silent past IDLE_S: it goes
    settle(world, lambda: line_begun(world))
    world.clock.advance(IDLE_S)
    settle(world, lambda: columbia.closed)
    before = IrcClient(world.reactor, world.irc_port)       # not logged in: the frame time
    before.conn.send(b"NICK foob")
    settle(world, lambda: line_begun(world))
    world.clock.advance(FRAME_TIME_S)
    settle(world, lambda: before.closed)
    assert "too slow" in before.of("ERROR")[0].params[-1]


def test_a_notice_stays_a_notice_and_quit_words_reach_the_others(world):
    columbia = irc_login(world, "columbia")
    foobar = irc_login(world, "foobar")
    seas = native_login(world, "seas")
    columbia.send("NOTICE foobar :just so you know", "NOTICE #chat :to all, quietly")
    settle(world, lambda: len(foobar.of("NOTICE")) == 2)
    assert [(m.params[0], m.params[-1]) for m in foobar.of("NOTICE")] == [
        ("foobar", "just so you know"), ("#chat", "to all, quietly")]
    settle(world, lambda: seas.of("broadcast"))
    assert seas.of("broadcast")[0]["notice"] is True        # client.py shows it as a message
    columbia.send("QUIT :off to lunch")
    settle(world, lambda: foobar.of("QUIT"))
    assert foobar.of("QUIT")[0].params == ("off to lunch",)


def test_an_open_account_in_use_is_not_taken_over_without_a_password(world):
    first = IrcClient(world.reactor, world.irc_port)
    first.send("NICK guest", "USER g 0 * :g")
    second = IrcClient(world.reactor, world.irc_port)
    second.send("NICK guest", "USER g 0 * :g")      # at once: the first login is on its way
    settle_in_time(world, lambda: first.of("366") and second.of("433"))
    third = IrcClient(world.reactor, world.irc_port)
    third.send("NICK Guest", "USER g 0 * :g")       # later: the account is online
    settle(world, lambda: third.of("433"))
    assert [m.params[:2] for m in second.of("433") + third.of("433")] == [
        ("*", "guest"), ("*", "Guest")]                 # as before any nick is taken
    assert first.closed is None and "guest" in world.core.online_users()
    third.send("PASS anything", "NICK guest")       # a password (any, for an open account)
    settle(world, lambda: third.of("001"))           # ... logs in, and the older one goes
    settle(world, lambda: first.closed)


def test_a_user_an_irc_user_blocks_comes_and_goes_unseen_by_them(world):
    """Presence is not told to those who block the user (as its broadcasts are not)."""
    columbia = irc_login(world, "columbia")
    columbia.send("SILENCE +seas")
    settle(world, lambda: columbia.of("SILENCE"))
    seas = native_login(world, "seas")
    seas.request("logout")
    foobar = irc_login(world, "foobar")     # told of seas by nobody: a sign that all went by
    columbia.send("PING sync")
    settle(world, lambda: columbia.of("PONG"))
    assert [m.source.split("!")[0] for m in columbia.of("JOIN") + columbia.of("QUIT")] == [
        "columbia", "foobar"]
    assert foobar.closed is None


# -- fuzzing: mutated and random IRC lines; no exception may escape, the others are served ------

SEED = int(os.environ.get("FUZZ_SEED", "18"))
LINES = 20_000
COMMANDS = ["CAP", "AUTHENTICATE", "PASS", "NICK", "USER", "PING", "PONG", "QUIT", "PRIVMSG",
            "NOTICE", "JOIN", "PART", "NAMES", "WHO", "WHOIS", "ISON", "USERHOST", "MODE",
            "TOPIC", "LIST", "AWAY", "SILENCE", "MOTD", "LUSERS", "VERSION", "TIME", "KICK",
            "001", ""]
WORDS = ["columbia", "seas", "foobar", "guest", "chat", "#chat", "#other", "*", "0", ":", "::",
         "+seas", "-seas", "LS", "302", "REQ", ":sasl echo-message", "END", "LIST", "PLAIN",
         "+", "ack-1", "ack-99999999999999999999", "\x01ACTION x\x01", "\x01VERSION\x01", "³",
         "é", "\u202e", "x" * 450, ",", "a,,b", "@", "!", "116bway", "c?l*"]


def line(rng):
    """One fuzzed line (bytes): a command with random words, sometimes tags, a source, junk."""
    roll = rng.random()
    if roll < 0.05:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80)))
    words = [rng.choice(COMMANDS)] + [rng.choice(WORDS) for _ in range(rng.randrange(5))]
    text = " ".join(words)
    if roll < 0.15:
        text = f"@+x={rng.choice(WORDS)};time=now :{rng.choice(WORDS)} " + text
    if roll < 0.2:
        text = text.replace(" ", "  ")
    return text.encode("utf-8", "surrogatepass")


def test_fuzzed_irc_lines_raise_nothing_and_a_native_user_is_served(world):
    rng = random.Random(SEED)
    seas = native_login(world, "seas")
    clients = [irc_login(world, "columbia"), IrcClient(world.reactor, world.irc_port),
               irc_login(world, "guest", password="x"), IrcClient(world.reactor, world.irc_port)]
    everyone = list(clients)
    for sent in range(LINES):
        client = rng.choice(clients)
        if client.closed is not None:
            clients[clients.index(client)] = client = IrcClient(world.reactor, world.irc_port)
            everyone.append(client)
        client.send(line(rng) + b"\r\n")
        if sent % 100 == 0:
            seas.request("heartbeat")           # (the clock moves: seas stays logged in)
            for open_client in clients:         # every line so far read and answered
                if open_client.closed is None:
                    open_client.send(f"PING :sync-{sent}")
                    settle(world, lambda c=open_client: c.closed or any(
                        m.command == "PONG" and m.params[-1] == f"sync-{sent}"
                        for m in c.messages[-50:]))
            world.clock.advance(rng.choice([0.0, 0.5, 5.0]))
    request = seas.request("message", to="foobar", text="still served")
    settle(world, lambda: seas.reply(request))
    assert seas.reply(request)[0]["type"] == "ok", seas.reply(request)
    answered = sum(len(client.messages) for client in everyone)
    assert answered > LINES / 2, answered       # the lines were read and answered
    # an exception in any callback is logged by the reactor, and closes as "internal error"
    assert [text for text in world.log if "error in callback" in text or "internal" in text] == []


# -- delivery under random interleavings: what IRC users ask never costs them a message ---------

QUERIES = ["WHO #chat", "NAMES #chat", "WHOIS seas", "ISON seas columbia", "USERHOST seas",
           "LIST", "MODE #chat", "TOPIC #chat", "AWAY :gone", "AWAY", "LUSERS", "MOTD",
           "PRIVMSG seas :back", "PRIVMSG #chat :to the room", "NOTICE seas :n", "PING :x",
           "JOIN #chat", "PRIVMSG chat :online", "SILENCE +foobar", "SILENCE -foobar",
           "PRIVMSG nobody :x", "VERSION", "TIME", "CAP LIST", "WHOIS nobody"]
STEPS = 1500


def test_each_irc_user_gets_every_message_once_in_order_whatever_it_asks_meanwhile(world):
    # Replies that wait for the core hold an IRC user's later lines back (IRC answers in
    # order); messages and broadcasts arriving meanwhile must still reach every recipient,
    # each once, in the order the server took them, and the PONGs acknowledge only those.
    rng = random.Random(SEED)
    seas = native_login(world, "seas")
    irc = {"columbia": irc_login(world, "columbia"),
           "guest": irc_login(world, "guest", password="x"),
           "foobar": irc_login(world, "foobar", caps=("echo-message", "message-tags",
                                                      "server-time"))}
    asked = []          # (request id, recipients, text) of each message and broadcast
    for step in range(STEPS):
        roll = rng.random()
        if roll < 0.35:
            to = rng.choice(sorted(irc))
            asked.append((seas.request("message", to=to, text=f"m{step}"), [to], f"m{step}"))
        elif roll < 0.5:
            asked.append((seas.request("broadcast", text=f"b{step}"), sorted(irc), f"b{step}"))
        else:
            irc[rng.choice(sorted(irc))].send(rng.choice(QUERIES))
        if rng.random() < 0.3:
            world.reactor.run_once(timeout_s=0)      # a pass between some lines, not all
        if step % 50 == 0:
            world.clock.advance(1.0)                 # the rate limits fill again
    settle(world, lambda: all(seas.reply(request) for request, _, _ in asked))
    expected = {name: [] for name in irc}
    for request, recipients, text in asked:
        if seas.reply(request)[0]["type"] == "ok":
            for name in recipients:
                expected[name].append(text)
    assert all(len(texts) > STEPS // 10 for texts in expected.values()), expected

    def from_seas(name):
        return [m.params[-1] for m in irc[name].of("PRIVMSG")
                if m.source.startswith("seas!") and m.params[0] in (name, "#chat")]
    settle(world, lambda: all(len(from_seas(name)) >= len(expected[name]) for name in irc))
    for name in irc:
        assert from_seas(name) == expected[name], name
    # and each one's acknowledgements (PONGs to the server's ack PINGs, one per
    # ACK_PING_GAP_S as time passes) came back: nothing waits for them in the store
    pump(world.reactor, lambda: world.store.count_all_waiting() == 0,
         between=lambda: world.clock.advance(0.5))
    assert [text for text in world.log if "error in callback" in text] == []
