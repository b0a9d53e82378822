"""What must outlive a crash, in SQLite: the messages as a log, each recipient's cursor into it,
each sender's counter of messages taken (so a retry is not a second message), block lists,
lockouts, and the store's identity.

The log. A pass's accepted messages are one record (one row): their lines as delivered, and
who each is for. A message has one number, shared by all its recipients, and is stored and
encoded once, however many receive it. A recipient's acknowledgement moves its cursor
("delivered up to N"), one row per user, instead of deleting a row per message. A record is
deleted once every cursor has passed all of it, and rewritten smaller once three quarters of it
is passed (so one message that waits a week keeps only itself, not its whole pass, on the
disk). What waits for whom is indexed in memory (log_index.py: 24 bytes a delivery), rebuilt
from the log and the cursors at open; a message's bytes are read back from its record when
needed.

Measured before choosing (tests/measure_log.py, 256 messages a pass, each commit synced): a row
per delivery cost 3.2 us a message (2.3 of CPU), a record per pass in SQLite 1.6 (0.85), an
append-only file of checksummed records 1.3 (0.5). The file is 0.35 us of CPU a message
cheaper; SQLite keeps the cursors, counters and block lists in the same atomic commit, cuts a
torn tail itself, rewrites a record in place, and carries the disk-full behaviour and its tests
over unchanged. At a target of 300k messages a second (3.3 us each) 0.35 us matters, but less
than a second file format with its own recovery, compaction and cursor log: SQLite it is.

Writes wait in one transaction until `commit()`, so the glue makes a whole loop pass durable
with one disk sync before that pass's replies go out. Every write is also kept in a journal
until a commit succeeds: when a commit fails (a full disk, say), the transaction is rolled back
and the journal written again into a new one, so nothing is dropped and the next commit takes
it all once the disk has room. Meanwhile `commit()` raises StoreUnavailable, and so does any
call that cannot be served consistently: the caller answers "unavailable", never a yes.

What a start refuses to open, and the notes and copies left for the next start, are in
store_files.py: this module decides when to look, that one looks and writes.
"""
import collections
import errno
import json
import os
import secrets
import sqlite3
import time

import store_files as files
from log_index import LogIndex
from protocol import MAX_SEQ, encode_text
from senders import Senders
from store_files import DEFAULT_LOG_PAGES, PAGE_BYTES, RESERVE, SMALL_LOG_PAGES

