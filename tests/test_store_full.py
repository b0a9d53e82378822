"""A full disk, made real with SQLite's max_page_count: a commit that fails raises, keeps every
write for the next try, and the glue answers what it could not commit with `unavailable`,
never a yes; when room returns the store commits everything once, by itself."""
import json
import os
import pathlib
import socket
import subprocess
import sys
import types

import pytest

import protocol
import senders
import storage
from chat_server import ChatServer, Settings
from passwords import load_credentials
from reactor import Reactor
from timers import VirtualClock
from reactor_helpers import pump
from realprocs import mounted_tmpfs
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


def test_commits_that_fail_and_recover_again_and_again_are_logged_as_they_stand(served):
    """On a disk all but full a commit failed, the checkpoint made room, the retry committed,
    and the next pass failed again: an operator's trial's log said both lines twice a second;
    folded, a later one's said "commits again" for a minute in which every write was refused.
    A failure after a recovery is said at once; a recovery again within the minute waits,
    and the minute's end says how the store stands."""
    reactor, clock, store, port, lines = served
    alice = Caller(port)
    token = ask(reactor, alice, {"type": "login", "user": "columbia", "password": "116bway",
                                 "stay": True, "id": 1})["token"]

    def fail_then_recover(n, recover=True):
        pages, = store._db.execute("PRAGMA page_count").fetchone()
        room(store, pages)                  # the disk full again, where the file stands now
        fill(store)
        answer = ask(reactor, alice, {"type": "message", "token": token, "to": "seas",
                                      "text": TEXT, "mid": f"m-{n}", "id": n})
        assert answer["code"] == "unavailable"
        if recover:
            room(store)
            clock.advance(COMMIT_RETRY_MAX_S)
            pump(reactor, lambda: store.failing is None)

    def said():
        return [line for line in lines
                if line.startswith(("cannot commit", "the store commits again"))]

    fail_then_recover(2)
    assert len(said()) == 2 and "cannot commit" in said()[0]
    assert said()[1] == "the store commits again"
    fail_then_recover(3, recover=False)
    assert len(said()) == 3 and "cannot commit" in said()[2]     # said at once: as it stands
    room(store)
    clock.advance(COMMIT_RETRY_MAX_S)
    pump(reactor, lambda: store.failing is None)
    for n in range(4, 6):
        fail_then_recover(n)
    assert len(said()) == 3                 # within the minute: the log's last word waits ...
    for beat in range(3):                   # (the session kept alive through the minute)
        assert ask(reactor, alice, {"type": "heartbeat", "token": token,
                                    "id": 100 + beat})["type"] == "ok"
        clock.advance(20.0)
    pump(reactor, lambda: len(said()) == 4)
    assert said()[3] == ("the store commits again (after 5 changes of state since the last "
                         "line on it)")     # ... and then says how it stands
    fail_then_recover(6, recover=False)
    assert len(said()) == 5 and "cannot commit" in said()[4]


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


# -- a small disk: what the store's log takes of it, and getting its room back ---------------
# (a trial's 2 MiB disk was filled by SQLite's log and never recovered: every login was
# answered unavailable, after a kill -9 and a restart too, the store near empty)

def frames_in_log(tmp_path):
    """The write-ahead log's size, in pages as it holds them."""
    wal = tmp_path / "chat.sqlite3-wal"
    size = wal.stat().st_size if wal.exists() else 0
    return max(0, size - 32) // storage.FRAME_BYTES


def test_a_compaction_writes_to_the_log_only_what_it_changes(tmp_path, monkeypatch):
    """Where SQLite is built to zero each freed page (secure_delete on, as Debian's is), a
    compaction after a reader took the backlog wrote every page of the store into the log, in
    one transaction: a trial's log grew to 4 times its limit on a 2 MiB disk."""
    connect = storage.sqlite3.connect

    def zeroing(*args, **kwargs):           # (this SQLite's build default, wherever it runs)
        db = connect(*args, **kwargs)
        db.execute("PRAGMA secure_delete=ON")
        return db
    monkeypatch.setattr(storage.sqlite3, "connect", zeroing)
    store = Store(str(tmp_path / "chat.sqlite3"), exclusive=True)
    for n in range(60):                     # 60 records of 4 KB: 120 pages
        last = keep(store, ["bob"], {"n": n, "text": "x" * 4000})
        store.commit()
    assert store.checkpoint() and frames_in_log(tmp_path) == 0
    store.acknowledge("bob", last)
    store.commit(acks_too=True)             # every record deleted
    assert store.total == [0, 0] and frames_in_log(tmp_path) < 16
    store.close()


