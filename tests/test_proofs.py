"""Deliveries and peers prove who they are, both ways, and cannot be replayed: a delivery hello
proves the session's key for this connection's nonce only, the listener proves it back before
the server sends anything, and a number far beyond what the server has given is refused."""
import json
import socket

import protocol
from client_events import CloseConn, Incoming, SendTo
from client_helpers import WELCOME, hello, logged_in, printed, proof_back, proven
from realprocs import WAIT_S, start_server, token_of, wait_log
from protocol import delivery_hello, delivery_proven


def test_a_hello_copied_from_another_connection_is_refused():
    run = logged_in()
    real = hello(7)                               # made for connection 7's nonce
    assert run.do(Incoming(7, real)) == proven(7)
    actions = run.do(Incoming(8, real))           # replayed on connection 8
    assert CloseConn(8) in actions and proof_back(8) not in actions
    assert printed(run.do(Incoming(8, {"type": "message", "from": "columbia", "seq": 5,
                                       "text": "your account is suspended"}))) == []


def test_a_hello_for_another_user_or_with_a_changed_head_is_refused():
    run = logged_in()
    assert CloseConn(7) in run.do(Incoming(7, hello(7, user="bob")))
    forged = {**hello(8), "head": 900_000_000_000}          # the head is inside the proof
    assert CloseConn(8) in run.do(Incoming(8, forged))


def test_a_number_far_beyond_what_the_server_gave_is_neither_shown_nor_acknowledged():
    run = logged_in()
    run.do(Incoming(7, hello(7, head=100)))
    far = run.do(Incoming(7, {"type": "message", "from": "columbia", "text": "fake",
                              "seq": 900_000_000_000}))
    assert printed(far) == [] and CloseConn(7) in far
    assert not any(isinstance(a, SendTo) and a.frame.get("type") == "ack" for a in far)
    run.do(Incoming(9, hello(9, head=100)))
    real = run.do(Incoming(9, {"type": "message", "from": "seas", "text": "real", "seq": 101}))
    assert printed(real) == ["seas: real"]               # nothing real was skipped


def test_the_servers_hello_and_the_listeners_proof_fit_and_nothing_else_does():
    challenge = b'{"type":"challenge","nonce":"nc"}'
    made, theirs = delivery_hello("alice", "key", challenge, "ns", 42)
    assert theirs == "nc" and made["head"] == 42 and made["user"] == "alice"
    good = protocol.encode({"type": "ok", "mac": protocol.mac(
        "key", protocol.DELIVERY_CLIENT_LABEL, "nc", "ns")})[:-1]
    assert delivery_proven("key", good, "nc", "ns")
    assert not delivery_proven("other key", good, "nc", "ns")
    assert not delivery_proven("key", good, "nc", "another nonce")
    reflected = protocol.encode({"type": "ok", "mac": made["mac"]})[:-1]
    assert not delivery_proven("key", reflected, "nc", "ns")
    assert delivery_hello("alice", "key", b'{"type":"ok"}', "ns", 42) is None
    assert delivery_hello("alice", "key", b"garbage", "ns", 42) is None


def test_the_welcome_names_the_store_and_a_new_store_is_a_new_world_to_the_client():
    run = logged_in()
    run.do(Incoming(7, hello(7)))
    assert printed(run.do(Incoming(7, {"type": "message", "from": "b", "text": "one",
                                       "seq": 5}))) == ["b: one"]
    # the data directory was wiped: a new store numbers from its start again
    run.type("logout")
    run.reply({"type": "ok"})
    run.type("alice")
    run.reply({"type": "ok"})
    run.type("pw")
    run.reply({**WELCOME, "store": "another store"})
    run.do(Incoming(11, hello(11)))
    assert printed(run.do(Incoming(11, {"type": "message", "from": "b", "text": "two",
                                        "seq": 2}))) == ["b: two"]


# -- end to end: a stranger on a dead client's port gets nothing ---------------------------------

def test_a_stranger_on_a_dead_clients_port_gets_no_delivery(tmp_path):
    proc, port = start_server(tmp_path, 0)
    try:
        squatter = socket.create_server(("127.0.0.1", 0))
        squatter.settimeout(WAIT_S)
        victim_port = squatter.getsockname()[1]
        assert token_of(port, "seas", "summerisover", victim_port)   # "seas" listens there...
        sender = token_of(port, "columbia", "116bway")
        reply = _exchange(port, {"type": "message", "token": sender, "to": "seas",
                                 "text": "my bank pin is 1234", "id": 1})
        assert reply["type"] == "ok"
        # ... but its process is gone, and a stranger took the port: it knows no key
        heard = []
        for _ in range(2):
            conn, _ = squatter.accept()
            with conn, conn.makefile("rwb") as stream:
                stream.write(b'{"type":"challenge","nonce":"x"}\n')
                stream.flush()
                for line in stream:
                    frame = json.loads(line)
                    heard.append(frame)
                    if frame["type"] == "hello":
                        stream.write(b'{"type":"ok","mac":"00"}\n')
                        stream.flush()
        assert [frame["type"] for frame in heard] == ["hello", "hello"]   # only hellos
        assert "bank pin" not in json.dumps(heard)     # (not "1234": a random mac may hold it)
        wait_log(tmp_path, "did not prove the session")
    finally:
        proc.kill()
        proc.wait()


def _exchange(port, frame):
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT_S) as conn:
        conn.sendall(json.dumps(frame).encode() + b'\n{"type":"bye"}\n')
        return json.loads(conn.makefile().readline())
