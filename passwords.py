"""Stored passwords: salted scrypt hashes, checked in constant time, and the `passwd` command.

A line of credential.txt is `name password` (the course's plain form, still accepted) or
`name scrypt$<salt-hex>$<hash-hex>`. Once a file holds any hash, checking a password always
costs one scrypt, whether the entry is hashed or plain, so the time a login takes says nothing
of how a password is stored. A file of plain passwords only costs no scrypt at all: every check
is then the same constant-time comparison. Which names exist is no secret (`check_user` says,
as the original's "Invalid username" did): the server answers an unknown name before any check,
so that unknown names from many addresses cannot spend the checks everyone shares.

The server is one thread: every hash blocks every user for its duration. SCRYPT_N = 2**11 with
r = 8 costs about 3.5 ms and 2 MiB on the 2-core test machine (2**14 costs 42 ms): cheap enough
for a login burst, and the lockout (3 tries per name) and the per-address limit on failed logins
bound online guessing. Changing these constants needs a new prefix: entries name no parameters.
"""
import argparse
import getpass
import hashlib
import hmac
import os
import re
import secrets
import shlex
import stat
import sys
import tempfile

from protocol import MAX_NAME_CHARS, MAX_TEXT_CHARS

PREFIX = "scrypt$"
OPEN = None                 # the stored entry of an account that needs no password
SYSTEM_FILE_COLONS = 6      # /etc/passwd's lines have 6 colons, /etc/shadow's 8
# ... and begin name:password:number:number: (a space in the user's full name split a re-attack's
# /etc/passwd line into a name and a "password")
SYSTEM_LINE = re.compile(r"[^:\s]+:[^:\s]*:\d*:\d*:")
SCRYPT_N = 2 ** 11          # CPU and memory cost: 128 * r * N bytes = 2 MiB
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
HASH_BYTES = 32
_DUMMY_SALT = bytes(SALT_BYTES)
# UTF-8; a byte-order mark at the start (Notepad writes one) is read as nothing. Files we
# write have none.
CREDENTIALS_ENCODING = "utf-8-sig"
MAX_LINE_CHARS = 65536      # a line of credential.txt: a name and a password or its hash


def _scrypt(password, salt):
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R,
                          p=SCRYPT_P, dklen=HASH_BYTES)