# the highest seq_floor taken: a wall clock centuries ahead (in microseconds, past 2**53 near
# the year 2255) would number every message from then on beyond what JSON's numbers hold,
# for good; so numbers start at most here (the year 2112), leaving 2**52 of them
SEQ_FLOOR_MAX = MAX_SEQ // 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS log (
    first_seq INTEGER PRIMARY KEY,
    recipients TEXT NOT NULL,
    lines BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS cursors (
    user TEXT PRIMARY KEY,
    upto INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS senders (
    user TEXT NOT NULL,
    client TEXT NOT NULL,
    number INTEGER NOT NULL,
    taken TEXT NOT NULL,
    reply TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (user, client)
);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS lockouts (
    name TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    locked_until REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS blocks (
    user TEXT NOT NULL,
    target TEXT NOT NULL,
    PRIMARY KEY (user, target)
);
"""

JOURNAL_MAX = 100_000       # writes held for a disk that refuses them; past it, new ones are
                            # refused too (the memory they hold stays bounded)
RECORDS_CACHED = 16         # records whose lines are kept in memory after a read
LOCK_WAIT_S = 5.0           # opening waits this long for another holder of the file to let go:
                            # a server restarted while the last one is still stopping
LOCK_POLL_S = 0.1           # ... asking again this often
LOOK_EVERY_S = 1.0          # a store looks at its files this often, idle too
COMPACT_S = 1.0             # cursors are written, and passed records deleted, at most this
                            # often: a crash forgets at most this much of acknowledgements, and
                            # clients drop what they get again by its number
COUNTER_BYTES = 48          # a sender's counter on the disk besides its text: its numbers,
                            # SQLite's row and index headers (and its key twice: in the row and
                            # in the primary key's index), counted in the store's byte quota
FRAME_BYTES = PAGE_BYTES + 24   # a page in the write-ahead log, with its frame header
_NOBODY = frozenset()       # the block list of a user who blocks nobody
_to_json = encode_text      # compact JSON text, by the C encoder built once (protocol.py)


def _recipients_json(messages):
    """A record's recipients, (seq, names) for each message, as stored: [[seq, names], ...],
    where a message for the same names as the message before it is [seq] alone. A run of
    broadcasts (chat_server) names its recipients once: 300 broadcasts to 100 users were
    30,000 names to encode and write."""
    entries, last = [], None
    for seq, names in messages:
        entries.append([seq] if names is last or names == last else [seq, names])
        last = names
    return _to_json(entries)


def _recipients(text):
    """[(seq, names)] of a record's stored recipients (_recipients_json's, or a list of
    [seq, names] as records were written before)."""
    found, names = [], None
    for entry in json.loads(text):
        if len(entry) > 1:
            names = entry[1]
        found.append((entry[0], names))
    return found


class StoreUnavailable(Exception):
    """The store cannot do this now (its disk is full, say); nothing kept before is lost."""


class Store:
    """The log of messages, cursors, counters and block lists; nothing durable before commit()."""

    def __init__(self, path=":memory:", clock=None, sync="full", seq_floor=0,
                 max_pages=None, new_identity=None, exclusive=False, lock_wait_s=LOCK_WAIT_S):
        """sync "full": a commit is on the disk before it returns (a power cut loses nothing
        committed; 0.3 ms a commit here). "normal": a commit survives the server's crash,
        kill -9 included, but a power cut or OS crash may lose the last ones (SQLite's WAL
        with synchronous=NORMAL; the file stays consistent either way).

        Times in and out are the core's (monotonic seconds); `clock` (now() and wall()) turns
        them into wall-clock times on the disk, which outlive a restart. Without a clock they
        are kept as given. Numbers start at `seq_floor` at least (server.py gives the wall
        clock in microseconds, so a wiped or restored store never numbers below one before
        it). `max_pages` caps the file, for tests of a full disk. A new store is named
        `new_identity`, or at random.

        `exclusive` (the server's): the file stays locked from open to close, so no other
        process reads or writes it meanwhile (a second server on the same data directory
        fails at its start, after `lock_wait_s` for the first to let go, instead of both
        writing), and a commit makes six system calls fewer (the WAL's file locks; its index is
        kept in memory, not in a shared file).
        """
        if sync not in ("full", "normal"):
            raise ValueError(f"sync must be 'full' or 'normal', not {sync!r}")
        self._clock = clock
        self._wall_offset = None    # wall-clock minus monotonic seconds; None: read it again
        self._pass_at = None        # this pass's `"at"` for the lines it keeps; None: read it
        self._path, self._sync, self._exclusive, self._lock_wait_s, self._max_pages = (
            path, sync, exclusive, lock_wait_s, max_pages)
        files.take_rewritten(path)
        files.refuse_emptied(path)
        files.refuse_marked_damaged(path)
        files.refuse_rescued(path)
        files.refuse_foreign_log(path)
        files.refuse_damaged_log(path)
        new = path != ":memory:" and not os.path.lexists(path)
        self.created = new          # this open made the store: no file was at its path
        self._db = self._file = self._wal = self._wal_id = None
        self._homeless = False      # (see _open; here for a close after a failed open)
        self._log_bytes = None      # the log's size past which the store empties it (_limit_log)
        self._reserve = None if path == ":memory:" else path + RESERVE
        self._reserve_bytes = 0     # the reserve's size, on a small disk (_keep_reserve)
        self._reserve_held = False
        self._reserve_trouble = None    # why the reserve cannot be made, said once
        self._rescued = None            # a homeless store's copy elsewhere (rescue)
        # while the store has no connection (one closed to put a file in place, the next not
        # yet open): a descriptor of a complete copy of every commit, the last one there may
        # be (a trial's rm -rf took the file between the close and the open: all lost)
        self._last_copy = None
        self._rescues = 0               # copies tried since the loss was found
        try:
            self._open(seq_floor, new_identity)
        except BaseException as exc:
            self.close()
            if new and "locked" not in str(exc):    # (not another server's, begun meanwhile)
                # a new store begun and not finished (its disk full, a trial's) left an empty
                # file, which every later start refused as emptied: it goes, with its log
                for made in (path, path + "-wal", path + "-shm", path + "-journal",
                             path + RESERVE):
                    if os.path.lexists(made):
                        os.remove(made)
            raise

    def _open(self, seq_floor, new_identity):
        """The rest of __init__: the database opened and read."""
        path = self._path
        self._db = self._connect()
        # user -> the set of names they block, and target -> the set of names blocking it:
        # all read at open (a few per user at most), kept in step with every write; users who
        # block nobody share one empty set (a set is 216 bytes)
        self._blocks = {}
        self._blocked_by = {}
        # the same block lists, to read without a call (a direct message asks; is_blocked is
        # the way to ask elsewhere)
        self.block_lists = self._blocks
        self._lockouts = {}         # name -> (failures, locked until or None), all read at open
        self._journal = []          # [written, method, args]: every write since the last commit
        self._lost = False          # the transaction was rolled back: write the journal again
        self.failing = None         # why the last commit failed, while commits fail; else None
        self._db.executescript(_SCHEMA)
        if self._db.execute("SELECT 1 FROM meta WHERE name = 'rescued_from'").fetchone():
            # a rescued copy moved in (files.mark_rescued): the store now, and its log its own
            self._db.execute("DELETE FROM meta WHERE name = 'rescued_from'")
        self._db.commit()
        self._limit_pages(self._db)
        # the file, and its write-ahead log once a commit has made it, to tell at each commit
        # that both are still there (_rehome, _relog); never closed before the database is
        # (closing any descriptor of a file drops the process's locks on it)
        self._file = None if path == ":memory:" else os.open(path, os.O_RDONLY)
        self._wal = None
        # which files those are, (inode, device), for the check after each commit that the
        # paths still name them (_names): an open file's never changes, so it is read once
        self._file_id = files.identity(self._file)
        self._wal_id = None
        self._homeless = False      # the file went: commits fail until it is written again
        self._damaged = None        # why the file cannot be trusted: every commit fails, for good
        self._file_size = 0         # its largest size seen: SQLite never makes it smaller here
        self._wal_size = 0          # its log's too: SQLite never shrinks the log while the
                                    # connection is open, but for our own checkpoint (_relog)
        self._looked_at = None      # when an idle store last looked at its files
        self.look_wanted = False    # the glue asks the next commit to look, idle or not
        self.notice = None          # what the operator should read in the log, once
        if path != ":memory:":
            self._reserve_bytes, held = files.reserve_bytes(path)
            self._reserve_held = held >= self._reserve_bytes > 0
            if os.path.exists(path + "-wal"):
                # a log left by a crash (SQLite copies it into the file at a close): copied now,
                # before anything writes. Reopened, SQLite cannot tell which of its pages were
                # copied already, and a write goes on after its last page: a full disk refused
                # every write, every restart too (a trial's)
                self.checkpoint()
        self.identity = self._identity(new_identity or secrets.token_hex(8))
        self._index = LogIndex()    # what waits for whom (log_index.py), rebuilt at open
        self._cached = collections.OrderedDict()   # first seq -> {seq: line}, recently read
        self.senders = Senders()    # which numbered messages each client had taken
        self._counter_bytes = {}    # (user, client) -> its counter's bytes on the disk, which
                                    # the byte quota counts (4,096 client ids' took 850 KB of
                                    # a trial's 2 MiB disk, the quota a third of it, uncounted)
        self._compacted_at = None   # when cursors and compaction were last written
        self._migrate()
        # Numbers are given here. The highest ever given is recorded, so a number is never
        # reused (a crash forgets only numbers of uncommitted messages, which nobody was sent).
        self._next_seq = max(self._highest_seq_given() + 1, min(seq_floor, SEQ_FLOOR_MAX))
        self.committed_seq = self._next_seq - 1     # numbers up to this are on the disk
        self._load()
        self._keep_reserve()
        # the index's own, bound once: the core asks them for every message
        self.box, self.crowded, self.takes, self.room_for_one = (
            self._index.box, self._index.crowded, self._index.takes, self._index.room_for_one)

    def _connect(self):
        """A connection to the store's file, set up as the store uses it; a file another
        holds is waited for up to lock_wait_s, in steps of LOCK_POLL_S (a wait inside SQLite
        is one Ctrl-C cannot end: an operator's took 5 s to)."""
        give_up_at = time.monotonic() + self._lock_wait_s
        while True:
            try:
                return self._connect_once(min(LOCK_POLL_S, self._lock_wait_s))
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= give_up_at:
                    raise

    def _connect_once(self, wait_s):
        db = sqlite3.connect(self._path, timeout=wait_s)
        try:
            # a deleted record's pages go to the free list as they are. This SQLite may be
            # built to zero each one (secure_delete on, as Debian's is), and in WAL mode each
            # zeroed page is a page of the log: a compaction after a reader took the backlog
            # wrote the whole store into the log, in one transaction (a trial's 2 MiB disk: a
            # 1 MB log, 4 times its limit, the store near empty). FAST zeroes what the delete
            # writes anyway, no more
            db.execute("PRAGMA secure_delete=FAST")
            if self._path != ":memory:":
                if self._exclusive:     # (before WAL: then it never makes the shared index)
                    db.execute("PRAGMA locking_mode=EXCLUSIVE")
                # WAL: a crash leaves each committed pass whole, and readers never block the
                # writer
                db.execute("PRAGMA journal_mode=WAL")
                db.execute(f"PRAGMA synchronous={self._sync.upper()}")
                self._limit_log(files.checkpoint_pages(self._path), db)
        except BaseException:
            # closed, or it holds its exclusive lock for good: every later try to open the
            # file waited 5 s on it, the whole server with it (a trial's read-only directory)
            db.close()
            raise
        return db

    def _limit_log(self, pages, db=None):
        """SQLite copies the log into the file each `pages` pages of it. On a small disk (fewer
        than DEFAULT_LOG_PAGES) the store also empties the log itself once it holds more
        (commit): SQLite's own copy is tried after a commit and never empties the file, which
        keeps the room its largest transaction took, and on a disk too full to grow the file
        it fails without a word while the log goes on growing (a trial's)."""
        (db or self._db).execute(f"PRAGMA wal_autocheckpoint={pages}")
        self._log_bytes = 32 + pages * FRAME_BYTES if pages < DEFAULT_LOG_PAGES else None

    def _limit_pages(self, db):
        if self._max_pages is not None:
            db.execute(f"PRAGMA max_page_count={int(self._max_pages)}").fetchall()

    def _identity(self, identity):
        """This store's name, made with it (`identity` if it is new): a new or wiped store
        never looks like an old one to the clients that knew the old one."""
        row = self._db.execute("SELECT value FROM meta WHERE name = 'identity'").fetchone()
        if row is not None:
            return row[0]
        self._db.execute("INSERT INTO meta (name, value) VALUES ('identity', ?)", (identity,))
        self._db.commit()
        return identity

    def _highest_seq_given(self):
        db = self._db
        known = [value for (value,) in db.execute(
            "SELECT value FROM counters WHERE name = 'last_seq'").fetchall()]
        # the counter is written with compactions only: records written since hold higher
        known += [json.loads(recipients)[-1][0] for (recipients,) in db.execute(
            "SELECT recipients FROM log ORDER BY first_seq DESC LIMIT 1")]
        return max(known, default=0)

    def _migrate(self):
        """A data directory from before the log kept a row per delivery (`inbox`) and a reply
        per request (`replies`): its waiting messages become one record, numbers kept."""
        db = self._db
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
        if "inbox" not in tables:
            return
        rows = db.execute("SELECT seq, recipient, frame, offline FROM inbox ORDER BY seq")
        recipients, lines = [], []
        for seq, recipient, frame, offline in rows:
            message = json.loads(frame)
            message["seq"] = seq
            if offline:
                message["offline"] = True
            recipients.append([seq, [recipient]])
            lines.append(_line(message))
        last = [value for (value,) in db.execute("SELECT MAX(seq) FROM inbox") if value]
        if "sqlite_sequence" in tables:
            last += [value for (value,) in db.execute(
                "SELECT seq FROM sqlite_sequence WHERE name = 'inbox'")]
        if recipients:
            db.execute("INSERT INTO log (first_seq, recipients, lines) VALUES (?, ?, ?)",
                       (recipients[0][0], _to_json(recipients), b"".join(lines)))
        if last:
            db.execute("INSERT OR REPLACE INTO counters (name, value) VALUES ('last_seq', "
                       "MAX(?, COALESCE((SELECT value FROM counters WHERE name = 'last_seq'), "
                       "0)))", (max(last),))
        db.execute("DROP TABLE inbox")
        db.execute("DROP TABLE IF EXISTS replies")
        db.commit()

    def _load(self):
        """Rebuild what waits for whom from the log and the cursors; delete what is passed."""
        db = self._db
        self._index = LogIndex(db.execute("SELECT user, upto FROM cursors"))
        self._lockouts = {name: (failures, self._from_wall(until) if until else None)
                          for name, failures, until in db.execute(
                              "SELECT name, failures, locked_until FROM lockouts")}
        for user, target in db.execute("SELECT user, target FROM blocks"):
            self._blocks.setdefault(user, set()).add(target)
            self._blocked_by.setdefault(target, set()).add(user)
        rows = db.execute("SELECT user, client, number, taken, reply, at FROM senders "
                          "ORDER BY at").fetchall()
        self._count_counters(rows, ())
        self.senders.load((user, client, number, taken, json.loads(reply), self._from_wall(at))
                          for user, client, number, taken, reply, at in rows)
        for first, recipients, lines in db.execute(
                "SELECT first_seq, recipients, lines FROM log ORDER BY first_seq").fetchall():
            self._index.load(first, [(seq, names, len(wire)) for (seq, names), wire
                                     in zip(_recipients(recipients), _lines(lines))], len(lines))
        if self._index.dead:            # passed, but not yet deleted: now
            self._write_passed()
            self._db.commit()
            self._journal.clear()

    # -- writing: through the journal, so a rolled-back transaction can be written again ------

    def _write(self, method, *args):
        """Carry out one write, `method(*args)`, in the open transaction, journaled first."""
        self._ready()
        self._journal_has_room()
        entry = [False, method, args]
        self._journal.append(entry)
        try:
            result = method(*args)
        except sqlite3.Error as exc:
            self._lose(exc)
            raise StoreUnavailable(str(exc)) from None
        entry[0] = True
        return result

    def _journal_has_room(self):
        """StoreUnavailable if the journal is full. Writes held in memory (the open record,
        cursors, counters) ask before they are taken from where they wait, so a full journal
        leaves them there instead of dropping them."""
        if len(self._journal) >= JOURNAL_MAX:
            raise StoreUnavailable("too many writes are waiting for the disk")

    def _ready(self):
        """After a rollback, write the journal again before anything reads or writes (and
        after a connection closed to put a file in place, open it again first)."""
        if not self._lost:
            return
        if self._db is None:
            self._open_again()
        try:
            for entry in self._journal:
                written, method, args = entry
                method(*args)
                entry[0] = True
        except sqlite3.Error as exc:
            self._lose(exc)
            raise StoreUnavailable(str(exc)) from None
        self._lost = False

    def _lose(self, exc):
        """A statement or commit failed: roll back; the journal is written again next time.
        A full disk: the log is copied into the file and emptied, if there is room for what
        that adds to the file, and copied from then on every SMALL_LOG_PAGES (a trial's log
        filled a disk, and its room came back only to be filled by the log again)."""
        self.failing = str(exc)
        if files.corrupt(exc):
            self._damage(f"the store's file is damaged ({exc})")
        try:
            if self._db is not None and self._db.in_transaction:
                self._db.rollback()
        except sqlite3.Error:
            pass        # the connection rolls back when it can; the journal is what counts
        self._lost = True
        if files.disk_full(exc) and self._db is not None:
            try:
                self._limit_log(SMALL_LOG_PAGES)
            except sqlite3.Error:
                pass    # (the next full commit asks again)
            self.checkpoint()

    def checkpoint(self):
        """Copy what the log holds into the file and empty the log (SQLite's TRUNCATE
        checkpoint), giving its room back to the disk -> True if it did.

        The copy grows the file by the pages the log holds past its end (the store grew
        since the last copy), and only a copy that is done gives the log's room back: on a
        full disk it could never be done (a trial's 2 MiB disk: 28 pages short, for good, a
        restart too). There, the reserve is deleted to make that room: the log holds no more
        than the reserve's pages when a commit begins (commit), so the copy fits, unless one
        pass wrote more than that (a reviewer's 110 messages of 3.9 KB at once did).
        A later commit makes the reserve again, once the disk has room for it."""
        done = self._truncate_log()
        if done is None and self._release_reserve():
            done = self._truncate_log()
        if not done:
            return False
        self._wal_size = 0      # (ours: not a log cut short)
        return True

    def _truncate_log(self):
        """PRAGMA wal_checkpoint(TRUNCATE) -> True if done, False if busy or failed, None if
        the disk was full."""
        try:
            busy, _, _ = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.Error as exc:
            return None if files.disk_full(exc) else False
        return not busy

    def _keep_reserve(self):
        """On a small disk, a file of `files.reserve_bytes` beside the store's, made when it is
        missing and the disk has room for it and as much again; deleted by a checkpoint that
        the disk has no room for. One deleted by someone else is made again (one stat a
        commit, on a small disk only): missed, the next full disk had no room to give."""
        if not self._reserve_bytes:
            return
        if self._reserve_held:
            if os.path.isfile(self._reserve):
                return
            self._reserve_held = False
            self.notice = (f"the reserve {self._reserve} was deleted while the server ran: it "
                           f"keeps room for the store on this small disk, and is made again "
                           f"once the disk has room for it")
        try:
            disk = os.statvfs(os.path.dirname(os.path.abspath(self._path)))
            if disk.f_bavail * disk.f_frsize < 2 * self._reserve_bytes:
                return
            descriptor = os.open(self._reserve, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                files.allocate(descriptor, self._reserve_bytes)
            finally:
                os.close(descriptor)
        except OSError as exc:
            self._release_reserve()     # (a part of one holds nothing worth keeping)
            if exc.errno != errno.ENOSPC and self._reserve_trouble != str(exc):
                # (a directory at its name, say: without a word, no room was kept)
                self._reserve_trouble = str(exc)
                self.notice = (f"the reserve {self._reserve} cannot be made ({exc}): on this "
                               f"small disk, once it is full, the store may find no room to "
                               f"take writes again")
            return
        self._reserve_trouble = None
        self._reserve_held = True

    def _release_reserve(self):
        """Delete the reserve -> True if there was one to give its room back."""
        self._reserve_held = False
        if self._reserve is None:
            return False
        try:
            os.remove(self._reserve)
        except OSError:         # (none there: a wiped directory, or never made)
            return False
        return True

    def _sql(self, sql, params):
        return self._db.execute(sql, params).fetchall()

    def _sql_many(self, sql, rows):
        self._db.executemany(sql, rows)

    # -- the log: messages kept until every recipient's cursor passes them -------------------

    def keep(self, recipients, head):
        """Keep one message for `recipients` (names): `head` is its JSON line without the
        closing brace (bytes); the store numbers it. -> (seq, the line as delivered).

        It waits in this pass's open record, written in one statement at the next commit.
        With a clock the line says when (`at`, wall-clock seconds, one time for a pass), so
        a message read at the next login can be shown with the time it was sent."""
        seq = self._next_seq
        self._next_seq = seq + 1
        at = self._pass_at
        if at is None:
            at = self._pass_at = b"" if self._clock is None else (
                b',"at":%.3f' % self._clock.wall())
        wire = b'%s%s,"seq":%d}\n' % (head, at, seq)
        self._index.add(seq, recipients, wire)
        return seq, wire

    @property
    def head(self):
        """The highest number given so far."""
        return self._next_seq - 1

    @property
    def total(self):
        """[messages in the log, bytes on the disk]: the log's records as the disk holds them
        (a record every cursor passed, until it is deleted) and the senders' counters."""
        return self._index.total

    def count_waiting(self, recipient):
        """How many messages wait for `recipient`."""
        return self._index.count(recipient)

    def names_waiting(self):
        """The recipients that messages wait for."""
        return [name for name in list(self._index.boxes) if self._index.count(name)]

    def count_all_waiting(self):
        """How many deliveries wait, for everyone (each recipient's counts)."""
        return self._index.deliveries

    def waiting(self, recipient, after=0, limit=-1):
        """`recipient`'s unacknowledged messages after seq `after`, at most `limit` (-1: all):
        [(seq, line as delivered)], oldest first."""
        found, lines, lines_first = [], None, None
        for seq, first in self._index.positions(recipient, after, limit):
            if first != lines_first:
                lines, lines_first = self._lines_of(first), first
            found.append((seq, lines[seq]))
        return found

    def acknowledge(self, recipient, upto):
        """`recipient` has shown every message up to seq `upto`: its cursor moves there.

        The cursor reaches the disk with the next compaction (see commit): an acknowledgement
        is not worth a disk sync of its own (0.3 ms here). Lost in a crash, those messages go
        out again, and the client, which knows their numbers, does not show them twice.
        """
        self._index.acknowledge(recipient, upto)

    def _lines_of(self, first):
        """{seq: line} of record `first`, from memory when open or read lately."""
        record = self._index.records[first]
        if record is self._index.open:
            return dict(zip(record.seqs, record.wires))
        lines = self._cached.get(first)
        if lines is None:
            lines = self._read_record(first)
            self._cache(first, lines)
        else:
            self._cached.move_to_end(first)
        return lines

    def _cache(self, first, lines):
        self._cached[first] = lines
        if len(self._cached) > RECORDS_CACHED:
            self._cached.popitem(last=False)

    def _read_record(self, first):
        """{seq: line} of a written record, from the disk."""
        self._ready()
        rows = self._read("SELECT recipients, lines FROM log WHERE first_seq = ?", (first,))
        recipients, lines = rows[0]
        return {seq: wire for (seq, _), wire in zip(_recipients(recipients), _lines(lines))}

    def _write_open(self):
        """Write this pass's open record, if any, as one row."""
        if self._index.open is None:
            return
        self._ready()               # (before the record is taken: a failure leaves it open)
        self._journal_has_room()
        record = self._index.take_open()
        recipients = _recipients_json(zip(record.seqs, record.recipients))
        lines = b"".join(record.wires)
        self._cache(record.first, dict(zip(record.seqs, record.wires)))
        self._index.written(record)
        self._write(self._sql, "INSERT INTO log (first_seq, recipients, lines) VALUES (?, ?, ?)",
                    (record.first, recipients, lines))

    def _write_passed(self):
        """Write the cursors that moved, and delete or shrink the records they passed; and
        the highest number given, which the log alone may no longer show once records go.
        Left for a later commit while the journal has no room for it: it only frees space."""
        index = self._index
        self._ready()
        if len(self._journal) + 3 + len(index.thin) > JOURNAL_MAX:
            return
        self._write(self._sql, "INSERT OR REPLACE INTO counters (name, value) "
                    "VALUES ('last_seq', ?)", (self._next_seq - 1,))
        if index.moved:
            moved, index.moved = list(index.moved.items()), {}
            self._write(self._sql_many, "INSERT OR REPLACE INTO cursors (user, upto) "
                        "VALUES (?, ?)", moved)
        if index.dead:
            dead = [(first,) for first in index.take_dead()]
            for (first,) in dead:
                self._cached.pop(first, None)
            self._write(self._sql_many, "DELETE FROM log WHERE first_seq = ?", dead)
        for first in sorted(index.thin):
            self._rewrite(first)
            index.thin.discard(first)

    def _rewrite(self, first):
        """Rewrite record `first` with only the messages some cursor has not passed."""
        self._ready()
        rows = self._read("SELECT recipients, lines FROM log WHERE first_seq = ?", (first,))
        kept, lines = [], []
        for (seq, names), wire in zip(_recipients(rows[0][0]), _lines(rows[0][1])):
            if self._index.still_waits(seq, names):
                kept.append((seq, names))
                lines.append(wire)
        blob = b"".join(lines)
        self._index.rewritten(first, len(kept), len(blob))
        self._cached.pop(first, None)
        self._write(self._sql, "UPDATE log SET recipients = ?, lines = ? WHERE first_seq = ?",
                    (_recipients_json(kept), blob, first))

    def _read(self, sql, params):
        if self._db is None:
            self._open_again()
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            if files.corrupt(exc):
                self._damage(f"the store's file is damaged ({exc})")
            raise StoreUnavailable(str(exc)) from None

    def _damage(self, why):
        """The file cannot be trusted (found corrupt, or cut short under the server): every
        commit fails from now on, though one to the log alone would still succeed (a trial's
        store, truncated under the server, said malformed to a login and yes to 20 messages
        after it, none of which a restart could read)."""
        if self._damaged is None:
            self._damaged = (f"{why}: nothing more is stored. Restore the data directory from "
                             f"a backup (or move it away to start a new store) and restart "
                             f"the server")
            unmarked = files.mark_damaged(self._path, why)
            if unmarked is not None:
                # (a trial's read-only directory took no note, and the restart went on
                # without a word, 20 messages answered ok gone)
                self._damaged += (f". The note that would stop a restart from using it "
                                  f"could not be written ({unmarked}): do not restart the "
                                  f"server on this directory as it is")
        self.failing = self._damaged

    # -- senders' counters (senders.py), written with the messages they answer ---------------

    def _write_senders(self):
        if not self.senders:
            return
        self._ready()
        self._journal_has_room()
        rows, gone = self.senders.take_moved()
        rows = [(user, client, number, taken, encode_text(reply), self._to_wall(at))
                for user, client, number, taken, reply, at in rows]
        self._count_counters(rows, gone)
        self._write(self._upsert_senders, rows, gone)

    def _count_counters(self, rows, gone):
        """The byte quota counts the counters as written: `rows` (user, client, number,
        taken, reply, at) as stored, and `gone` [(user, client)] deleted."""
        counted, change = self._counter_bytes, 0
        for user, client, _, taken, reply, _ in rows:
            size = 2 * (len(user) + len(client)) + len(taken) + len(reply) + COUNTER_BYTES
            change += size - counted.get((user, client), 0)
            counted[(user, client)] = size
        for key in gone:
            change -= counted.pop(key, 0)
        self._index.count_bytes(change)

    def _upsert_senders(self, rows, gone):
        self._db.executemany("INSERT OR REPLACE INTO senders "
                             "(user, client, number, taken, reply, at) "
                             "VALUES (?, ?, ?, ?, ?, ?)", rows)
        self._db.executemany("DELETE FROM senders WHERE user = ? AND client = ?", gone)

    # -- times: the core's monotonic seconds in memory, wall-clock seconds on the disk -------

    def _to_wall(self, at):
        return at + self._offset()

    def _from_wall(self, at):
        return at - self._offset()

    def _offset(self):
        """The clocks' difference, read at most once a pass (a commit makes it stale): a
        wall-clock step counts from the next pass."""
        if self._wall_offset is None:
            self._wall_offset = 0.0 if self._clock is None else (
                self._clock.wall() - self._clock.now())
        return self._wall_offset

    # -- lockouts ------------------------------------------------------------------------

    def lockout(self, name):
        """(wrong passwords in a row, blocked until or None) for `name`; (0, None) when clean.
        From memory: every login asks, and a query each time cost 11 us twice a login."""
        return self._lockouts.get(name, (0, None))

    def set_lockout(self, name, failures, locked_until):
        """Record `name`'s wrong passwords in a row, and until when it is blocked (or None)."""
        wall_until = 0.0 if locked_until is None else self._to_wall(locked_until)
        self._write(self._sql, "INSERT OR REPLACE INTO lockouts (name, failures, locked_until) "
                               "VALUES (?, ?, ?)", (name, failures, wall_until))
        self._lockouts[name] = (failures, locked_until)

    def clear_lockout(self, name):
        self._write(self._sql, "DELETE FROM lockouts WHERE name = ?", (name,))
        self._lockouts.pop(name, None)

    # -- block lists ---------------------------------------------------------------------

    def blocks(self, user):
        """The names that `user` blocks (a set to read, not to change)."""
        return self._blocks.get(user, _NOBODY)

    def blockers(self, target):
        """The names that block `target` (a set to read, not to change): a broadcast asks
        this once, not each recipient whether it blocks the sender."""
        return self._blocked_by.get(target, _NOBODY)

    def names_in_blocks(self):
        """Every name a block list holds, on either side."""
        return self._blocks.keys() | self._blocked_by.keys()

    def add_block(self, user, target):
        """`user` blocks `target` from now on; blocking twice changes nothing."""
        self._write(self._sql, "INSERT OR IGNORE INTO blocks (user, target) VALUES (?, ?)",
                    (user, target))
        self._blocks[user] = self.blocks(user) | {target}
        self._blocked_by[target] = self.blockers(target) | {user}

    def remove_block(self, user, target):
        """`user` no longer blocks `target`."""
        self._write(self._sql, "DELETE FROM blocks WHERE user = ? AND target = ?",
                    (user, target))
        self._blocks[user] = (self.blocks(user) - {target}) or _NOBODY
        self._blocked_by[target] = (self.blockers(target) - {user}) or _NOBODY

    def is_blocked(self, user, target):
        """True when `user` blocks `target`."""
        return target in self._blocks.get(user, _NOBODY)

    # -- commits ---------------------------------------------------------------------------

    def commit(self, acks_too=False):
        """Make every write since the last commit durable, as one transaction (one disk
        sync); StoreUnavailable if it could not (the writes stay for the next try).

        Moved cursors, and the records they passed, go along at most every COMPACT_S (with a
        clock; without one, with every commit that writes anything else), or when `acks_too`
        (at shutdown). With a clock they also go alone once COMPACT_S has passed (wake_at
        says when), so an idle server's last acknowledgements are not held until its next
        message; without one they wait for a commit that writes anything else."""
        self._wall_offset = None
        self._pass_at = None
        if self._damaged is not None:
            self.failing = self._damaged
            raise StoreUnavailable(self._damaged)
        # (each step's own test, here: a pass that wrote nothing, most of them, makes no call)
        if self._lost:
            self._ready()
        if self._index.open is not None:
            self._write_open()
        if self.senders:
            self._write_senders()
        busy = self._db.in_transaction or bool(self._journal)
        if acks_too or self._compaction_due(alone=not busy):
            self._write_passed()
        elif not busy and not self._homeless:
            if self.look_wanted or self.failing is not None:
                # an idle store's look (wake_at); or one failing with nothing to write, which
                # only a look can tell is well again (a log deleted, whose copy into the file
                # failed after a commit: the store, open again, said it failed for good, and
                # every write was refused until a restart, a trial's)
                if self._clock is not None:
                    self._looked_at = self._clock.now()
                self._look_at_files()
                self.failing = None
            return
        if self._wal is not None:
            # looked at before the commit too: SQLite writes the commit at the offset it knows,
            # past the hole, and the log is as long again after it
            self._log_not_cut(os.fstat(self._wal).st_size)
        try:
            self._db.commit()
        except sqlite3.Error as exc:
            self._lose(exc)
            raise StoreUnavailable(str(exc)) from None
        self._journal.clear()
        self._look_at_files()
        self.failing = None
        self.committed_seq = self._next_seq - 1
        if self._log_bytes is not None and self._wal_size > self._log_bytes:
            # (on a small disk: SQLite's own copy, just tried, leaves the log's room held, or
            # failed: emptied here, the log begins each commit within the reserve's pages)
            self.checkpoint()
        if self._reserve_bytes:
            self._keep_reserve()

    def _look_at_files(self):
        """After each commit, and at an idle store's look (wake_at): is the file still at its
        path, and whole, and its log beside it? A file gone is written again (_rehome), a log
        gone is copied into the file (_relog); a file cut short is damage, for good (_damage).
        One stat each: 2 us of a ping-pong message's commit."""
        self.look_wanted = False
        if self._file is None:
            return
        there = files.named(self._path, self._file_id)
        if self._homeless and there is not None:
            self._home_again()
        elif self._homeless or there is None:
            self._rehome()
            return
        if there.st_size < self._file_size:
            self._damage(f"the store's file was cut short while the server ran (to "
                         f"{there.st_size:,} bytes, from {self._file_size:,})")
            raise StoreUnavailable(self._damaged)
        self._file_size = there.st_size
        log = None if self._wal is None else files.named(self._path + "-wal", self._wal_id)
        if log is None:
            self._find_log()
        else:
            self._log_not_cut(log.st_size)

    def _log_not_cut(self, size):
        """The log is `size` bytes now: SQLite never shrinks it while the connection is open
        (but for our own checkpoint, _relog), so one shorter than before was cut under the
        server, and every commit since the last checkpoint with it: damage. (A trial emptied
        the log under a running server: it said yes to 200 more messages, and a restart had
        lost all 300, or found the file malformed.)"""
        if size < self._wal_size:
            self._damage(f"the store's write-ahead log was cut short while the server ran (to "
                         f"{size:,} bytes, from {self._wal_size:,})")
            raise StoreUnavailable(self._damaged)
        self._wal_size = size

    def _find_log(self):
        """Open the write-ahead log at the first commit (a commit that wrote made it, in the
        same call); if the one held, or the one that commit made, is gone from its path,
        _relog."""
        if self._wal is None:
            try:
                self._wal = os.open(self._path + "-wal", os.O_RDONLY)
                self._wal_id = files.identity(self._wal)
                self._wal_size = os.fstat(self._wal).st_size
                return
            except FileNotFoundError:
                pass    # deleted before it was ever opened here (a trial's)
        self._relog()

    def _relog(self):
        """The write-ahead log was deleted while the server ran: the commits it holds (since
        SQLite last copied them into the store's file) would be lost to a crash, and so would
        every commit after, all written to a file no restart would find. They are copied into
        the store's file now (a checkpoint, synced), and the store opens it again, with a new
        log. Until that succeeds, StoreUnavailable."""
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            if files.named(self._path, self._file_id) is None:
                # the file went too (a data directory wiped a file at a time, its log first):
                # written again from the open store, which is never closed before a copy of
                # it is whole (a trial's rm -rf took the file between this and the reopen)
                self._rehome()
                return
            self._close_db(True)        # (kept: its file, checkpointed, holds every commit)
            self._open_db()
        except (OSError, sqlite3.Error) as exc:
            self.failing = f"the store's write-ahead log was deleted while the server ran ({exc})"
            raise StoreUnavailable(f"the store's write-ahead log was deleted while the server "
                                   f"ran, and its commits cannot be kept yet ({exc})") from None
        self.notice = (f"the store's write-ahead log was deleted while the server ran: what it "
                       f"held was copied into {self._path}, nothing lost (stop the server before "
                       f"deleting its files)")

    def _open_again(self):
        """The connection closed to put a file in place (_rehome, _relog) could not be opened
        again (no descriptor, say): every commit tries again, and fails as before until one
        succeeds (what it holds was committed and synced before it closed, in the file or in
        the complete copy `.new` that _rehome was putting in its place)."""
        try:
            if self._last_copy is not None and not os.path.lexists(self._path + ".new"):
                if not os.path.lexists(self._path):
                    self._restore_last_copy()
                elif files.named(self._path, files.identity(self._last_copy)) is None:
                    # (another file put there meanwhile: not taken for ours, as _rehome)
                    raise OSError(f"another file is at {self._path}")
            files.take_rewritten(self._path)     # (as a start would)
            self._open_db()
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailable(f"{self.failing} (tried again: {exc})") from None
        self._homeless = False
        removed = self._forget_rescue()
        self.notice = f"the store's file at {self._path} is open again, nothing lost{removed}"

    def _close_db(self, keep=False):
        """Close the connection and let go of its files. Closing, SQLite deletes its
        write-ahead log by name; any log still at the path is not this file's any more, and
        would be read into the next one opened there (a trial's came out corrupt): it goes.
        Until _open_db succeeds, there is no connection (None), and _ready opens one.
        `keep`: the file's descriptor is kept as the last copy (its commits all in it)."""
        self._db.close()
        self._db = None
        self._lost = True
        if keep:
            self._last_copy, self._file = self._file, None
        for stale in (self._path + "-wal", self._path + "-journal"):
            if os.path.lexists(stale):
                os.remove(stale)
        self._let_go_of_files()

    def _restore_last_copy(self):
        """Write the last copy back at the store's path, its directory made again if it is
        gone: as `.tmp`, synced, renamed."""
        directory = os.path.dirname(os.path.abspath(self._path))
        files.make_directory(directory)
        tmp = self._path + ".tmp"
        files.remove_quietly(tmp)
        try:
            files.copy_descriptor(self._last_copy, os.open(
                tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644))
            written = os.open(tmp, os.O_RDONLY)
        except OSError:
            files.remove_quietly(tmp)       # (a part of a copy holds the disk's room)
            raise
        # the copy written is the last copy from now on: an open that fails after this finds
        # it at the path as ours (a review's was refused as another file's, for good)
        os.close(self._last_copy)
        self._last_copy = written
        os.rename(tmp, self._path)
        files.sync_path(directory)

    def _let_go_of_files(self):
        for descriptor in (self._file, self._wal):
            if descriptor is not None:
                os.close(descriptor)
        self._file = self._wal = self._file_id = self._wal_id = None
        self._wal_size = 0

    def _open_db(self):
        """Open the file at the store's path, with a descriptor of it held as long as the
        connection (closing any descriptor of a file drops the process's locks on it). The
        last copy is let go once it is open, or is that descriptor if it is the same file."""
        descriptor, db, kept = os.open(self._path, os.O_RDONLY), None, self._last_copy
        if kept is not None and files.identity(kept) == files.identity(descriptor):
            os.close(descriptor)        # (no lock of ours is on it yet: nothing is dropped)
            descriptor = kept
        try:
            db = self._connect()
            self._limit_pages(db)
            db.execute("SELECT value FROM meta").fetchall()    # (the exclusive lock, now)
        except BaseException:
            if db is not None:          # (a failed open holds nothing: it is tried again)
                db.close()
            if descriptor != kept:
                os.close(descriptor)
            raise
        if kept is not None and kept != descriptor:
            os.close(kept)              # (another file's: no lock of the new one is dropped)
        self._file, self._db, self._last_copy = descriptor, db, None
        self._file_id = files.identity(descriptor)
        self._file_size = 0             # (another file: its size is seen at the next look)

    def _rehome(self):
        """The store's file is gone from its path (deleted, moved away, its data directory
        wiped while the server ran): the commits since went to a file no restart would find.
        What the open connection holds, those commits too, is written to a new file at the
        path, and the store goes on there, saying so in `notice`. Until that succeeds,
        StoreUnavailable: no reply says yes on a lost file. A file put at the path meanwhile
        (a restore, another server) is not overwritten: the store stays unavailable, and a
        restart takes that file.

        The copy is made as `.tmp`, synced and renamed `.new` (complete); the old connection
        closes (closing, SQLite deletes its log by name: left at the path, a restart would
        read it into the new file); then `.new` becomes the file. Killed at any point, a
        restart finds the old file, or `.new` where no file is (Store takes it), or the new
        one: every commit is in each."""
        self._homeless = True
        tmp, fresh = self._path + ".tmp", self._path + ".new"
        if os.path.lexists(self._path):
            self.failing = self._with_rescue_note(
                "the store's file was replaced while the server ran (a restore, or another "
                "server's): what this server holds is not in it")
            raise StoreUnavailable(self.failing)
        try:
            directory = os.path.dirname(os.path.abspath(self._path))
            files.make_directory(directory)
            for stale in (tmp, tmp + "-journal", tmp + "-wal"):
                if os.path.lexists(stale):
                    os.remove(stale)
            self._db.execute("VACUUM INTO ?", (tmp,))
            files.sync_path(tmp)
            os.rename(tmp, fresh)
            files.sync_path(directory)
        except (OSError, sqlite3.Error) as exc:
            for part in (tmp, tmp + "-journal"):    # (a part of a copy holds the disk's room)
                files.remove_quietly(part)
            self.failing = self._with_rescue_note(
                f"the store's file was deleted while the server ran, and cannot be written "
                f"again yet ({exc})")
            raise StoreUnavailable(self.failing) from None
        try:
            # (.new held open across the close: the last copy, whatever becomes of its name)
            self._last_copy = os.open(fresh, os.O_RDONLY)
            self._close_db()
            os.rename(fresh, self._path)
            files.sync_path(directory)
            self._open_db()
        except (OSError, sqlite3.Error) as exc:
            # (the old connection is gone: nothing is committed until a commit opens the file
            # again, _open_again, or a restart does; either takes the complete .new first)
            self.failing = f"the store's file was written again but cannot be opened yet ({exc})"
            raise StoreUnavailable(self.failing) from None
        self._homeless = False
        removed = self._forget_rescue()
        self._reserve_held = False      # (gone with the directory, perhaps: made again)
        # (moved, not deleted, a trial's data directory's old copy went unmentioned, and a
        # second server started on it as if it were a store)
        self.notice = (f"the store's file was deleted, or moved, while the server ran: written "
                       f"again at {self._path} from the open store, nothing lost{removed}. If "
                       f"it was moved, the copy moved is out of date: start no server on it. "
                       f"(Stop the server before wiping or moving its data directory.)")

    def _home_again(self):
        """The store's own file is back at its path (moved away, then back, while it could
        not be written again there: a read-only directory): it holds every commit, as the
        open store wrote to it wherever it was. A trial's was taken for another server's
        file, the store unavailable until a restart, which refused the copy left beside it."""
        self._homeless = False
        removed = self._forget_rescue()
        self.notice = (f"the store's file is back at {self._path}, nothing lost{removed} "
                       f"(stop the server before moving its files)")

    def _forget_rescue(self):
        """What the store holds is at home again: its copy elsewhere (rescue) goes -> the
        words that say so, or ""."""
        removed = ""
        if self._rescued is not None:
            files.remove_quietly(self._rescued)
            removed = f"; its copy at {self._rescued} is removed"
            self._rescued = None
        self._rescues = 0
        return removed

    def _compaction_due(self, alone):
        """True if cursors and compaction go with this commit (`alone`: it would write
        nothing else). Without a clock (as in tests), with every commit that writes anything
        else; with one, at most every COMPACT_S, and alone only when something is held. A
        commit that writes only its record touches one table: 10 us of SQLite here, against
        35 with the cursors, the counter and a delete (a ping-pong pays that per message)."""
        if self._clock is None:
            return not alone
        if alone and not self._index.holds_passed():
            return False
        now = self._clock.now()
        if self._compacted_at is not None and now - self._compacted_at < COMPACT_S:
            return False
        self._compacted_at = now
        return True

    def wake_at(self):
        """When the glue should run a pass (with a clock), or None when nothing is due: held
        cursors and compaction to write, or a look at its files every LOOK_EVERY_S, which
        that pass makes if it sets `look_wanted` (its data directory wiped while nothing
        wrote, a trial's kill -9 lost the 5 messages it held, and another's the block it had
        answered ok, in a deleted file: only a commit looked)."""
        if self._clock is None:
            return None
        held = (self._compacted_at or 0.0) + COMPACT_S if self._index.holds_passed() else None
        if self._file is None:
            return held
        look = (self._looked_at or 0.0) + LOOK_EVERY_S
        return look if held is None or look < held else held

    @property
    def homeless(self):
        """True while the store's file is gone from its path and not written again there (with
        no connection open: the last copy is not at its path)."""
        if self._last_copy is not None:     # (its own file may be at the path, not open)
            return files.named(self._path, files.identity(self._last_copy)) is None
        return self._homeless and self._db is not None

    def rescue(self):
        """A homeless store (its file deleted and not written again, for want of room or a
        writable directory, or another file put at its path) -> the path of a copy of
        everything it holds, written in the first of files.rescue_places with room for it (an
        earlier copy, if none took it now); None if none was ever written. Made when the loss
        is found, and at the stop again (acknowledgements since): from the loss on, no commit
        succeeds, and so no reply says yes. Without it, what the store held went with its last
        handle: a trial's restart after a stop had lost 238 messages answered ok."""
        if not self.homeless:
            return None
        self._rescues += 1
        at = time.gmtime(self._clock.wall() if self._clock is not None else time.time())
        stamp = time.strftime('%Y%m%d-%H%M%S', at)
        name = f"{files.rescue_prefix(self._path)}{stamp}-{self._rescues}"
        try:
            needed = (os.fstat(self._last_copy).st_size if self._db is None else
                      self._db.execute("PRAGMA page_count").fetchone()[0] * PAGE_BYTES)
        except (OSError, sqlite3.Error):
            needed = 0          # (tried anyway: a copy that fails leaves nothing)
        for directory in files.rescue_places(self._path):
            copy = os.path.join(directory, name)
            try:
                disk = os.statvfs(directory)
                if disk.f_bavail * disk.f_frsize < needed:
                    continue        # (a full disk's copy would write until it failed)
                # made here first, ours alone: a file or link another user put at a name
                # known to the second would have had the copy of every message
                os.close(os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                                 0o600))
            except OSError:
                continue
            try:
                if self._db is None:    # (the last copy: its bytes, into the file made)
                    files.copy_descriptor(self._last_copy,
                                          os.open(copy, os.O_WRONLY | os.O_NOFOLLOW))
                else:
                    self._db.execute("VACUUM INTO ?", (copy,))
                files.mark_rescued(copy, self._path)
                files.sync_path(copy)
            except (OSError, sqlite3.Error):
                for part in (copy, copy + "-journal"):     # (no copy to trust, nor litter)
                    files.remove_quietly(part)
                continue
            if self._rescued is not None:
                files.remove_quietly(self._rescued)
            self._rescued = copy
            break
        return self._rescued

    def _with_rescue_note(self, failing):
        """`failing`, and where the store is copied: made at the first failure of a loss
        only (the glue tries again every few seconds, and a large store's copy takes time)."""
        copy = self._rescued if self._rescues else self.rescue()
        if copy is None:
            return failing + "; no copy of the store could be written anywhere"
        return f"{failing}; a copy of everything the store holds is at {copy}"

    def close(self):
        """Close the database; uncommitted writes are lost."""
        if self._db is not None:
            self._db.close()
        if self._last_copy is not None:
            os.close(self._last_copy)
            self._last_copy = None
        if self._homeless and self._wal_id is not None:
            # its log, left at the path beside another file (SQLite, its file moved, copies
            # nothing and deletes nothing): read into that file at the next start, it damaged
            # it, a trial's 175 messages lost. What it held is in the copy (rescue).
            if files.named(self._path + "-wal", self._wal_id) is not None:
                files.remove_quietly(self._path + "-wal")
        self._let_go_of_files()


def _line(frame):
    """A frame as a delivered line (bytes, newline included)."""
    return (_to_json(frame) + "\n").encode("utf-8")


def _lines(blob):
    """A record's lines, each with its newline (JSON escapes every newline inside a line)."""
    return [line + b"\n" for line in blob.split(b"\n")[:-1]]