def test_on_a_small_disk_the_log_never_keeps_more_than_its_limit(tmp_path, monkeypatch):
    """SQLite copies the log into the file after a commit that passes its limit, but keeps the
    log's file as long as its largest transaction made it: that room was never given back."""
    monkeypatch.setattr(os, "statvfs", lambda path: types.SimpleNamespace(
        f_bavail=2 * 2 ** 20 // 4096, f_frsize=4096))          # 2 MiB: a limit of 64 pages
    store = Store(str(tmp_path / "chat.sqlite3"), exclusive=True)
    for n in range(200):                    # one pass of 200 messages: 100 pages or more
        keep(store, ["bob"], {"n": n, "text": "x" * 2000})
    store.commit()
    assert frames_in_log(tmp_path) <= 64
    for n in range(10):
        keep(store, ["bob"], {"n": n, "text": "after"})
        store.commit()
        assert frames_in_log(tmp_path) <= 64
    assert store.failing is None and store.count_waiting("bob") == 210
    store.close()


def test_the_byte_quota_counts_the_senders_counters(tmp_path):
    """Each (user, client id) keeps a counter on the disk (64 a user): 4,096 took 850 KB of a
    trial's 2 MiB disk, uncounted by the quota, a third of it."""
    path = str(tmp_path / "chat.sqlite3")
    store = Store(path)
    for k in range(64):
        store.senders.taken("alice", f"client-{k:02d}", 1, {"type": "ok"}, 0.0)
    store.commit()
    counted = store.total[1]
    assert counted >= 64 * (2 * len("aliceclient-00") + len('{"type":"ok"}'))
    store.close()
    store = Store(path)
    assert store.total[1] == counted        # read back as written
    store.senders.forget_before("alice", 1.0)
    store.commit()
    assert store.total == [0, 0]
    store.close()


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs at tmp_path/data."""
    with mounted_tmpfs(tmp_path / "data"):
        yield tmp_path / "data"


FILL_UNTIL_FULL = """
import json, os, sys
sys.path.insert(0, {root!r})
import protocol
from storage import Store, StoreUnavailable
path = sys.argv[1]
store = Store(path, exclusive=True)
committed = []
for n in range(10000):          # a third of the disk: the quota's (server.fitted_store_bytes)
    seqs = [store.keep(["bob"], protocol.line_head({{"n": n, "text": "x" * 900}}))[0]
            for _ in range(4)]
    store.commit()
    committed += seqs
    if store.total[1] > 2 * 2 ** 20 // 3:
        break
# the rest of the disk taken (by anything: here a file of another program's), up to its end
with open(os.path.join(os.path.dirname(path), "other"), "wb", buffering=0) as other:
    try:
        while True:
            other.write(b"o" * 4096)
    except OSError:
        pass
said = "ok"
for n in range(1000):           # then messages until a commit fails (the log's file may hold
    seq = store.keep(["bob"], protocol.line_head({{"n": n, "text": "x" * 900}}))[0]
    try:                        # room for a few first)
        store.commit()
    except StoreUnavailable as exc:
        said = str(exc)
        break
    committed.append(seq)
print(json.dumps({{"committed": committed, "said": said}}), flush=True)
if sys.argv[2] == "crash":
    os._exit(0)                 # a kill -9: nothing closed, the log left as it is
for _ in range(3):              # the glue tries again by itself
    try:
        store.commit()
        said = "ok"
        break
    except StoreUnavailable as exc:
        said = str(exc)
store.acknowledge("bob", committed[-1])     # the reader takes what waited
try:
    store.commit(acks_too=True)
    store.keep(["carol"], protocol.line_head({{"text": "after"}}))
    store.commit()
    said = "ok"
except StoreUnavailable as exc:
    said = str(exc)
print(json.dumps({{"after": said, "waiting": [seq for seq, _ in store.waiting("bob")]}}))
store.close()
"""


@pytest.mark.parametrize("then", ["goes on", "crash"])
def test_a_small_disk_filled_up_takes_writes_again_running_and_after_a_crash(small_disk, then):
    """The disk full while the log held pages past the file's end: SQLite's copy of the log
    into the file, the only way to give the log's room back, needed room to grow the file,
    and had none; from then on every commit failed, and so every login (a trial's, 28 pages
    short), and after a kill -9 and a restart too. The reserve gives the copy its room."""
    root = str(pathlib.Path(__file__).resolve().parent.parent)
    path = small_disk / "chat.sqlite3"
    done = subprocess.run([sys.executable, "-c", FILL_UNTIL_FULL.format(root=root), str(path),
                           then], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    committed = lines[0]["committed"]
    assert "full" in lines[0]["said"]                   # the disk was full
    if then == "goes on":
        assert lines[1]["after"] == "ok"                # it commits again, by itself
        assert committed[-1] < lines[1]["waiting"][0]   # (the last one, kept and written)
    store = Store(str(path), exclusive=True)            # a restart
    waiting = [seq for seq, _ in store.waiting("bob")]
    if then == "crash":
        assert waiting == committed                     # nothing answered ok is lost
        store.acknowledge("bob", committed[-1])
        store.commit(acks_too=True)
    keep(store, ["carol"], {"text": "after the restart"})
    store.commit()
    assert store.failing is None
    store.close()


def test_a_reserve_deleted_while_running_is_made_again_and_one_that_cannot_be_is_said(
        small_disk):
    path = str(small_disk / "chat.sqlite3")
    reserve = path + storage.RESERVE
    store = Store(path, exclusive=True)
    assert os.path.isfile(reserve)                      # a small disk: room kept
    os.remove(reserve)                                  # an operator's tidying
    keep(store, ["bob"], {"text": "one"})
    store.commit()
    assert os.path.isfile(reserve)
    assert "was deleted while the server ran" in store.notice
    store.notice = None
    os.remove(reserve)
    os.mkdir(reserve)                                   # a directory at its name
    keep(store, ["bob"], {"text": "two"})
    store.commit()
    assert "cannot be made" in store.notice and "Is a directory" in store.notice
    store.notice = None
    keep(store, ["bob"], {"text": "three"})
    store.commit()
    assert store.notice is None                         # said once
    os.rmdir(reserve)
    keep(store, ["bob"], {"text": "four"})
    store.commit()
    assert os.path.isfile(reserve)
    assert len(store.waiting("bob")) == 4               # (nothing of it lost on the way)
    store.close()
