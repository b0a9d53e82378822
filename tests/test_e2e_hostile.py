"""Hostile input against the real server process on 127.0.0.1: each bad input gets its own
error code (or the connection is closed when no answer is safe) and one log line, while a
well-behaved user at another address is served at the same time."""
import json
import re
import select
import selectors
import socket
import time

import pytest

from hostile import GoodUser, codes, exchange, open_conn, read_until_closed
from realprocs import ServerProcess

FRAME_TIME_S = 1.0


@pytest.fixture
def run_server(tmp_path):
    started = []

    def start(*options):
        started.append(ServerProcess(tmp_path, "--frame-time", str(FRAME_TIME_S), *options))
        return started[-1]
    yield start
    for proc in started:
        assert proc.stop() == 0, proc.log()


@pytest.fixture
def chat(run_server):
    """A server with its defaults (but a 1 s frame time) and columbia logged in."""
    server = run_server()
    good = GoodUser(server.port, "columbia", "116bway")
    yield server, good
    good.close()


def refusals(server, code):
    return re.findall(rf"refused .*: {code}( .*)?$", server.log(), re.M)


@pytest.mark.parametrize("payload, code", [
    (b'{"type":"check_user","user":"\xff\xfe"}', "bad_utf8"),
    (b'{"type": check_user}', "bad_json"),
    (b'["check_user"]', "not_object"),
    (b'{"type":"rm -rf"}', "unknown_type"),
    (b'{"type":"login","user":"columbia"}', "bad_field"),
    (b'{"type":"login","user":"columbia","password":"x","port":"4000"}', "bad_field"),
    (b'{"type":"check_user","user":"colu\\u0000mbia"}', "bad_field"),
    (b'{"type":"check_user","user":"\\u001b[2Jseas"}', "bad_field"),
    (b'{"type":"check_user","user":"' + b"x" * 60_000 + b'"}', "bad_field"),
    (b'{"type":"check_user","user":"' + b"x" * 100_000 + b'"}', "too_long"),
    (b'{"type":"online"}', "no_session"),
    (b'{"type":"online","token":"deadbeef.0000"}', "no_session"),
])
def test_each_bad_frame_gets_its_code_is_logged_once_and_others_are_served(chat, payload, code):
    server, good = chat
    hostile = open_conn(server.port)
    hostile.sendall(payload + b"\n")
    good.served()                                   # while the bad connection is open
    hostile.sendall(b'{"type":"check_user","user":"seas"}\n{"type":"bye"}\n')
    frames, _ = read_until_closed(hostile)
    assert codes(frames) == [code, "ok"]            # the connection goes on after an error
    server.wait_log(rf"{code}")
    assert len(refusals(server, code)) == 1, server.log()
    good.served()


@pytest.mark.parametrize("first_words", [b"CAP LS 302\r\nNICK columbia\r\n",
                                         b"PASS 116bway\r\nNICK columbia\r\n",
                                         b"nick columbia\r\n"])
def test_an_irc_client_at_the_chat_port_is_told_in_its_own_protocol(chat, first_words):
    """(an IRC trial's irssi showed raw bad_json lines, then too_slow, and tried again every
    5 minutes)"""
    server, good = chat
    hostile = open_conn(server.port)
    hostile.sendall(first_words)
    assert read_raw(hostile) == (b"ERROR :Closing link: this is the chat server's own port; "
                                 b"it takes no IRC clients (server.py --irc-port)\r\n")
    server.wait_log("an IRC client at the chat port")
    good.served()


def test_an_irc_client_at_the_chat_port_is_told_the_irc_port(run_server):
    """(a re-attack's irssi was told of an IRC port, not which: the server had one)"""
    server = run_server("--irc-port", "0")
    irc_port = server.wait_log(r"IRC clients on [\d.]+:(\d+)").group(1)
    hostile = open_conn(server.port)
    hostile.sendall(b"NICK columbia\r\n")
    assert read_raw(hostile) == (f"ERROR :Closing link: this is the chat server's own port; IRC "
                                 f"clients connect to port {irc_port}\r\n").encode()