def hash_password(password, salt=None):
    """A password -> its stored form, `scrypt$<salt-hex>$<hash-hex>` (a fresh salt by default)."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    return f"{PREFIX}{salt.hex()}${_scrypt(password, salt).hex()}"


def is_hashed(stored):
    """True when a stored entry claims to be a hash (it may still be malformed)."""
    return stored.startswith(PREFIX)


def parse_hash(stored):
    """`scrypt$<salt>$<hash>` -> (salt, hash) bytes; ValueError when malformed."""
    parts = stored[len(PREFIX):].split("$")
    if len(parts) != 2:
        raise ValueError("expected scrypt$<salt-hex>$<hash-hex>")
    salt, digest = bytes.fromhex(parts[0]), bytes.fromhex(parts[1])
    if len(salt) < 8 or len(digest) != HASH_BYTES:
        raise ValueError(f"the salt needs 8 bytes or more and the hash {HASH_BYTES} bytes")
    return salt, digest


DUMMY_ENTRY = hash_password("no account has this password", _DUMMY_SALT)


def verify(password, stored):
    """True when `password` matches the stored entry; always one scrypt, compared in constant time."""
    if is_hashed(stored):
        try:
            salt, expected = parse_hash(stored)
        except ValueError:
            salt, expected = _DUMMY_SALT, b""      # load_credentials refuses these; never matches
        actual = _scrypt(password, salt)
    else:
        _scrypt(password, _DUMMY_SALT)             # the same cost as a hashed entry
        actual, expected = password.encode("utf-8"), stored.encode("utf-8")
    return hmac.compare_digest(actual, expected)


def _compare_plain(password, stored):
    return hmac.compare_digest(password.encode("utf-8"), stored.encode("utf-8"))


class Checker:
    """Password checks for one set of accounts ({name: stored entry}), all of equal cost."""

    def __init__(self, accounts):
        self._accounts = accounts
        # True once any entry is hashed: then every check costs one scrypt
        self.hashing = any(stored is not OPEN and is_hashed(stored) for stored in accounts.values())
        self._dummy = DUMMY_ENTRY if self.hashing else "no account has this password"

    def check(self, name, password):
        """True when `name` is an account and `password` its password; unknown names cost the same."""
        known = name in self._accounts
        stored = self._accounts[name] if known else self._dummy
        if stored is OPEN:
            stored = self._dummy            # the same cost, and any password will do
        matches = verify(password, stored) if self.hashing else _compare_plain(password, stored)
        return known and (matches or self._accounts[name] is OPEN)


# -- the credentials file --------------------------------------------------------------------

NAME_RULE = f"1 to {MAX_NAME_CHARS} printable characters, no spaces, not starting with #"


def valid_name(name):
    """True for a name the credentials file and the server accept."""
    return (0 < len(name) <= MAX_NAME_CHARS and not name.startswith("#")
            and all(ch.isprintable() and not ch.isspace() for ch in name))


class CredentialsError(Exception):
    """The credentials file cannot be used; the message never holds a password."""


def _account_lines(path):
    """Yield (line_number, fields) for each line that is not blank or a comment."""
    for number, line in _file_lines(path):
        fields = line.split()
        if fields and not fields[0].startswith("#"):
            yield number, fields


TOO_LONG = object()     # _bounded_line's word for a line past MAX_LINE_CHARS


def _bounded_line(stream):
    """The next line of `stream` ("" at its end), or TOO_LONG, read no further than
    MAX_LINE_CHARS and its newline."""
    line = stream.readline(MAX_LINE_CHARS + 1)
    return TOO_LONG if len(line.rstrip("\n")) > MAX_LINE_CHARS else line


def _file_lines(path):
    """Yield (line_number, line) of the credentials file; a line longer than MAX_LINE_CHARS
    is CredentialsError (a trial's --credentials /dev/zero, one endless line, was read until
    memory ran out, by the server and by its passwd command)."""
    with _opened(path) as lines:
        try:
            number = 0
            while line := _bounded_line(lines):
                number += 1
                if line is TOO_LONG:
                    raise CredentialsError(f"{path}, line {number}: longer than "
                                           f"{MAX_LINE_CHARS:,} characters")
                yield number, line
        except UnicodeDecodeError:
            # decoding runs ahead in blocks: the line is found again in the bytes
            raise CredentialsError(f"{path}, line {_first_not_utf8(path)}: not valid "
                                   f"UTF-8") from None


def _first_not_utf8(path):
    """The number of the file's first line that is not UTF-8 (a line read as at most
    MAX_LINE_CHARS characters of 4 bytes: one longer was refused before its bytes mattered)."""
    with open(path, "rb") as raw:
        for number, line in enumerate(iter(lambda: raw.readline(4 * MAX_LINE_CHARS + 1), b""),
                                      1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return "?"


def _opened(path):
    """The accounts file open to read. A pipe (`--credentials <(gpg -d ...)`) is read as it
    comes, but one that nobody writes is not waited on for ever (a trial's named pipe hung the
    start without a word): opened without waiting, it reads as empty."""
    if not stat.S_ISFIFO(os.stat(path).st_mode):
        return open(path, encoding=CREDENTIALS_ENCODING)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    os.set_blocking(fd, True)       # (a writer there: its lines are waited for as they come)
    return open(fd, encoding=CREDENTIALS_ENCODING)


def open_accounts(accounts):
    """The names of {name: stored entry} that need no password."""
    return {name for name, stored in accounts.items() if stored is OPEN}


def unusable_accounts(accounts):
    """The names of {name: stored entry} whose plain password is longer than any login may
    send (MAX_TEXT_CHARS): nobody can log in as them (a trial's file had one)."""
    return {name for name, stored in accounts.items()
            if stored is not OPEN and not is_hashed(stored) and len(stored) > MAX_TEXT_CHARS}


def load_credentials(path):
    """Path of a `name password` file -> {name: stored entry}; CredentialsError if malformed.

    A file saved with a byte-order mark (Notepad does) is read as if it had none.

    An entry is a plain password (the course's form) or `scrypt$<salt>$<hash>` (passwords.py).
    A name alone is an open account (OPEN): any password logs it in, and an IRC client may
    log in with none. An operator's choice for a demo room or a conformance suite, never the
    default: the server says at start how many there are.
    """
    passwords = {}
    for number, fields in _account_lines(path):
        # Quote only the field count: a malformed line may hold a password.
        if len(fields) not in (1, 2):
            raise CredentialsError(
                f"{path}, line {number}: expected 'name password', got {len(fields)} fields")
        if fields[0].startswith("-----BEGIN"):
            # (a trial's --credentials cert.pem started with 17 open accounts named after its
            # base64 lines)
            raise CredentialsError(f"{path}, line {number}: a PEM file's line (a certificate "
                                   f"or a key), not 'name password': is this the accounts "
                                   f"file?")
        name, password = fields if len(fields) == 2 else (fields[0], OPEN)
        if ((password is OPEN and name.count(":") >= SYSTEM_FILE_COLONS)
                or SYSTEM_LINE.match(name)):
            # named, it would be an open account, and said in the log, hash and all (a trial's
            # --credentials /etc/shadow started with 24 of them)
            raise CredentialsError(f"{path}, line {number}: a line of a system password file "
                                   f"(name:...:...), not 'name password': is this the "
                                   f"accounts file?")
        if password is not OPEN and name[-1] in ":,;":
            # (`alice: hunter2`: an account named "alice:", a re-attack's)
            raise CredentialsError(f"{path}, line {number}: a name ending in {name[-1]!r} "
                                   f"before its password: 'name password' has a space "
                                   f"between them, nothing else")
        joined = re.fullmatch(r"[^:,;]+([:,;])\S+", name) if password is OPEN else None
        if joined:
            # `name:password`: an open account named with its password, which the log then
            # showed at each login (a trial's)
            raise CredentialsError(f"{path}, line {number}: a name and a password joined by "
                                   f"{joined[1]!r}, where a space goes ('name password'); the "
                                   f"name of an open account (a name alone) holds no ':', ',' "
                                   f"or ';'")
        if name in passwords:
            raise CredentialsError(f"{path}, line {number}: duplicate user {name!r}")
        if not valid_name(name):
            raise CredentialsError(f"{path}, line {number}: not a valid user name ({NAME_RULE})")
        if password is not OPEN and is_hashed(password):
            try:
                parse_hash(password)
            except ValueError as exc:
                raise CredentialsError(f"{path}, line {number}: malformed hash: {exc}") from None
        # interned: a session names its user with this very string (chat_server), not with
        # a copy decoded from each login (53 bytes of every idle user)
        passwords[sys.intern(name)] = password
    return passwords


def set_password(path, name, password):
    """Write `name scrypt$...` into the file at `path`, replacing that name's line or adding one.

    Every other line (comments too) stays as it was; the file is replaced atomically, so a crash
    leaves the old file or the new one, never half of one.
    """
    entry = f"{name} {hash_password(password)}\n"
    lines, replaced = [], False
    if os.path.exists(path):
        for _, line in _file_lines(path):
            fields = line.split()
            if fields and fields[0] == name:
                if not replaced:
                    lines.append(entry)
                replaced = True
            else:
                lines.append(line if line.endswith("\n") else line + "\n")
    if not replaced:
        lines.append(entry)
    _replace(path, lines)
    return replaced


def convert_file(path):
    """Hash every plain `name password` line of the file in place; returns how many changed."""
    lines = [line for _, line in _file_lines(path)]
    changed = 0
    for index, line in enumerate(lines):
        fields = line.split()
        if len(fields) == 2 and not fields[0].startswith("#") and not is_hashed(fields[1]):
            lines[index] = f"{fields[0]} {hash_password(fields[1])}\n"
            changed += 1
    if changed:
        _replace(path, lines)
    return changed


def _replace(path, lines):
    """Write `lines` as the file at `path`, atomically, with the old file's mode and owner
    (root rewriting a file the server's account owns left it unreadable to the server at its
    next start, an operator's trial found). A symbolic link's target is written, the link
    kept (replaced, the link became a file of its own, and the server's file went unchanged)."""
    path = os.path.realpath(path)
    folder = os.path.dirname(path)
    old = os.stat(path) if os.path.exists(path) else None
    fd, temp = tempfile.mkstemp(dir=folder, prefix=".credentials-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as new:
            new.writelines(lines)
            new.flush()
            os.fsync(new.fileno())
        os.chmod(temp, 0o600 if old is None else old.st_mode & 0o777)
        if old is not None and os.geteuid() == 0:      # (only root may give a file away)
            os.chown(temp, old.st_uid, old.st_gid)
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


def _read_password(stdin, stderr):
    """The new password: asked twice without echo on a terminal, one line from a pipe."""
    if stdin.isatty():
        first = getpass.getpass("New password: ", stream=stderr)
        if getpass.getpass("Again: ", stream=stderr) != first:
            raise ValueError("the two passwords differ")
        return first.strip()
    line = _bounded_line(stdin)     # (not an endless one: < /dev/zero)
    if line is TOO_LONG:
        raise ValueError(f"the password is longer than {MAX_LINE_CHARS:,} characters")
    return line.strip()


def passwd_main(argv, stdin=None, stdout=None, stderr=None):
    """`server.py passwd USER [--credentials FILE]` or `passwd --convert`; returns the exit status."""
    stdin, stdout, stderr = stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr
    parser = argparse.ArgumentParser(
        prog="server.py passwd",
        description="Store a user's password hashed (scrypt) in the credentials file.")
    parser.add_argument("user", nargs="?", help="the account to set (added if new)")
    parser.add_argument("--credentials", default="credential.txt",
                        help="the accounts file (default credential.txt)")
    parser.add_argument("--convert", action="store_true",
                        help="hash every plain 'name password' line of the file in place")
    args = parser.parse_args(argv)
    if args.convert == (args.user is not None):
        parser.error("give a user name, or --convert")
    try:
        if args.convert:
            count = convert_file(args.credentials)
            print(f"hashed {count} plain password(s) in {args.credentials}"
                  f"{_readable_by_others(args.credentials)}", file=stdout)
            return 0
        if not valid_name(args.user):
            parser.error(f"not a valid user name ({NAME_RULE})")
        password = _read_password(stdin, stderr)
        if not password:
            print("server.py passwd: the password is empty; nothing changed", file=stderr)
            return 1
        if len(password) > MAX_TEXT_CHARS:
            # (a login carries at most that many: an operator's trial's 5,000 were taken, and
            # nobody could ever log in with them)
            print(f"server.py passwd: the password is longer than {MAX_TEXT_CHARS:,} "
                  f"characters, which no login can send; nothing changed", file=stderr)
            return 1
        new_file = not os.path.exists(args.credentials)     # (a typo in --credentials, say)
        replaced = set_password(args.credentials, args.user, password)
    except (OSError, ValueError, CredentialsError) as exc:
        print(f"server.py passwd: {exc}", file=stderr)
        return 1
    print(f"{'replaced' if replaced else 'added'} {args.user} in {args.credentials} (hashed)"
          f"{'; the file is new' if new_file else ''}{_readable_by_others(args.credentials)}",
          file=stdout)
    # (read at a start only: an operator's trial's new user was "Wrong username." until then)
    print("A server running on this file takes the change at its next start.", file=stdout)
    return 0


def others_may(path):
    """What users other than the file's owner may do to it: "read", "change", "read and
    change", or "" (none, or the file cannot be looked at)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return ""
    return " and ".join(verb for verb, bits in (("read", 0o044), ("change", 0o022))
                        if mode & bits)


def _readable_by_others(path):
    """"; other users ... can read it" when users other than its owner may read or change the
    file (the mode is kept as it was: a security review's converted file left its hashes
    readable to all, unsaid; one anyone may change lets anyone set a password), else ""."""
    may = others_may(path)
    if not may:
        return ""
    return (f"; other users of this machine can {may} it (mode "
            f"{stat.S_IMODE(os.stat(path).st_mode):04o}): chmod 600 {shlex.quote(path)}, if "
            f"the server runs as its owner")
