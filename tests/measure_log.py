"""Measures what keeping a pass's messages costs three ways, to choose the store's shape (issue
15): a SQLite row per delivery (inserted, later deleted), one SQLite row per pass holding the
pass's lines, and an append-only file of checksummed records. Each commit is synced (`--sync
full`). Run: python3 tests/measure_log.py [passes] [messages per pass]. Prints microseconds per
message, in all and of CPU, medians of 5 runs."""
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import zlib

LINE = b'{"type":"message","from":"columbia","text":"message number 12345 of the benchmark","seq":%d}\n'


def rows_per_delivery(directory, passes, per_pass):
    db = sqlite3.connect(os.path.join(directory, "rows.db"))
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE inbox (seq INTEGER PRIMARY KEY, recipient TEXT, frame TEXT, "
               "offline INTEGER)")
    db.execute("CREATE INDEX by_recipient ON inbox (recipient, seq)")
    seq = 0
    for _ in range(passes):
        rows = []
        for _ in range(per_pass):
            seq += 1
            rows.append((seq, "seas", (LINE % seq).decode(), 0))
        db.executemany("INSERT INTO inbox VALUES (?, ?, ?, ?)", rows)
        db.execute("DELETE FROM inbox WHERE recipient = ? AND seq <= ?", ("seas", seq - per_pass))
        db.commit()
    db.close()


def record_per_pass(directory, passes, per_pass):
    db = sqlite3.connect(os.path.join(directory, "log.db"))
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE log (first_seq INTEGER PRIMARY KEY, recipients TEXT, lines BLOB)")
    db.execute("CREATE TABLE cursors (user TEXT PRIMARY KEY, upto INTEGER)")
    seq = 0
    for _ in range(passes):
        first = seq + 1
        lines = []
        for _ in range(per_pass):
            seq += 1
            lines.append(LINE % seq)
        recipients = "[" + ",".join('[%d,["seas"]]' % s for s in range(first, seq + 1)) + "]"
        db.execute("INSERT INTO log VALUES (?, ?, ?)", (first, recipients, b"".join(lines)))
        db.execute("INSERT OR REPLACE INTO cursors VALUES ('seas', ?)", (first - 1,))
        db.execute("DELETE FROM log WHERE first_seq = ?", (first - per_pass,))
        db.commit()
    db.close()


def append_only_file(directory, passes, per_pass):
    fd = os.open(os.path.join(directory, "log.bin"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    seq = 0
    for _ in range(passes):
        lines = []
        for _ in range(per_pass):
            seq += 1
            lines.append(LINE % seq)
        body = b"".join(lines)
        header = b"%08x %08x\n" % (len(body), zlib.crc32(body))
        os.write(fd, header + body)
        os.fdatasync(fd)
    os.close(fd)


def measure(fn, passes, per_pass):
    """-> (wall, CPU) microseconds a message, medians: the difference is the wait for the disk."""
    walls, cpus = [], []
    for _ in range(5):
        with tempfile.TemporaryDirectory() as directory:
            started, cpu_started = time.perf_counter(), time.process_time()
            fn(directory, passes, per_pass)
            walls.append((time.perf_counter() - started) / (passes * per_pass) * 1e6)
            cpus.append((time.process_time() - cpu_started) / (passes * per_pass) * 1e6)
    return statistics.median(walls), statistics.median(cpus)


def main():
    passes = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    per_pass = int(sys.argv[2]) if len(sys.argv) > 2 else 256
    for fn in (rows_per_delivery, record_per_pass, append_only_file):
        wall, cpu = measure(fn, passes, per_pass)
        print(f"{fn.__name__:18} {wall:6.2f} us a message, {cpu:5.2f} of them CPU "
              f"({passes} passes of {per_pass}, each synced)")


if __name__ == "__main__":
    main()
