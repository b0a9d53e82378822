"""The store's files on the disk, apart from what is in them: what a start refuses to open and
why (an emptied file, a log not its own or damaged, a damage note, a rescued copy still about),
the notes and copies a running store leaves for the next start, and the room a small disk keeps
for a checkpoint. storage.Store decides when; these look and write. Each refusal is a
sqlite3.DatabaseError whose text tells the operator what to do."""
import hashlib
import os
import pathlib
import re
import sqlite3
import tempfile
import time

import wal

# SQLite copies its write-ahead log into the file each DEFAULT_LOG_PAGES pages of it; on a disk
# with less room, each eighth of that room (at least SMALL_LOG_PAGES pages)
DEFAULT_LOG_PAGES = 1000
SMALL_LOG_PAGES = 16
PAGE_BYTES = 4096           # SQLite's page size, as it makes a new file
DAMAGED = "-damaged"        # beside the store's file: a server found it damaged (Store._damage)
NEW_FILE_S = 5              # an empty store's file younger than this is another's, begun
WAL_HEADER_BYTES = 32       # a write-ahead log's header: no commit in a log this long
RESCUED = ".rescued-"       # a homeless store's copy: its name after the store's (Store.rescue)
RESERVE = "-reserve"        # beside the store's file on a small disk: room kept for the
                            # checkpoint a full disk needs (Store._keep_reserve)

def disk_full(exc):
    """True if SQLite found the disk full."""
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_FULL


