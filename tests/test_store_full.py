"""A full disk, made real with SQLite's max_page_count: a commit that fails raises, keeps every
write for the next try, and the glue answers what it could not commit with `unavailable`,
never a yes; when room returns the store commits everything once, by itself."""
import json
import pathlib
import socket

import pytest

import protocol
import senders
import storage
from chat_server import ChatServer, Settings
from passwords import load_credentials
from reactor import Reactor
from timers import VirtualClock
from reactor_helpers import pump
from replay import counting_secrets
from server_glue import COMMIT_RETRY_MAX_S, ServerGlue
from storage import Store, StoreUnavailable

CREDENTIALS = pathlib.Path(__file__).resolve().parent.parent / "credential.txt"
TEXT = "x" * 3000          # a few of these fill the small store below


def full_store(tmp_path, pages=40):
    """A store on disk whose file may not grow past `pages` pages."""
    return Store(str(tmp_path / "chat.sqlite3"), max_pages=pages)


def keep(store, recipients, frame):
    """Keep one message for `recipients` -> its number."""
    return store.keep(recipients, protocol.line_head(frame))[0]


def fill(store, recipient="bob"):
    """Keep messages until a commit fails -> (the numbers committed, those not)."""
    committed = []
    for n in range(1000):
        seqs = [keep(store, [recipient], {"n": n, "text": TEXT})]
        try:
            store.commit()
        except StoreUnavailable:
            return committed, seqs
        committed += seqs
    raise AssertionError("the store never filled")


def room(store, pages=100_000):
    """Space returns: the file may grow again."""
    store._db.execute(f"PRAGMA max_page_count={pages}").fetchall()


# -- the store --------------------------------------------------------------------------------

def test_a_full_disk_has_the_log_copied_into_the_file_and_emptied_and_kept_small(tmp_path):
    """A trial's log filled a disk; its room, given back, was filled by the log again."""
    store = full_store(tmp_path)
    fill(store)
    wal = tmp_path / "chat.sqlite3-wal"
    assert store._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == (
        storage.SMALL_LOG_PAGES)
    room(store)
    store.commit()                          # what waited goes, and the log copied
    assert store.checkpoint() and wal.stat().st_size == 0
    keep(store, ["bob"], {"text": "after"})
    store.commit()                          # an emptied log is ours, not one cut short
    assert store.failing is None


@pytest.mark.parametrize("room_bytes, pages", [
    (10 ** 12, storage.DEFAULT_LOG_PAGES), (2 * 2 ** 20, 64), (2 ** 16, storage.SMALL_LOG_PAGES)])
