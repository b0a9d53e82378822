"""Accounts and durable chat state: the credentials file and a SQLite store.

The credentials file is the course's `credential.txt`: one `name password`
pair per line. The Store keeps in SQLite everything that must outlive a crash:
every accepted message until its recipient acknowledges it, the replies already
given to numbered requests (so a retry is not a second message), block lists and
lockouts. Its writes wait in one transaction until `commit()`, so the glue can
make a whole loop pass durable with one disk sync before that pass's replies go out.
"""
import json
import sqlite3

from passwords import is_hashed, parse_hash, valid_name
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


_NOBODY = frozenset()   # the block list of a user who blocks nobody


_to_json = encode_text      # compact JSON, by a C encoder built once (protocol.py)


class CredentialsError(Exception):
    """The credentials file cannot be used; the message never holds a password."""


def _account_lines(path):
    """Yield (line_number, fields) for each line that is not blank or a comment."""
    with open(path, encoding="utf-8") as lines:
        try:
            for number, line in enumerate(lines, start=1):
                fields = line.split()
                if fields and not fields[0].startswith("#"):
                    yield number, fields
        except UnicodeDecodeError:
            # Decoding runs ahead in blocks, so no exact line number is known here.
            raise CredentialsError(f"{path}: not valid UTF-8") from None


def load_credentials(path):
    """Path of a `name password` file -> {name: stored entry}; CredentialsError if malformed.

    An entry is a plain password (the course's form) or `scrypt$<salt>$<hash>` (passwords.py).
    """
    passwords = {}
    for number, fields in _account_lines(path):
        # Quote only the field count: a malformed line may hold a password.
        if len(fields) != 2:
            raise CredentialsError(
                f"{path}, line {number}: expected 'name password', got {len(fields)} fields")
        name, password = fields
        if name in passwords:
            raise CredentialsError(f"{path}, line {number}: duplicate user {name!r}")
        if not valid_name(name):
            raise CredentialsError(f"{path}, line {number}: not a valid user name")
        if is_hashed(password):
            try:
                parse_hash(password)
            except ValueError as exc:
                raise CredentialsError(f"{path}, line {number}: malformed hash: {exc}") from None
        passwords[name] = password
    return passwords