def checkpoint_pages(path):
    """How many pages the log may grow by before SQLite copies it into the file: its usual
    1,000 (4 MB), or an eighth of the room left on the disk when that is less (a trial's 2 MiB
    disk was filled by the log alone, 30 KB of messages, and never recovered)."""
    try:
        disk = os.statvfs(os.path.dirname(os.path.abspath(path)))
    except OSError:
        return DEFAULT_LOG_PAGES
    room = disk.f_bavail * disk.f_frsize
    return max(SMALL_LOG_PAGES, min(DEFAULT_LOG_PAGES, room // 8 // PAGE_BYTES))


def reserve_bytes(path):
    """-> (the reserve's size for the store at `path`, the size of the one there now): on a
    disk with less room than DEFAULT_LOG_PAGES would need, an eighth of the room (the reserve
    counted as room), as many pages as the log may hold when a commit begins (at least
    SMALL_LOG_PAGES); else 0 (and a reserve made when the disk was small is deleted)."""
    try:
        disk = os.statvfs(os.path.dirname(os.path.abspath(path)))
        held = os.path.getsize(path + RESERVE) if os.path.exists(path + RESERVE) else 0
    except OSError:
        return 0, 0
    pages = (disk.f_bavail * disk.f_frsize + held) // 8 // PAGE_BYTES
    if pages >= DEFAULT_LOG_PAGES:
        if held:
            remove_quietly(path + RESERVE)
        return 0, 0
    return max(SMALL_LOG_PAGES, pages) * PAGE_BYTES, held


def allocate(descriptor, size):
    """Give the file open as `descriptor` `size` bytes of the disk (OSError if it has not)."""
    if hasattr(os, "posix_fallocate"):
        os.posix_fallocate(descriptor, 0, size)
        return
    os.ftruncate(descriptor, 0)     # (where there is none, written: a sparse file holds none)
    block = b"\0" * 65536
    for _ in range(0, size, len(block)):
        os.write(descriptor, block)
    os.fsync(descriptor)


def corrupt(exc):
    """True if SQLite found the file corrupt, or not a database at all."""
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF in (sqlite3.SQLITE_CORRUPT,
                                                          sqlite3.SQLITE_NOTADB)


def identity(descriptor):
    """(inode, device) of the file open as `descriptor`, or None for None."""
    if descriptor is None:
        return None
    ours = os.fstat(descriptor)
    return ours.st_ino, ours.st_dev


def named(path, identity):
    """The stat of `path` if it still names the file whose identity is `identity` (not
    deleted, moved away, or replaced by another: a file's link count alone misses the last
    two), else None. Every commit asks, of the file and its log: a stat each, where a stat
    and an fstat each were 2 us of every ping-pong message's commit."""
    try:
        there = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):     # (its directory gone, or a file now)
        return None
    return there if (there.st_ino, there.st_dev) == identity else None


def take_rewritten(path):
    """A server killed while it wrote its store again (Store._rehome) may leave the complete
    copy as `<path>.new` and no file at the path: it is the store. With neither, a log left
    at the path is a deleted file's, and SQLite would read it into a new one (corrupt):
    sqlite3.DatabaseError, for the operator to decide."""
    if path == ":memory:" or os.path.lexists(path):
        return
    if os.path.exists(path + ".new"):
        for stale in (path + "-wal", path + "-journal"):
            if os.path.lexists(stale):
                os.remove(stale)        # (the old file's, which is gone)
        os.rename(path + ".new", path)
        sync_path(os.path.dirname(os.path.abspath(path)))
    elif os.path.lexists(path + "-wal"):
        # a copy the server made as it lost its file is where the messages are: named first
        # (a trial was pointed at a `.tmp` that was never there, and only then at the copy)
        refuse_rescued(path)
        try:
            # (its header alone, 32 bytes, is no commit either)
            empty = os.path.getsize(path + "-wal") <= WAL_HEADER_BYTES
        except OSError:
            empty = None
        held = (" It cannot be read." if empty is None else
                " It is empty: nothing in it can be recovered." if empty else
                " It holds the last commits only, not the store: a backup of the store is "
                "where the rest is.")
        raise sqlite3.DatabaseError(
            f"{path} is missing but its write-ahead log {path}-wal is there (the file deleted "
            f"under a running server?).{held} Move the log away to start a new store")


def mark_damaged(path, why):
    """Leave `<path>-damaged` saying `why`, for the next start (refuse_marked_damaged) ->
    None, or the OSError that kept it from being written (the directory gone or read-only,
    the disk full)."""
    if path == ":memory:":
        return None
    try:
        with open(path + DAMAGED, "w", encoding="utf-8") as marker:
            marker.write(why + "\n")
            marker.flush()
            os.fsync(marker.fileno())       # (a crash right after must not lose it)
    except OSError as exc:
        return exc
    return None


def mark_rescued(copy, path):
    """Say in `copy` (a VACUUM INTO's) that it is a copy of the store at `path`, whole in
    itself: no log beside it is its own (refuse_foreign_log). The mark goes at the first
    start on it (Store._open)."""
    db = sqlite3.connect(copy)
    try:
        db.execute("PRAGMA journal_mode=DELETE")        # (leaves no log of its own either)
        db.execute("INSERT OR REPLACE INTO meta (name, value) VALUES ('rescued_from', ?)",
                   (path,))
        db.commit()
    finally:
        db.close()


def refuse_foreign_log(path):
    """sqlite3.DatabaseError if the write-ahead log beside the file is not its own, found
    before anything is written: a log read into a file not its own damages it, for good, and
    a start that refused it after the read had already changed the file and deleted the log (a
    trial's restored backup). The file is read alone (SQLite's immutable mode) and with its
    log (read-only): a rescued copy (mark_rescued) has no log of its own; another store's
    log names another store (its identity); one that cannot be read with the file is damage."""
    log = path + "-wal"
    if path == ":memory:" or not os.path.isfile(log) or os.path.getsize(log) == 0:
        return
    uri = pathlib.Path(path).absolute().as_uri()
    try:
        alone = meta(uri + "?immutable=1")
    except sqlite3.Error:
        alone = {}      # (the file alone, mid-copy of its log at a crash, may not read whole)
    if alone.get("rescued_from") is not None:
        raise sqlite3.DatabaseError(
            f"{path} is a copy of a store, whole in itself, and the write-ahead log beside it "
            f"({log}) is another store's: read into the copy, it would damage it. Move {log} "
            f"(and {path}-shm, if there is one) out of the directory, then start again")
    shm = path + "-shm"
    made_shm = not os.path.lexists(shm)
    try:
        together = meta(uri + "?mode=ro", check=True)
    except sqlite3.Error as exc:
        if not corrupt(exc):
            return      # (not readable now: the open that follows says why, or waits)
        together = None
    finally:
        if made_shm:
            remove_quietly(shm)        # (the read-only look's index of the log)
    if together is None or (alone.get("identity") is not None
                            and together.get("identity") != alone["identity"]):
        raise sqlite3.DatabaseError(
            f"the write-ahead log {log} is not the log of the file {path} (another store's, "
            f"or damaged): read into the file, it would damage it; nothing was written. "
            f"Restore the file and its log from one backup, or move {log} (and {path}-shm) "
            f"out of the directory to start from the file alone, without what only that log "
            f"held")


def meta(uri, check=False):
    """{name: value} of the store's meta table at `uri`, {} if it has none yet, None if
    (`check`) SQLite's quick check of the whole store finds it damaged (it reads every page:
    at a start after a crash only); sqlite3.Error if it cannot be read: corruption, or not
    now (another server holds it, locked; no room or no leave to make the log's index on a
    full disk or in a read-only directory), which tells nothing of its log (a trial's server,
    told its live log was another's, and moving it away, lost 8 acknowledged messages)."""
    # (no wait: a store another server holds is for the open to refuse, after its wait)
    db = sqlite3.connect(uri, uri=True, timeout=0)
    try:
        if check and db.execute("PRAGMA quick_check").fetchone() != ("ok",):
            return None
        return dict(db.execute("SELECT name, value FROM meta").fetchall())
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return {}   # (a store made in its log, not yet copied into the file)
        raise
    finally:
        db.close()


def refuse_rescued(path):
    """sqlite3.DatabaseError if a copy Store.rescue made of this store is still about: its
    messages, answered ok, may be in no other store, and a start that went on with the store
    at the path (an empty one, say) left the copy unknown, or, moved in later as the log had
    said, lost what the new store took meanwhile (a trial's and a reviewer's)."""
    if path == ":memory:":
        return
    copies = rescued_copies(path)
    if copies:
        others = f" (and {len(copies) - 1} older)" if len(copies) > 1 else ""
        raise sqlite3.DatabaseError(
            f"{copies[-1]}{others} is a copy of the store at {path}, written by a server that "
            f"could not write it there; the messages in it may be in no other store. Move it "
            f"to {path} to keep them, and {path}-wal and {path}-shm out of the directory if "
            f"they are there (if a store is there, keep the one that holds them), or delete "
            f"it, then start again")


def refuse_marked_damaged(path):
    """sqlite3.DatabaseError if a server found this store damaged while it ran: what it had
    said yes to since may be missing from it, and a restart would go on without a word (a
    trial's restart after the log was cut short had lost 246 acknowledged messages)."""
    if path == ":memory:" or not os.path.exists(path + DAMAGED):
        return
    try:
        with open(path + DAMAGED, encoding="utf-8", errors="replace") as marker:
            why = marker.read(1000).strip() or "no reason was written"
    except OSError as exc:
        why = f"the note cannot be read: {exc.strerror}"
    raise sqlite3.DatabaseError(f"a server found this store damaged while it ran ({why}), so "
                                f"messages it acknowledged may be missing from it: restore the "
                                f"data directory from a backup (a directory restored whole has "
                                f"no {DAMAGED[1:]} note; files copied over this one leave it, "
                                f"to delete), or delete {path}{DAMAGED} to go on with the store "
                                f"as it is")


def refuse_damaged_log(path):
    """sqlite3.DatabaseError if the store's write-ahead log holds commits SQLite would drop
    without a word, its header or bytes before them changed (wal.py): a trial's restart lost
    300 acknowledged messages so."""
    why = None if path == ":memory:" else wal.damage(path + "-wal")
    if why is None:
        return
    if why.startswith(wal.NOT_SQLITES):
        # (its contents are gone either way; and a power cut's stale bytes, on a file system
        # that can show them, held nothing acknowledged: a review's)
        why += (f"; restore the data directory from a backup, or move {path}-wal out of the "
                f"directory to start from the file alone, as SQLite would")
    else:
        why += "; restore the data directory from a backup"
    raise sqlite3.DatabaseError(f"the store's write-ahead log, {path}-wal, is damaged: {why}")


def refuse_emptied(path):
    """sqlite3.DatabaseError if the store's file is there but empty: SQLite would start a new
    store on it (on its log too, if one is there), and a truncated store's messages would be
    gone without a word (a trial's 120; another's 900, a log beside the file). A store's file
    is never empty once made: WAL mode writes its header before any log is made."""
    if path == ":memory:":
        return
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return          # a new store
    if found.st_size:
        return
    # (a trial's two servers started at once: the second read the first's new file). The
    # file system's own clock, not the server's: the file's time is that clock's
    starting = (f"another server may be starting on this data directory (the file was "
                f"written {NEW_FILE_S} s ago at most); if none is, "
                if time.time() - found.st_mtime < NEW_FILE_S else "")
    raise sqlite3.DatabaseError(f"{path} is empty (0 bytes), as no store ever is: {starting}it "
                                f"was emptied; restore it from a backup, or move it away (and "
                                f"its -wal beside it) to start a new store")


def rescue_places(path):
    """Where a homeless store at `path` is copied (Store.rescue), in the order tried: beside
    its path, a directory up, the temporary directories (/var/tmp first: /tmp is often
    emptied at a reboot), the working one."""
    here = os.path.dirname(os.path.abspath(path))
    places = [here, os.path.dirname(here), "/var/tmp", tempfile.gettempdir(), "/tmp",
              os.getcwd()]
    return list(dict.fromkeys(places))


def rescue_prefix(path):
    """The start of the names of the copies of the store at `path`: its file's name and a
    digest of its absolute path, so that a server finds its own store's copies, not another's
    in /tmp."""
    # (os.fsencode: a path of bytes that are not UTF-8 is the file system's all the same; a
    # trial's start in such a directory ended in a traceback)
    digest = hashlib.sha256(os.fsencode(os.path.abspath(path))).hexdigest()[:12]
    return f"{os.path.basename(path)}{RESCUED}{digest}-"


def rescued_copies(path):
    """The copies Store.rescue left of the store at `path` (a kill -9 after one was made, or
    a stop whose log went unread): their paths, oldest first by name."""
    named = re.compile(re.escape(rescue_prefix(path)) + r"\d{8}-\d{6}-\d+")
    found = []
    for directory in rescue_places(path):
        try:
            found += [entry.path for entry in os.scandir(directory)
                      if named.fullmatch(entry.name) and entry.is_file(follow_symlinks=False)]
        except OSError:
            continue
    return sorted(found, key=os.path.basename)


def remove_quietly(path):
    try:
        os.remove(path)
    except OSError:
        pass


def make_directory(path):
    """Make directory `path`, and those missing above it, each one's name synced into its
    parent: the files synced in it survive a power cut with it (a trial's strace found the
    data directory made, its files synced, and its own name never)."""
    path = os.path.abspath(path)
    missing, above = [], path
    while not os.path.lexists(above):
        missing.append(above)
        above = os.path.dirname(above)
    os.makedirs(path, exist_ok=True)
    for made in missing:
        sync_path(os.path.dirname(made))


def copy_descriptor(source, target):
    """Write the whole file open as descriptor `source` into descriptor `target` (a file just
    made, empty), synced; `target` is closed."""
    with os.fdopen(target, "wb") as out:
        at = 0
        while True:
            chunk = os.pread(source, 1 << 20, at)
            if not chunk:
                break
            out.write(chunk)
            at += len(chunk)
        out.flush()
        os.fsync(out.fileno())


def sync_path(path):
    """fsync a file or directory by its path: a rename is durable once both are."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