def test_the_log_is_copied_into_the_file_at_an_eighth_of_a_small_disks_room(
        tmp_path, monkeypatch, room_bytes, pages):
    """(a trial's 2 MiB disk was filled by the log alone, after 30 KB of messages)"""
    import os
    import types
    monkeypatch.setattr(os, "statvfs", lambda path: types.SimpleNamespace(
        f_bavail=room_bytes // 4096, f_frsize=4096))
    store = Store(str(tmp_path / "chat.sqlite3"))
    assert store._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == pages
    store.close()



def test_a_failed_commit_raises_keeps_its_writes_and_the_next_one_takes_them(tmp_path):
    store = full_store(tmp_path)
    committed, failed = fill(store)
    assert committed and store.failing and "full" in store.failing
    assert store.committed_seq == committed[-1]
    assert store.box("bob")[0] == len(committed) + len(failed)     # the kept one counts
    with pytest.raises(StoreUnavailable):
        store.commit()                       # still no room: it says so again
    room(store)
    store.commit()
    assert store.failing is None and store.committed_seq == failed[-1]
    store.close()
    again = Store(str(tmp_path / "chat.sqlite3"))
    assert [seq for seq, _ in again.waiting("bob")] == committed + failed     # durable, once
    assert again.box("bob")[0] == len(committed) + len(failed)


def test_every_kind_of_write_survives_a_failed_commit(tmp_path):
    store = full_store(tmp_path)
    committed, failed = fill(store)
    room(store)                              # room for the writes below, then none again
    store.acknowledge("bob", committed[0])
    store.add_block("alice", "carol")
    store.set_lockout("dave", 2, None)
    store.senders.taken("alice", "c", 1, {"type": "ok"}, 1.0)
    store._db.execute("PRAGMA max_page_count=1").fetchall()    # (no smaller than it is)
    for _ in range(20):
        keep(store, ["bob"], {"text": TEXT * 20})
    with pytest.raises(StoreUnavailable):
        store.commit()
    room(store)
    store.commit()
    store.close()
    again = Store(str(tmp_path / "chat.sqlite3"))
    assert [seq for seq, _ in again.waiting("bob")][:len(committed) - 1 + len(failed)] == \
        committed[1:] + failed
    assert again.blocks("alice") == {"carol"} and again.lockout("dave") == (2, None)
    assert again.senders.seen("alice", "c", 1) is senders.LAST
    assert again.senders.reply_to_last("alice", "c") == {"type": "ok"}
    assert again.box("bob")[0] == len(committed) - 1 + len(failed) + 20   # the ack counted once


def test_the_journal_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(storage, "JOURNAL_MAX", 3)
    store = full_store(tmp_path)
    for n in range(3):
        store.set_lockout(f"u{n}", 1, None)
    with pytest.raises(StoreUnavailable, match="too many writes"):
        store.set_lockout("u9", 1, None)
    store.commit()
    store.set_lockout("u9", 1, None)        # a commit empties it


def test_writes_held_in_memory_wait_out_a_full_journal(tmp_path, monkeypatch):
    """Kept rows and acknowledgements wait where they are while the journal is full: they
    are neither dropped nor written twice."""
    store = Store(str(tmp_path / "chat.sqlite3"))
    seqs = [keep(store, ["bob"], {"n": n}) for n in range(3)]
    store.commit()
    monkeypatch.setattr(storage, "JOURNAL_MAX", 1)
    store.set_lockout("u1", 1, None)        # the journal is full
    store.acknowledge("bob", seqs[1])
    later = [keep(store, ["carol"], {"n": 2})]
    store.senders.taken("carol", "c", 1, {"type": "ok"}, 0.0)
    with pytest.raises(StoreUnavailable, match="too many writes"):
        store.commit()
    monkeypatch.setattr(storage, "JOURNAL_MAX", 100)
    store.commit()
    store.close()
    again = Store(str(tmp_path / "chat.sqlite3"))
    assert [seq for seq, _ in again.waiting("bob")] == seqs[2:]
    assert [seq for seq, _ in again.waiting("carol")] == later
    assert again.senders.seen("carol", "c", 1) is senders.LAST


# -- the glue: what the clients hear ----------------------------------------------------------

class Caller:
    """A client on one staying connection: send frames, read replies and pushes."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setblocking(False)
        self.frames = []
        self._buffer = b""

    def send(self, frame):
        self.sock.sendall(protocol.encode(frame))

    def poll(self):
        try:
            self._buffer += self.sock.recv(1 << 20)
        except BlockingIOError:
            pass
        *lines, self._buffer = self._buffer.split(b"\n")
        self.frames += [json.loads(line) for line in lines]
        return self.frames

    def reply(self, frame_id):
        return next((f for f in self.frames if f.get("id") == frame_id), None)


@pytest.fixture
def served(tmp_path):
    clock = VirtualClock()
    reactor = Reactor(clock, log=lambda text: None)
    store = full_store(tmp_path)
    core = ChatServer(load_credentials(CREDENTIALS), store,
                      Settings(user_rate_per_s=0, address_rate_per_s=0),
                      make_secret=counting_secrets())
    lines = []
    glue = ServerGlue(reactor, core, store, lines.append)
    port = glue.listen("127.0.0.1", 0).port
    yield reactor, clock, store, port, lines
    reactor.close_all()


def ask(reactor, caller, frame):
    caller.send(frame)
    pump(reactor, lambda: caller.poll() and caller.reply(frame["id"]))
    return caller.reply(frame["id"])


def test_no_yes_goes_out_for_what_could_not_be_committed(served):
    reactor, clock, store, port, lines = served
    alice = Caller(port)
    token = ask(reactor, alice, {"type": "login", "user": "columbia", "password": "116bway",
                                 "stay": True, "id": 1})["token"]
    answers = {}
    for n in range(2, 300):
        frame = {"type": "message", "token": token, "to": "seas", "text": TEXT,
                 "mid": f"m-{n}", "id": n}
        answers[n] = ask(reactor, alice, frame)
        if answers[n]["type"] == "error":
            break
    refused = answers[n]
    assert (refused["code"], refused["id"], refused["seconds"]) == ("unavailable", n, 1)
    assert any("cannot commit" in line for line in lines)
    # reads, heartbeats and the rest still work
    assert ask(reactor, alice, {"type": "heartbeat", "token": token, "id": 1000})["type"] == "ok"
    assert ask(reactor, alice, {"type": "online", "token": token, "id": 1001})["type"] == "online"
    again = ask(reactor, alice, {"type": "message", "token": token, "to": "seas",
                                 "text": TEXT, "mid": "m-1002", "id": 1002})
    assert again["code"] == "unavailable"            # nothing new while commits fail
    room(store)
    clock.advance(COMMIT_RETRY_MAX_S)               # the glue tries again by itself
    pump(reactor, lambda: store.failing is None)
    assert any("the store commits again" in line for line in lines)
    retried = ask(reactor, alice, {"type": "message", "token": token, "to": "seas",
                                   "text": TEXT, "mid": f"m-{n}", "id": 2000})
    assert retried["type"] == "ok"                  # the kept write, recognised: not twice
    oks = [k for k, answer in answers.items() if answer["type"] == "ok"] + [n]
    texts = [seq for seq, _ in store.waiting("seas")]
    assert len(texts) == len(oks)                   # every yes is stored, exactly once


def test_a_broadcast_whose_commit_failed_reaches_each_receiver_once_after_the_recovery(served):
    """Its staying receivers' deliveries (one DeliverEach) wait for a commit that succeeds,
    then go out in order: nobody sees it before it is durable, or twice after the retry."""
    reactor, clock, store, port, lines = served
    callers, tokens = {}, {}
    for user, password in [("columbia", "116bway"), ("seas", "summerisover"),
                           ("google", "hasglasses")]:
        callers[user] = Caller(port)
        tokens[user] = ask(reactor, callers[user], {"type": "login", "user": user, "stay": True,
                                                    "password": password, "id": 1})["token"]
    sender, receivers = callers["columbia"], [callers["seas"], callers["google"]]

    def broadcast(n, frame_id):
        return ask(reactor, sender, {"type": "broadcast", "token": tokens["columbia"],
                                     "text": f"{n} {TEXT}", "mid": f"b-{n}", "id": frame_id})

    def shown(caller):
        return [f["text"].split()[0] for f in caller.poll() if f.get("type") == "broadcast"]

    for n in range(2, 300):
        if broadcast(n, n)["type"] == "error":
            break
    refused = n
    assert refused > 2                                  # some went through first
    before = [str(k) for k in range(2, refused)]
    pump(reactor, lambda: all(shown(r) == before for r in receivers))
    room(store)
    clock.advance(COMMIT_RETRY_MAX_S)
    pump(reactor, lambda: store.failing is None)
    everything = before + [str(refused)]
    pump(reactor, lambda: all(shown(r) == everything for r in receivers))
    assert broadcast(refused, 2000)["type"] == "ok"     # the retry: its kept write, not twice
    assert broadcast(refused + 1, 2001)["type"] == "ok"
    everything.append(str(refused + 1))
    pump(reactor, lambda: all(shown(r) == everything for r in receivers))
