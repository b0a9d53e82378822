"""Accounts and durable chat state: the credentials file and a SQLite store.

The credentials file is the course's `credential.txt`: one `name password`
pair per line. The Store keeps offline messages and block lists in SQLite;
its writes wait in one transaction until `commit()`, so the glue can make a
whole loop pass durable with one disk sync before that pass's replies go out.
"""
import json
import sqlite3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS offline (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    recipient TEXT NOT NULL,
    frame TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS offline_by_recipient ON offline (recipient, id);
CREATE TABLE IF NOT EXISTS blocks (
    user TEXT NOT NULL,
    target TEXT NOT NULL,
    PRIMARY KEY (user, target)
);
"""


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
    """Path of a `name password` file -> {name: password}; CredentialsError if malformed."""
    passwords = {}
    for number, fields in _account_lines(path):
        # Quote only the field count: a malformed line may hold a password.
        if len(fields) != 2:
            raise CredentialsError(
                f"{path}, line {number}: expected 'name password', got {len(fields)} fields")
        name, password = fields
        if name in passwords:
            raise CredentialsError(f"{path}, line {number}: duplicate user {name!r}")
        passwords[name] = password
    return passwords


class Store:
    """Offline messages and block lists in SQLite; nothing is durable before commit()."""

    def __init__(self, path=":memory:"):
        self._db = sqlite3.connect(path)
        if path != ":memory:":
            # WAL: a crash leaves each committed pass whole, and readers never block the writer.
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._db.commit()

    def keep_offline(self, recipient, frame):
        """Keep `frame` (a dict) for `recipient`'s next login; returns its row id."""
        cursor = self._db.execute(
            "INSERT INTO offline (recipient, frame) VALUES (?, ?)",
            (recipient, json.dumps(frame, ensure_ascii=False)))
        return cursor.lastrowid

    def take_offline(self, recipient):
        """Remove and return `recipient`'s kept frames, oldest first."""
        rows = self._db.execute(
            "SELECT id, frame FROM offline WHERE recipient = ? ORDER BY id",
            (recipient,)).fetchall()
        if rows:
            last_id = rows[-1][0]
            self._db.execute(
                "DELETE FROM offline WHERE recipient = ? AND id <= ?", (recipient, last_id))
        return [json.loads(frame) for _, frame in rows]

    def count_offline(self, recipient):
        """How many frames wait for `recipient`."""
        (count,) = self._db.execute(
            "SELECT COUNT(*) FROM offline WHERE recipient = ?", (recipient,)).fetchone()
        return count

    def blocks(self, user):
        """The set of names that `user` blocks."""
        rows = self._db.execute("SELECT target FROM blocks WHERE user = ?", (user,))
        return {target for (target,) in rows}

    def add_block(self, user, target):
        """`user` blocks `target` from now on; blocking twice changes nothing."""
        self._db.execute(
            "INSERT OR IGNORE INTO blocks (user, target) VALUES (?, ?)", (user, target))

    def remove_block(self, user, target):
        """`user` no longer blocks `target`."""
        self._db.execute("DELETE FROM blocks WHERE user = ? AND target = ?", (user, target))

    def is_blocked(self, user, target):
        """True when `user` blocks `target`."""
        row = self._db.execute(
            "SELECT 1 FROM blocks WHERE user = ? AND target = ?", (user, target)).fetchone()
        return row is not None

    def commit(self):
        """Make every write since the last commit durable, as one transaction."""
        self._db.commit()

    def close(self):
        """Close the database; uncommitted writes are lost."""
        self._db.close()
