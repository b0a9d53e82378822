"""floor_server.py, bench.py's yardstick: it serves the staying scenarios' requests, keeps
every message it says yes to in a committed row before the yes leaves, and sends nothing of
a pass whose commit failed. Driven pass by pass in this process, over real sockets."""
import json
import socket
import sqlite3

import pytest

from floor_server import FloorServer

WAIT_S = 10.0       # bound on any read in these tests


_CLIENTS = []       # the test's own sockets, closed after it


@pytest.fixture
def floor(tmp_path):
    credentials = tmp_path / "credentials.txt"
    credentials.write_text("ann pw1\nbob pw2\ncid pw3\n", encoding="utf-8")
    server = FloorServer(str(tmp_path), str(credentials))
    yield server
    server.close()
    while _CLIENTS:
        _CLIENTS.pop().close()


def _lines(server, sock, count):
    """Serve passes until `sock` has `count` more lines -> them, decoded."""
    got = b""
    sock.setblocking(False)
    for _ in range(1000):           # bounded: each pass waits at most 10 ms
        server.serve_pass(0.01)
        try:
            got += sock.recv(65536)
        except BlockingIOError:
            pass
        if got.count(b"\n") >= count:
            break
    sock.setblocking(True)
    assert got.count(b"\n") == count, got
    return [json.loads(line) for line in got.splitlines()]


def _login(server, name, password):
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT_S)
    _CLIENTS.append(sock)
    sock.sendall(json.dumps({"type": "login", "user": name, "password": password,
                             "stay": True, "id": 1}).encode() + b"\n")
    (welcome,) = _lines(server, sock, 1)
    assert welcome["type"] == "welcome" and welcome["id"] == 1
    return sock, welcome["token"]


def test_messages_and_broadcasts_are_kept_then_delivered_and_answered(floor):
    ann, ann_token = _login(floor, "ann", "pw1")
    bob, _ = _login(floor, "bob", "pw2")
    cid, _ = _login(floor, "cid", "pw3")
    requests = [{"type": "message", "token": ann_token, "to": "bob", "text": 'hi "bob"',
                 "id": 2},
                {"type": "broadcast", "token": ann_token, "text": "all", "id": 3},
                {"type": "broadcast", "token": ann_token, "text": "ears", "id": 4}]
    ann.sendall(b"".join(json.dumps(r).encode() + b"\n" for r in requests))
    replies = _lines(floor, ann, 3)
    assert [(r["type"], r["id"]) for r in replies] == [("ok", 2), ("ok", 3), ("ok", 4)]
    assert replies[0]["stored"] is False
    to_bob = _lines(floor, bob, 3)
    assert [(m["type"], m["from"], m["text"]) for m in to_bob] == [
        ("message", "ann", 'hi "bob"'), ("broadcast", "ann", "all"), ("broadcast", "ann", "ears")]
    assert [m["seq"] for m in to_bob] == [1, 2, 3]
    assert [(m["text"], m["seq"]) for m in _lines(floor, cid, 2)] == [("all", 2), ("ears", 3)]
    # what was said yes to is in the log, as it was delivered, with its recipients
    [(first, recipients, kept)] = floor.db.execute("SELECT * FROM log").fetchall()
    assert first == 1 and kept.splitlines() == [json.dumps(m, separators=(",", ":")).encode()
                                                for m in to_bob]
    assert recipients.split("\n") == ["bob", "2-3:bob,cid"]


def test_acknowledgements_are_kept_as_cursors_and_logout_closes(floor):
    bob, bob_token = _login(floor, "bob", "pw2")
    floor.cursors_at = float("-inf")       # due now, not a second after the last write
    bob.sendall(b'{"type":"ack","seq":7}\n'
                + json.dumps({"type": "logout", "token": bob_token, "id": 2}).encode() + b"\n")
    (reply,) = _lines(floor, bob, 1)
    assert reply == {"type": "ok", "id": 2}
    assert floor.db.execute("SELECT * FROM cursors").fetchall() == [("bob", 7)]
    bob.settimeout(WAIT_S)
    assert bob.recv(1) == b""       # closed once its reply was sent
    assert "bob" not in floor.online


def test_bad_lines_are_refused_and_the_rest_served(floor):
    ann, ann_token = _login(floor, "ann", "pw1")
    ann.sendall(b'not json\n{"type":"message","token":"nobody","to":"bob","text":"x","id":2}\n'
                + json.dumps({"type": "message", "token": ann_token, "to": "bob", "text": "x",
                              "id": 3}).encode() + b"\n")
    refused, unknown_token, stored = _lines(floor, ann, 3)
    assert refused["type"] == unknown_token["type"] == "error"
    assert stored == {"type": "ok", "stored": True, "id": 3}    # bob is not online


class _FailingCommits:
    """The floor's database, whose commits fail (a full disk)."""

    def __init__(self, db):
        self.db = db

    def __getattr__(self, name):
        return getattr(self.db, name)

    def commit(self):
        raise sqlite3.OperationalError("database or disk is full")


def test_a_failed_commit_sends_no_yes_and_no_delivery(floor):
    ann, ann_token = _login(floor, "ann", "pw1")
    bob, _ = _login(floor, "bob", "pw2")
    floor.db = _FailingCommits(floor.db)
    ann.sendall(json.dumps({"type": "message", "token": ann_token, "to": "bob", "text": "x",
                            "id": 2}).encode() + b"\n")
    with pytest.raises(sqlite3.OperationalError):
        for _ in range(1000):       # bounded: until the pass that reads the message
            floor.serve_pass(0.01)
    for sock in (ann, bob):
        sock.setblocking(False)
        with pytest.raises(BlockingIOError):
            sock.recv(1)
