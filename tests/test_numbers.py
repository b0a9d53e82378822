"""Every number from the wire is bounded where it comes in: a seq, a port or an id out of
range is bad_field (or ignored where nobody can be told), never an exception deeper in; and a
socket that cannot even be made is a failed connect like any other."""
import errno
import socket

import pytest

from chat_client import ChatClient, Settings
from client_events import Accepted, Incoming, OpenLink
from client_helpers import hello, logged_in
from core_helpers import make_server, replies
from protocol import MAX_SEQ
from reactor import Reactor
from timers import VirtualClock
from reactor_helpers import Recorder, pump
from server_events import Acked, Request, accepted_event, delivery_event


def stay_login(server, conn=1):
    frame = {"type": "login", "user": "alice", "password": "PW-SECRET-a", "stay": True}
    return server.handle(Request(conn, frame, "h"), 0.0)


@pytest.mark.parametrize("seq", [2 ** 63, MAX_SEQ + 1, 0, -5, 1.5, "1", True, None])
def test_a_staying_ack_out_of_range_is_bad_field_and_changes_nothing(seq):
    server, store = make_server()
    stay_login(server)
    frame = {"type": "ack"} if seq is None else {"type": "ack", "seq": seq}
    answer = replies(server.handle(accepted_event(1, "h", _line(frame)), 0.0))
    assert answer[0]["code"] == "bad_field" and "seq" in answer[0]["message"]
    store.commit()                                  # and the store still commits


@pytest.mark.parametrize("frame_id", ["A", 7])
def test_a_refused_ack_repeats_its_id_as_every_refusal_does(frame_id):
    # (a trial's client told replies from deliveries by their id: an error without one read
    # as a delivery of a type it did not know)
    server, _ = make_server()
    stay_login(server)
    frame = {"type": "ack", "seq": "x", "id": frame_id}
    [answer] = replies(server.handle(accepted_event(1, "h", _line(frame)), 0.0))
    assert answer["code"] == "bad_field" and answer["id"] == frame_id


def test_a_refused_ack_with_an_id_that_cannot_be_repeated_has_none():
    server, _ = make_server()
    stay_login(server)
    frame = {"type": "ack", "seq": 0, "id": "x" * 65}
    [answer] = replies(server.handle(accepted_event(1, "h", _line(frame)), 0.0))
    assert answer["code"] == "bad_field" and "id" not in answer


def _line(frame):
    import json
    return json.dumps(frame).encode()


def test_a_delivery_ack_out_of_range_is_nothing_at_all():
    assert delivery_event("p", b'{"type":"ack","seq":9223372036854775808}') is None
    assert delivery_event("p", b'{"type":"ack","seq":0}') is None
    assert delivery_event("p", b'{"type":"ack","seq":7}') == Acked("p", 7)


@pytest.mark.parametrize("frame_id", ["1e999", "NaN", "-Infinity", str(2 ** 80), "1e300",
                                      "-9007199254740992.0", '"' + "x" * 65 + '"', "[1]"])
def test_an_id_that_cannot_be_repeated_safely_is_refused_and_not_repeated(frame_id):
    server, _ = make_server()
    line = b'{"type":"check_user","user":"alice","id":' + frame_id.encode() + b"}"
    [answer] = replies(server.handle(accepted_event(1, "h", line), 0.0))
    # (NaN and Infinity are no JSON at all: refused as such, by the decoder)
    code = "bad_json" if frame_id in ("NaN", "-Infinity") else "bad_field"
    assert answer["code"] == code and "id" not in answer


@pytest.mark.parametrize("frame_id", [7, -3, 2.5, "abc", True])
def test_an_ordinary_id_is_repeated(frame_id):
    server, _ = make_server()
    [answer] = replies(server.handle(Request(1, {"type": "check_user", "user": "alice",
                                                 "id": frame_id}, "h"), 0.0))
    assert answer == {"type": "ok", "id": frame_id}


@pytest.mark.parametrize("port", [0, 70000, 2 ** 70, -1, "6001", 6001.0, True])
def test_an_address_with_a_port_out_of_range_is_ignored_by_the_client(port):
    run = logged_in()
    run.do(Incoming(70, hello(70)))
    run.do(Incoming(70, {"type": "address", "user": "bob", "host": "10.0.0.2", "port": port,
                         "key": "k"}))
    assert "bob" not in run.client.peers.addresses
    assert not any(isinstance(a, OpenLink) for a in run.type("private bob hi"))


def test_a_seq_beyond_the_largest_is_not_shown_by_the_client():
    client = ChatClient(Settings(5000, client_id="c"))
    client.user, client.proof = "bob", "p"
    client.handle(Accepted(1, "n1"), 0.0)
    client.handle(Incoming(1, hello(1, key="p", user="bob")), 0.0)
    actions = client.handle(Incoming(1, {"type": "message", "from": "a", "text": "x",
                                         "seq": MAX_SEQ + 1}), 0.0)
    assert not any(type(a).__name__ == "Show" and a.kind == "message" for a in actions)


def test_a_socket_that_cannot_be_made_is_a_failed_connect(monkeypatch):
    reactor = Reactor(VirtualClock(), log=lambda text: None)
    recorder = Recorder()

    def no_descriptors(*args, **kwargs):
        raise OSError(errno.EMFILE, "Too many open files")
    monkeypatch.setattr(socket, "socket", no_descriptors)
    reactor.connect("127.0.0.1", 9, recorder)
    monkeypatch.undo()
    reactor.connect("127.0.0.1", 70000, recorder)
    pump(reactor, lambda: len(recorder.closed) == 2)
    assert recorder.closed == ["Too many open files", "bad address"]