def read_raw(sock):
    """The bytes the server sends until it closes (bounded by the socket's time-out)."""
    sock.settimeout(5)
    received = b""
    while chunk := sock.recv(4096):
        received += chunk
    return received


def test_blank_lines_between_frames_are_skipped_not_refused(chat):
    """(a fuzzer's JSON Lines writer put blank lines between records: each was refused
    bad_json, and 64 in one read closed the connection as a flood)"""
    server, _ = chat
    replies = exchange(server.port, b"\n" * 100 + b"  \r\n\t\n"
                       + b'{"type":"check_user","user":"seas","id":1}\n\n')
    assert replies == [{"type": "ok", "id": 1}]
    assert refusals(server, "bad_json") == []


def test_a_frame_that_never_ends_is_discarded_then_closed_with_too_slow(chat):
    server, good = chat
    hostile = open_conn(server.port)
    hostile.sendall(b"{" + b"x" * 200_000)          # past the limit, and no newline ever
    good.served()
    frames, took_s = read_until_closed(hostile)
    assert codes(frames) == ["too_long", "too_slow"]
    assert took_s < FRAME_TIME_S + 2
    server.wait_log(r"closed: no complete frame within 1 s")
    good.served()


def test_a_slowloris_is_closed_within_the_frame_time_however_it_trickles(chat):
    server, good = chat
    hostile = open_conn(server.port)
    hostile.sendall(b"{")
    hostile.settimeout(FRAME_TIME_S / 4)
    sent = 1
    closed = False
    while not closed and sent < 20:             # a byte every quarter of the frame time
        try:
            closed = hostile.recv(65536) is not None     # too_slow, or the close itself
        except TimeoutError:
            hostile.sendall(b" ")
            sent += 1
            good.served()
    frames, _ = read_until_closed(hostile)
    assert sent < 12                            # closed within the frame time (plus slack)
    server.wait_log(r"closed: no complete frame within 1 s")
    assert len(re.findall(r"closed: no complete frame within 1 s", server.log())) == 1
    good.served()


def test_a_connection_that_sends_nothing_is_told_too_slow_and_closed(chat):
    server, good = chat
    silent = open_conn(server.port)
    good.served()
    frames, took_s = read_until_closed(silent)
    assert codes(frames) == ["too_slow"] and took_s < FRAME_TIME_S + 2
    server.wait_log(r"from 127\.0\.0\.2 closed: no complete frame within 1 s")
    assert server.log().count("no complete frame within") == 1
    good.served()


def test_another_users_token_from_another_address_gets_no_session(chat):
    server, good = chat
    stolen = json.dumps({"type": "message", "token": good.token, "to": "seas", "text": "x"})
    assert codes(exchange(server.port, stolen.encode())) == ["no_session"]
    good.served()                                   # the token still works at its own address


def test_a_byte_quota_under_one_message_is_said_at_the_start_and_refuses(run_server):
    """(a trial's --store-bytes 1 refused 342 messages of 342, not a word at the start)"""
    server = run_server("--store-bytes", "1")
    server.wait_log(r"--store-bytes 1 is less than one long message may take \(65,536 bytes\)")
    good = GoodUser(server.port, "seas", "summerisover")
    assert good.ask({"type": "message", "token": good.token, "to": "columbia",
                     "text": "x"})["code"] == "store_full"
    good.close()


def test_a_frame_time_too_short_for_a_network_is_said_at_the_start(run_server):
    """(a trial's --frame-time 0.001 closed every connection too_slow, not a word said)"""
    server = run_server("--frame-time", "0.001")
    server.wait_log(r"--frame-time 0\.001 s is shorter than a frame may take to cross a slow "
                    r"network")


def test_an_expired_token_gets_no_session(run_server):
    server = run_server("--timeout", "0.5")
    # (said at the start: client.py could not keep such a session, a trial's timed out at once)
    server.wait_log(r"--timeout 0.5 s is too short for client.py")
    good = GoodUser(server.port, "seas", "summerisover")
    server.wait_log(r"seas timed out after 0.5 s")
    assert good.ask({"type": "online", "token": good.token})["code"] == "no_session"
    good.close()


