"""What must outlive a crash, in SQLite: messages until their recipients acknowledge them, the
replies already given to numbered requests (so a retry is not a second message), block lists,
lockouts, and the store's identity.

Writes wait in one transaction until `commit()`, so the glue makes a whole loop pass durable
with one disk sync before that pass's replies go out. Every write is also kept in a journal
until a commit succeeds: when a commit fails (a full disk, say), the transaction is rolled back
and the journal written again into a new one, so nothing is dropped and the next commit takes
it all once the disk has room. Meanwhile `commit()` raises StoreUnavailable, and so does any
call that cannot be served consistently: the caller answers "unavailable", never a yes.

It also counts what waits for each recipient, and in all, for the quotas (chat_server.py).
"""
import json
import secrets
import sqlite3

from protocol import encode_text

# A sequence number is never used twice, even after deletes, so a client can tell a message
# it has shown from a new one by its number alone: the highest one given is kept in counters
# ("last_seq"), written with the rows that use it. (Data from before has AUTOINCREMENT, whose
# sqlite_sequence says the same; it cost a write to that table per row, a fifth of an insert.)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS inbox (
    seq INTEGER PRIMARY KEY,
    recipient TEXT NOT NULL,
    frame TEXT NOT NULL,
    offline INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS inbox_by_recipient ON inbox (recipient, seq);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS replies (
    sender TEXT NOT NULL,
    mid TEXT NOT NULL,
    reply TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (sender, mid)
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
_NOBODY = frozenset()       # the block list of a user who blocks nobody
_to_json = encode_text      # compact JSON, by a C encoder built once (protocol.py)


class StoreUnavailable(Exception):
    """The store cannot do this now (its disk is full, say); nothing kept before is lost."""


class Store:
    """Offline messages and block lists in SQLite; nothing is durable before commit()."""

    def __init__(self, path=":memory:", clock=None, sync="full", seq_floor=0,
                 max_pages=None, new_identity=None):
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
        """
        if sync not in ("full", "normal"):
            raise ValueError(f"sync must be 'full' or 'normal', not {sync!r}")
        self._clock = clock
        self._wall_offset = None    # wall-clock minus monotonic seconds; None: read it again
        self._db = sqlite3.connect(path)
        if path != ":memory:":
            # WAL: a crash leaves each committed pass whole, and readers never block the writer.
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={sync.upper()}")
        self._blocks = {}           # user -> the set of names they block, once read
        self._unwritten = []        # inbox rows kept but not yet written (see keep_for)
        self._acked = {}            # recipient -> seq acknowledged, not yet deleted (acknowledge)
        self._journal = []          # [written, method, args]: every write since the last commit
        self._lost = False          # the transaction was rolled back: write the journal again
        self.failing = None         # why the last commit failed, while commits fail; else None
        self._db.executescript(_SCHEMA)
        self._db.commit()
        if max_pages is not None:
            self._db.execute(f"PRAGMA max_page_count={int(max_pages)}").fetchall()
        self.identity = self._identity(new_identity or secrets.token_hex(8))
        # Numbers are given here, so a broadcast's rows go in as one statement. The highest
        # ever given is recorded, so a number deleted by an ack is never reused (a crash
        # forgets only numbers of uncommitted rows, which nobody was sent).
        self._next_seq = max(self._highest_seq_given() + 1, seq_floor)
        self.committed_seq = self._next_seq - 1     # numbers up to this are on the disk
        # What waits, per recipient and in all, as [messages, bytes] that never count too few:
        # counted at open, a kept row added at once, a delete only at the next recount (telling
        # what a delete freed took a RETURNING that tripled its cost: 2 us more per message).
        self._boxes, self.total = self._count_boxes()
        self._shrunk = set()        # recipients with deletes since their box was counted

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
        known += [seq for (seq,) in db.execute("SELECT MAX(seq) FROM inbox").fetchall()
                  if seq is not None]
        if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'").fetchone():
            known += [seq for (seq,) in db.execute(
                "SELECT seq FROM sqlite_sequence WHERE name = 'inbox'").fetchall()]
        return max(known, default=0)

    def _count_boxes(self):
        """({recipient: [messages, bytes]}, [messages, bytes] in all) of what waits."""
        boxes = {recipient: [count, size] for recipient, count, size in self._db.execute(
            "SELECT recipient, COUNT(*), SUM(LENGTH(frame)) FROM inbox GROUP BY recipient")}
        total = [sum(box[0] for box in boxes.values()), sum(box[1] for box in boxes.values())]
        return boxes, total

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
        """StoreUnavailable if the journal is full. Writes held in memory (keep_for's rows,
        acknowledgements) ask before they are taken from where they wait, so a full journal
        leaves them there instead of dropping them."""
        if len(self._journal) >= JOURNAL_MAX:
            raise StoreUnavailable("too many writes are waiting for the disk")

    def _ready(self):
        """After a rollback, write the journal again before anything reads or writes."""
        if not self._lost:
            return
        try:
            for entry in self._journal:
                written, method, args = entry
                method(*args, again=written)
                entry[0] = True
        except sqlite3.Error as exc:
            self._lose(exc)
            raise StoreUnavailable(str(exc)) from None
        self._lost = False

    def _lose(self, exc):
        """A statement or commit failed: roll back; the journal is written again next time."""
        self.failing = str(exc)
        try:
            if self._db.in_transaction:
                self._db.rollback()
        except sqlite3.Error:
            pass        # the connection rolls back when it can; the journal is what counts
        self._lost = True

    def _sql(self, sql, params, again=False):
        return self._db.execute(sql, params).fetchall()

    # -- messages: kept from acceptance until the recipient acknowledges them --------------

    def keep_for(self, recipients, frame, text=None):
        """Keep one `frame` (a dict; `text` its JSON when the caller has it) for each of
        `recipients`, [(name, offline)]. Returns their sequence numbers, in order.

        The rows wait in memory and go to SQLite in one statement at the next commit (or
        read): a statement per message was a fifth of the store's cost per message.
        """
        first = self._next_seq
        self._next_seq += len(recipients)
        text = _to_json(frame) if text is None else text
        size = len(text)
        self._unwritten.extend(
            (seq, name, text, int(offline))
            for seq, (name, offline) in zip(range(first, self._next_seq), recipients))
        boxes = self._boxes
        for name, _ in recipients:
            box = boxes.get(name)
            if box is None:
                boxes[name] = [1, size]
            else:
                box[0] += 1
                box[1] += size
        self.total[0] += len(recipients)
        self.total[1] += size * len(recipients)
        return range(first, self._next_seq)

    @property
    def head(self):
        """The highest number given so far."""
        return self._next_seq - 1

    def box(self, recipient, exact=False):
        """(messages, bytes) waiting for `recipient`, those just kept included: at least
        what waits, cheaply; what acknowledgements freed is counted only when `exact` (the
        caller asks again so, when the cheap answer is near a limit)."""
        if exact:
            self._recount([recipient])
        box = self._boxes.get(recipient)
        return (0, 0) if box is None else (box[0], box[1])

    def crowded(self, recipients, messages, size_left):
        """Those of `recipients` whose box (counted cheaply, see box) holds `messages` or more,
        or more than `size_left` bytes: the few a broadcast must look at again, exactly."""
        boxes, empty, crowded = self._boxes, (0, 0), []
        for name in recipients:
            box = boxes.get(name, empty)
            if box[0] >= messages or box[1] > size_left:
                crowded.append(name)
        return crowded

    def count_total(self):
        """[messages, bytes] waiting in all, exactly: every box acknowledgements shrank is
        counted again (each an index range, its recipient's rows only)."""
        self._recount()
        return self.total

    def _recount(self, recipients=None):
        """Count the boxes of `recipients` (None: all) from the database, if deletes shrank
        them."""
        self._write_inbox()         # held deletes first: they are what shrinks a box
        self._ready()
        shrunk = self._shrunk
        for name in list(shrunk) if recipients is None else shrunk.intersection(recipients):
            shrunk.discard(name)
            (count, size), = self._read("SELECT COUNT(*), COALESCE(SUM(LENGTH(frame)), 0) "
                                        "FROM inbox WHERE recipient = ?", (name,))
            old = self._boxes.get(name, (0, 0))
            self.total[0] += count - old[0]
            self.total[1] += size - old[1]
            if count:
                self._boxes[name] = [count, size]
            else:
                self._boxes.pop(name, None)

    def _write_kept(self):
        """Write the rows keep_for holds."""
        if self._unwritten:
            self._journal_has_room()
            rows, self._unwritten = self._unwritten, []
            self._write(self._insert_rows, rows, self._next_seq - 1)

    def _insert_rows(self, rows, last_seq, again=False):
        self._db.executemany(
            "INSERT INTO inbox (seq, recipient, frame, offline) VALUES (?, ?, ?, ?)", rows)
        self._db.execute("INSERT OR REPLACE INTO counters (name, value) VALUES ('last_seq', ?)",
                         (last_seq,))

    def _write_inbox(self):
        """Every held insert and delete, in order; before any read of the inbox."""
        self._write_kept()
        self._write_acked()

    def waiting(self, recipient, after=0, limit=-1):
        """`recipient`'s unacknowledged messages after seq `after`, at most `limit` (-1: all):
        [(seq, frame, offline)], oldest first."""
        self._write_inbox()
        self._ready()
        rows = self._read("SELECT seq, frame, offline FROM inbox WHERE recipient = ? AND seq > ? "
                          "ORDER BY seq LIMIT ?", (recipient, after, limit))
        return [(seq, json.loads(frame), bool(offline)) for seq, frame, offline in rows]

    def acknowledge(self, recipient, upto):
        """`recipient` has shown every message up to seq `upto`: forget them.

        The delete waits for the next commit that has something else to make durable: an
        acknowledgement alone is not worth a disk sync (0.3 ms here). Lost in a crash, those
        messages go out again and the client, which knows their numbers, does not show them
        twice.
        """
        if upto > self._acked.get(recipient, 0):
            self._acked[recipient] = upto

    def _write_acked(self):
        """Carry out the deletes acknowledge holds, in one statement."""
        if self._acked:
            self._journal_has_room()
            rows = list(self._acked.items())
            self._acked.clear()
            self._shrunk.update(name for name, _ in rows if name in self._boxes)
            self._write(self._delete_acked, rows)

    def _delete_acked(self, rows, again=False):
        """Delete what each recipient acknowledged: rows of (recipient, up to seq)."""
        self._db.executemany("DELETE FROM inbox WHERE recipient = ? AND seq <= ?", rows)

    def count_waiting(self, recipient):
        """How many messages wait for `recipient` (as the database says)."""
        self._write_inbox()
        self._ready()
        return self._read("SELECT COUNT(*) FROM inbox WHERE recipient = ?", (recipient,))[0][0]

    def _read(self, sql, params):
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreUnavailable(str(exc)) from None

    # -- replies to numbered requests: a retry gets the first answer again ---------------

    def first_reply(self, sender, mid, reply, at):
        """Keep `reply` (given at time `at`) as the answer to `sender`'s request `mid`, unless
        one is kept already: then return that earlier one (the request is a retry); else None.

        One statement for a new request, where a look-up and then a write took two (every
        message from client.py has a mid: 37k -> 44k messages/s, staying).
        """
        wall_at = self._to_wall(at)
        kept = self._write(self._keep_reply, sender, mid, _to_json(reply), wall_at)
        return None if kept else self.reply_for(sender, mid)

    def reply_for(self, sender, mid):
        """The reply kept for `sender`'s request `mid`, or None."""
        self._ready()
        rows = self._read("SELECT reply FROM replies WHERE sender = ? AND mid = ?", (sender, mid))
        return json.loads(rows[0][0]) if rows else None

    def _keep_reply(self, sender, mid, reply, at, again=False):
        return self._db.execute(
            "INSERT OR IGNORE INTO replies (sender, mid, reply, at) VALUES (?, ?, ?, ?)",
            (sender, mid, reply, at)).rowcount

    def forget_replies_before(self, at):
        """Drop replies older than `at`: no client retries that long."""
        self._write(self._sql, "DELETE FROM replies WHERE at < ?", (self._to_wall(at),))

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
        """(wrong passwords in a row, blocked until or None) for `name`; (0, None) when clean."""
        self._ready()
        rows = self._read("SELECT failures, locked_until FROM lockouts WHERE name = ?", (name,))
        if not rows:
            return 0, None
        failures, locked_until = rows[0]
        return failures, (self._from_wall(locked_until) if locked_until else None)

    def set_lockout(self, name, failures, locked_until):
        """Record `name`'s wrong passwords in a row, and until when it is blocked (or None)."""
        wall_until = 0.0 if locked_until is None else self._to_wall(locked_until)
        self._write(self._sql, "INSERT OR REPLACE INTO lockouts (name, failures, locked_until) "
                               "VALUES (?, ?, ?)", (name, failures, wall_until))

    def clear_lockout(self, name):
        self._write(self._sql, "DELETE FROM lockouts WHERE name = ?", (name,))

    # -- block lists ---------------------------------------------------------------------

    def blocks(self, user):
        """The names that `user` blocks (a set to read, not to change)."""
        # read once per user, then kept in step with every write: a broadcast asks once per
        # recipient, and a query each time was a fifth of the server's time
        known = self._blocks.get(user)
        if known is None:
            self._ready()
            rows = self._read("SELECT target FROM blocks WHERE user = ?", (user,))
            # most users block nobody: they share one empty set (a set is 216 bytes)
            known = self._blocks[user] = {target for (target,) in rows} or _NOBODY
        return known

    def add_block(self, user, target):
        """`user` blocks `target` from now on; blocking twice changes nothing."""
        known = self.blocks(user)
        self._write(self._sql, "INSERT OR IGNORE INTO blocks (user, target) VALUES (?, ?)",
                    (user, target))
        self._blocks[user] = known | {target}

    def remove_block(self, user, target):
        """`user` no longer blocks `target`."""
        known = self.blocks(user)
        self._write(self._sql, "DELETE FROM blocks WHERE user = ? AND target = ?",
                    (user, target))
        self._blocks[user] = (known - {target}) or _NOBODY

    def is_blocked(self, user, target):
        """True when `user` blocks `target`."""
        return target in self.blocks(user)

    # -- commits ---------------------------------------------------------------------------

    def commit(self, acks_too=False):
        """Make every write since the last commit durable, as one transaction (one disk
        sync); StoreUnavailable if it could not (the writes stay for the next try).

        Held acknowledgements go along when there is a transaction anyway, or when
        `acks_too` (at shutdown); alone they wait, and a pass that did nothing else costs
        no sync."""
        self._wall_offset = None
        self._ready()
        self._write_kept()
        if not (self._db.in_transaction or acks_too or self._journal):
            return
        self._write_acked()
        try:
            self._db.commit()
        except sqlite3.Error as exc:
            self._lose(exc)
            raise StoreUnavailable(str(exc)) from None
        self._journal.clear()
        self.failing = None
        self.committed_seq = self._next_seq - 1

    def close(self):
        """Close the database; uncommitted writes are lost."""
        self._db.close()