class Store:
    """Offline messages and block lists in SQLite; nothing is durable before commit()."""

    def __init__(self, path=":memory:", clock=None, sync="full"):
        """sync "full": a commit is on the disk before it returns (a power cut loses nothing
        committed; 0.3 ms a commit here). "normal": a commit survives the server's crash,
        kill -9 included, but a power cut or OS crash may lose the last ones (SQLite's WAL
        with synchronous=NORMAL; the file stays consistent either way).

        Times in and out are the core's (monotonic seconds); `clock` (now() and wall()) turns
        them into wall-clock times on the disk, which outlive a restart. Without a clock they
        are kept as given."""
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
        self._db.executescript(_SCHEMA)
        self._db.commit()
        # Numbers are given here, so a broadcast's rows go in as one statement. The highest
        # ever given is recorded, so a number deleted by an ack is never reused (a crash
        # forgets only numbers of uncommitted rows, which nobody was sent).
        self._next_seq = self._highest_seq_given() + 1

    def _highest_seq_given(self):
        db = self._db
        known = [value for (value,) in db.execute(
            "SELECT value FROM counters WHERE name = 'last_seq'")]
        known += [seq for (seq,) in db.execute("SELECT MAX(seq) FROM inbox") if seq is not None]
        if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'").fetchone():
            known += [seq for (seq,) in db.execute(
                "SELECT seq FROM sqlite_sequence WHERE name = 'inbox'")]
        return max(known, default=0)

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
        self._unwritten.extend(
            (seq, name, text, int(offline))
            for seq, (name, offline) in zip(range(first, self._next_seq), recipients))
        return range(first, self._next_seq)

    def _write_kept(self):
        """Write the rows keep_for holds."""
        if self._unwritten:
            rows, self._unwritten = self._unwritten, []
            self._db.executemany(
                "INSERT INTO inbox (seq, recipient, frame, offline) VALUES (?, ?, ?, ?)", rows)
            self._db.execute("INSERT OR REPLACE INTO counters (name, value) VALUES ('last_seq', ?)",
                             (self._next_seq - 1,))

    def _write_inbox(self):
        """Every held insert and delete, in order; before any read of the inbox."""
        self._write_kept()
        self._write_acked()

    def waiting(self, recipient, after=0, limit=-1):
        """`recipient`'s unacknowledged messages after seq `after`, at most `limit` (-1: all):
        [(seq, frame, offline)], oldest first."""
        self._write_inbox()
        rows = self._db.execute(
            "SELECT seq, frame, offline FROM inbox WHERE recipient = ? AND seq > ? "
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
        """Carry out the deletes acknowledge holds."""
        if self._acked:
            rows = list(self._acked.items())
            self._acked.clear()
            self._db.executemany("DELETE FROM inbox WHERE recipient = ? AND seq <= ?", rows)

    def count_waiting(self, recipient):
        """How many messages wait for `recipient`."""
        self._write_inbox()
        (count,) = self._db.execute(
            "SELECT COUNT(*) FROM inbox WHERE recipient = ?", (recipient,)).fetchone()
        return count

    # -- replies to numbered requests: a retry gets the first answer again ---------------

    def reply_for(self, sender, mid):
        """The reply given to `sender`'s request numbered `mid`, or None."""
        row = self._db.execute(
            "SELECT reply FROM replies WHERE sender = ? AND mid = ?", (sender, mid)).fetchone()
        return None if row is None else json.loads(row[0])

    def first_reply(self, sender, mid, reply, at):
        """Keep `reply` (given at time `at`) as the answer to `sender`'s request `mid`, unless
        one is kept already: then return that earlier one (the request is a retry); else None.

        One statement for a new request, where a look-up and then a write took two (every
        message from client.py has a mid: 37k -> 44k messages/s, staying).
        """
        wall_at = self._to_wall(at)
        kept = self._db.execute(
            "INSERT OR IGNORE INTO replies (sender, mid, reply, at) VALUES (?, ?, ?, ?)",
            (sender, mid, _to_json(reply), wall_at)).rowcount
        return None if kept else self.reply_for(sender, mid)

    def forget_replies_before(self, at):
        """Drop replies older than `at`: no client retries that long."""
        self._db.execute("DELETE FROM replies WHERE at < ?", (self._to_wall(at),))

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
        row = self._db.execute(
            "SELECT failures, locked_until FROM lockouts WHERE name = ?", (name,)).fetchone()
        if row is None:
            return 0, None
        failures, locked_until = row
        return failures, (self._from_wall(locked_until) if locked_until else None)

    def set_lockout(self, name, failures, locked_until):
        """Record `name`'s wrong passwords in a row, and until when it is blocked (or None)."""
        wall_until = 0.0 if locked_until is None else self._to_wall(locked_until)
        self._db.execute(
            "INSERT OR REPLACE INTO lockouts (name, failures, locked_until) VALUES (?, ?, ?)",
            (name, failures, wall_until))

    def clear_lockout(self, name):
        self._db.execute("DELETE FROM lockouts WHERE name = ?", (name,))

    # -- block lists ---------------------------------------------------------------------

    def blocks(self, user):
        """The names that `user` blocks (a set to read, not to change)."""
        # read once per user, then kept in step with every write: a broadcast asks once per
        # recipient, and a query each time was a fifth of the server's time
        known = self._blocks.get(user)
        if known is None:
            rows = self._db.execute("SELECT target FROM blocks WHERE user = ?", (user,))
            # most users block nobody: they share one empty set (a set is 216 bytes)
            known = self._blocks[user] = {target for (target,) in rows} or _NOBODY
        return known

    def add_block(self, user, target):
        """`user` blocks `target` from now on; blocking twice changes nothing."""
        self._db.execute(
            "INSERT OR IGNORE INTO blocks (user, target) VALUES (?, ?)", (user, target))
        if self.blocks(user) is _NOBODY:
            self._blocks[user] = set()
        self._blocks[user].add(target)

    def remove_block(self, user, target):
        """`user` no longer blocks `target`."""
        self._db.execute("DELETE FROM blocks WHERE user = ? AND target = ?", (user, target))
        self._blocks[user] = (self.blocks(user) - {target}) or _NOBODY

    def is_blocked(self, user, target):
        """True when `user` blocks `target`."""
        return target in self.blocks(user)

    def commit(self, acks_too=False):
        """Make every write since the last commit durable, as one transaction (one disk
        sync). Held acknowledgements go along when there is a transaction anyway, or when
        `acks_too` (at shutdown); alone they wait, and a pass that did nothing else costs
        no sync."""
        self._write_kept()
        if self._db.in_transaction or acks_too:
            self._write_acked()
            self._db.commit()
        self._wall_offset = None

    def close(self):
        """Close the database; uncommitted writes are lost."""
        self._db.close()