def test_a_users_flood_gets_slow_down_not_a_crash_and_others_are_served(run_server):
    server = run_server("--user-rate", "5", "--user-burst", "10")
    flooder = GoodUser(server.port, "google", "hasglasses")
    good = GoodUser(server.port, "columbia", "116bway")
    online = json.dumps({"type": "online", "token": flooder.token}).encode()
    replies = exchange(server.port, b"\n".join([online] * 200), source="127.0.0.1")
    # 64 refusals in one read end the connection (limits.REFUSALS_PER_READ)
    assert codes(replies) == ["online"] * 10 + ["slow_down"] * 64 + ["flood"]
    assert replies[-2]["seconds"] >= 1
    good.served()
    assert server.log().count("google: over the rate limit") == 1
    server.wait_log(r"closed: flooded with refused requests")
    flooder.close()
    good.close()


def test_an_address_flood_gets_slow_down_and_other_addresses_are_served(run_server):
    server = run_server("--address-rate", "5", "--address-burst", "20")
    good = GoodUser(server.port, "columbia", "116bway")
    replies = exchange(server.port, b"\n".join([b"garbage"] * 300))
    assert codes(replies) == ["bad_json"] * 20 + ["slow_down"] * 44 + ["flood"]
    good.served()
    assert server.log().count("address 127.0.0.2: over the rate limit") == 1
    good.close()


def test_an_address_that_goes_on_after_slow_down_is_closed_across_its_connections(run_server):
    """A trial's 600 connections of one address sent 1 KB check_user frames, each refused
    slow_down (7 a read, never the 64 that end a connection), and held everyone's name checks
    1 s: past 500 unheeded slow_downs in all, the connection that sends more is closed."""
    server = run_server("--address-rate", "5", "--address-burst", "20")
    good = GoodUser(server.port, "columbia", "116bway")
    frame = b'{"type":"check_user","user":"nobody' + b"x" * 900 + b'"}\n'
    flooders = [open_conn(server.port) for _ in range(12)]
    closed = []
    for _ in range(2):
        for sock in flooders:
            if sock not in closed:
                try:
                    sock.sendall(frame * 30)        # 30 a read: never 64 refused in one
                except OSError:
                    closed.append(sock)
    for sock in flooders:
        frames, _ = read_until_closed(sock, timeout_s=2)
        if frames and frames[-1].get("code") == "flood":
            assert "went on sending after it was asked to slow down" in frames[-1]["message"]
            closed.append(sock)
        sock.close()
    assert closed
    good.served()                                   # another address: served throughout
    server.wait_log(r"closed: flooded with refused requests")
    good.close()


@pytest.mark.parametrize("line, said", [(b"x\n", ["bad_json"] * 64 + ["flood"]),
                                         (b"\n", ["flood"]), (b"\r\n", ["flood"])])
def test_a_read_of_many_refused_frames_ends_its_connection_and_others_are_served(chat, line,
                                                                                  said):
    """A trial's 30 connections of empty lines (32,768 in a read, each answered bad_json)
    held everyone's heartbeat 15 s: 64 refusals in one read now end the connection, and so
    do more than BLANKS_PER_READ blank lines, which are skipped unanswered."""
    server, good = chat
    sock = open_conn(server.port)
    sock.sendall(line * 100_000)
    frames, _ = read_until_closed(sock)
    sock.close()
    assert codes(frames) == said
    if not line.strip():        # (it said "1024 blank lines", where more than 1,024 are)
        assert frames[-1]["message"].startswith("more than 1024 blank lines in one read")
    good.served()
    server.wait_log(r"closed: flooded with refused requests")


def test_a_read_of_many_acks_for_no_session_ends_its_connection(chat):
    """They are not answered (a few follow a session's end), so they were never refused: a
    read of a thousand cost a thousand decodes, unlimited."""
    server, good = chat
    sock = open_conn(server.port)
    sock.sendall(b'{"type":"ack","seq":1}\n' * 1000)
    frames, _ = read_until_closed(sock)
    sock.close()
    assert codes(frames) == ["flood"]
    good.served()


