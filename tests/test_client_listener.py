"""The client's listening port under a stranger's flood of connections, or a peer's: it holds at
most MAX_INCOMING, closing the oldest not yet proven, else a peer's oldest link, so the server's
delivery still gets in and the client goes on serving its user."""
import select
import socket

import client_glue
import protocol
from client_glue import MAX_INCOMING
from client_helpers import glue_with, logged_in
from line_tags import LineTags
from peer import dialer_mac
from protocol import DELIVERY_SERVER_LABEL
from reactor_helpers import pump


def test_a_flood_of_strangers_cannot_fill_the_listening_port():
    run = logged_in()                                     # alice, session key p1
    glue, clock, out = glue_with(run.client)
    listener = glue.reactor.listen("127.0.0.1", 0, glue.listening)
    strangers = []
    try:
        for _ in range(MAX_INCOMING + 16):
            accepted = glue.reactor._ids
            strangers.append(socket.create_connection(("127.0.0.1", listener.port)))
            pump(glue.reactor, lambda: glue.reactor._ids > accepted)      # it was accepted
        assert len(glue.incoming) == MAX_INCOMING
        pump(glue.reactor, lambda: _closed(strangers[15]))
        closed = [sock for sock in strangers if _closed(sock)]
        assert closed == strangers[:16]                   # the oldest unproven went first
        # the server's delivery connection still gets in and is proven
        server = socket.create_connection(("127.0.0.1", listener.port))
        deliver_through(glue, server, out)
        assert len(glue.incoming) <= MAX_INCOMING
        server.close()
    finally:
        for sock in strangers:
            sock.close()
        listener.close()


def test_peers_holding_every_place_give_one_up_to_the_servers_delivery(monkeypatch):
    """A peer given consent once held all 64 places, and the server's delivery connection was
    refused until it let go (a trial's). Here two peers hold all 4 of a smaller port."""
    monkeypatch.setattr(client_glue, "MAX_INCOMING", 4)
    run = logged_in()                                     # alice, session key p1
    for peer in ("bob", "carol"):
        run.type(f"Y {peer}")
        run.reply({"type": "ok", "key": f"k-{peer}"})
    glue, clock, out = glue_with(run.client)
    listener = glue.reactor.listen("127.0.0.1", 0, glue.listening)
    links = []
    try:
        for peer in ("bob", "bob", "carol", "carol"):
            link = socket.create_connection(("127.0.0.1", listener.port))
            nonce = protocol.decode(_first_line(glue, link))["nonce"]
            link.sendall(protocol.encode({"type": "peer_hello", "from": peer, "nonce": "d1",
                                          "mac": dialer_mac(f"k-{peer}", peer, "alice", nonce)}))
            assert protocol.decode(_first_line(glue, link))["type"] == "ok"     # proven
            links.append(link)
        assert len(glue.incoming) == 4
        server = socket.create_connection(("127.0.0.1", listener.port))
        deliver_through(glue, server, out)
        pump(glue.reactor, lambda: _closed(links[0]))        # the oldest link gave way
        assert not any(_closed(link) for link in links[1:])
        server.close()
    finally:
        for link in links:
            link.close()
        listener.close()


def deliver_through(glue, server, out):
    """As the server's delivery connection `server`: prove the session, deliver one message,
    and see the client show it."""
    challenge = protocol.decode(_first_line(glue, server))
    mac = protocol.mac("p1", DELIVERY_SERVER_LABEL, "alice", challenge["nonce"], "s", "0")
    server.sendall(protocol.encode({"type": "hello", "user": "alice", "nonce": "s",
                                    "head": 0, "mac": mac}))
    assert protocol.decode(_first_line(glue, server))["type"] == "ok"       # proven back
    tags = LineTags("p1", challenge["nonce"], "s", dialer=True)
    server.sendall(tags.tag(protocol.encode({"type": "message", "from": "bob",
                                             "text": "through", "seq": 1})))
    pump(glue.reactor, lambda: b"bob: through" in out.getvalue())


def _first_line(glue, sock):
    """The next line the client sends on `sock` (one line a read, as these come)."""
    pump(glue.reactor, lambda: select.select([sock], [], [], 0)[0])
    return sock.recv(4096).split(b"\n")[0]


def _closed(sock):
    sock.setblocking(False)
    try:
        return sock.recv(4096) == b"" or _closed(sock)
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


def test_a_delivery_without_its_tag_is_not_shown_and_ends_the_connection():
    """A message added on the way after the handshake, numbered far ahead, would have had the
    client take the real ones after it as repeats: acknowledged, never shown."""
    run = logged_in()                                     # alice, session key p1
    glue, clock, out = glue_with(run.client)
    listener = glue.reactor.listen("127.0.0.1", 0, glue.listening)
    server = socket.create_connection(("127.0.0.1", listener.port))
    try:
        deliver_through(glue, server, out)              # seq 1, tagged: shown
        server.sendall(protocol.encode({"type": "message", "from": "bob", "text": "forged",
                                        "seq": 99}))
        pump(glue.reactor, lambda: _closed(server))
        assert b"forged" not in out.getvalue()
        assert max(run.client.shown_upto.values()) == 1       # 99 was never taken
        said = glue.screen.terminal.err.getvalue()
        assert b"a line without the tag that proves who sent it" in said
    finally:
        server.close()
        listener.close()


def test_a_line_too_long_to_check_on_a_proven_delivery_connection_ends_it():
    """(a re-attack's, added on the way, was taken as the server's own refusal)"""
    run = logged_in()
    glue, clock, out = glue_with(run.client)
    listener = glue.reactor.listen("127.0.0.1", 0, glue.listening)
    server = socket.create_connection(("127.0.0.1", listener.port))
    try:
        deliver_through(glue, server, out)
        server.sendall(b"x" * 70_000 + b"\n")
        pump(glue.reactor, lambda: _closed(server))
        said = glue.screen.terminal.err.getvalue()
        assert b"a line too long to check its tag" in said
    finally:
        server.close()
        listener.close()


def test_the_listening_ports_hold_fits_the_descriptor_limit(monkeypatch):
    """(a trial's client under `ulimit -n 64`: a stranger's flood held 64 connections, no
    heartbeat could be sent, and its session timed out; the server raises its soft limit)"""
    import resource

    import client
    raised, said = [], []
    monkeypatch.setattr(resource, "setrlimit", lambda which, limits: raised.append(limits))
    monkeypatch.setattr(resource, "getrlimit", lambda which: (64, 20000))
    assert client.fit_descriptors(said.append) == MAX_INCOMING and said == []
    assert raised == [(20000, 20000)]
    monkeypatch.setattr(resource, "getrlimit", lambda which: (64, 64))
    assert client.fit_descriptors(said.append) == 20
    assert said == ["the descriptor limit is 64: the listening port holds at most 20 "
                    "connections at once (raise it with ulimit -n)"]
    monkeypatch.setattr(resource, "getrlimit", lambda which: (16, 16))
    assert client.fit_descriptors(said.append) == client.MIN_INCOMING
