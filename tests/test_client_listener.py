"""The client's listening port under a stranger's flood of connections: it holds at most
MAX_INCOMING, closing the oldest not yet proven, so the server's delivery still gets in and the
client goes on serving its user."""
import select
import socket

import protocol
from client_glue import MAX_INCOMING
from client_helpers import glue_with, logged_in
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
        pump(glue.reactor, lambda: select.select([server], [], [], 0)[0])
        challenge = protocol.decode(server.recv(4096).split(b"\n")[0])
        mac = protocol.mac("p1", DELIVERY_SERVER_LABEL, "alice", challenge["nonce"], "s", "0")
        server.sendall(protocol.encode({"type": "hello", "user": "alice", "nonce": "s",
                                        "head": 0, "mac": mac}))
        server.sendall(protocol.encode({"type": "message", "from": "bob", "text": "through",
                                        "seq": 1}))
        pump(glue.reactor, lambda: b"bob: through" in out.getvalue())
        assert len(glue.incoming) <= MAX_INCOMING
        server.close()
    finally:
        for sock in strangers:
            sock.close()
        listener.close()


def _closed(sock):
    sock.setblocking(False)
    try:
        return sock.recv(4096) == b"" or _closed(sock)
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