def test_fewer_refusals_in_a_read_than_the_flood_rule_keep_the_connection(chat):
    server, good = chat
    sock = open_conn(server.port)
    sock.sendall(b"x\n" * 63 + b'{"type":"check_user","user":"seas"}\n')
    sock.sendall(b'{"type":"check_user","user":"seas"}\n{"type":"bye"}\n')
    frames, _ = read_until_closed(sock)
    sock.close()
    assert codes(frames) == ["bad_json"] * 63 + ["ok", "ok"]
    good.served()


def test_failed_logins_are_limited_per_address(run_server):
    server = run_server("--failed-logins", "3")
    guesses = [json.dumps({"type": "login", "user": user, "password": "guess", "port": 9})
               for user in ("google", "facebook", "nobody", "windows", "google")]
    replies = exchange(server.port, "\n".join(guesses).encode())
    assert codes(replies) == ["wrong_password", "wrong_password", "unknown_user", "slow_down",
                              "slow_down"]
    good = GoodUser(server.port, "columbia", "116bway")    # another address logs in
    good.served()
    good.close()


def closed_by_server(sock, wait_s=0.5):
    """True if the server has closed `sock` (within `wait_s` of its turning readable)."""
    if not select.select([sock], [], [], wait_s)[0]:
        return False
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_one_address_cannot_take_every_connection(run_server):
    """Past the per-address cap a new connection from that address is closed at once, logged
    once with a count; at the global cap the newest connection of the address holding the
    most is shed, so a user at another address is still served."""
    server = run_server("--max-connections", "4", "--max-per-address", "3",
                        "--frame-time", "30")
    held = [open_conn(server.port) for _ in range(3)]           # 127.0.0.2 at its cap
    refused = [open_conn(server.port) for _ in range(5)]
    for sock in refused:
        assert read_until_closed(sock, timeout_s=5)[0] == []
    server.wait_log(r"refused a connection: its address holds the most it may from 127\.0\.0\.2")
    assert server.log().count("its address holds the most it may") == 1     # once, not 5
    other = open_conn(server.port, source="127.0.0.3")          # the 4th: the global cap
    good = GoodUser(server.port, "columbia", "116bway")         # over the cap: one is shed
    good.served()
    server.wait_log(r"shed the newest connection of 127\.0\.0\.2, which holds the most")
    shed = [sock for sock in held if closed_by_server(sock)]
    assert shed == [held[-1]]                                   # the newest, and only one
    for sock in held + refused + [other]:
        sock.close()
    good.close()


def test_at_a_low_descriptor_limit_one_address_reconnecting_keeps_no_one_waiting(tmp_path):
    """At `ulimit -n 256` a trial's 3,000 idle connections from one address, each opened again
    as the server closed it, had everyone else's connections wait 10 s in the queue: every
    connection refused or shed held its descriptor to the end of its pass, the server ran out
    in each, and paused its accepts."""
    server = ServerProcess(tmp_path, descriptors=256)
    good = GoodUser(server.port, "columbia", "116bway")
    flood = selectors.DefaultSelector()

    def reconnect(sock=None):
        if sock is not None:
            flood.unregister(sock)
            sock.close()
        sock = socket.socket()
        sock.setblocking(False)
        sock.bind(("127.0.0.5", 0))
        sock.connect_ex(("127.0.0.1", server.port))
        flood.register(sock, selectors.EVENT_READ)
    try:
        for _ in range(1500):
            reconnect()
        waits = []
        end = time.monotonic() + 6.0                # bounded: a few seconds of the flood
        while time.monotonic() < end:
            for key, _ in flood.select(timeout=0.05):
                try:
                    gone = key.fileobj.recv(1024) == b""
                except OSError:
                    gone = True
                if gone:                            # closed by the server: at it again
                    reconnect(key.fileobj)
            started = time.monotonic()
            good.served()
            waits.append(time.monotonic() - started)
        assert "accepts paused" not in server.log()
        assert max(waits) < 1.0, sorted(waits)[-5:]     # (it was 3 s at 1,000, 10 s at 3,000)
    finally:
        for key in list(flood.get_map().values()):
            key.fileobj.close()
        good.close()
        assert server.stop() == 0, server.log()
