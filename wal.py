"""SQLite's write-ahead log, read before the store opens it, to tell damage from a torn tail.

SQLite reads a log's frames while each one's checksum holds, and drops the rest without a
word: that is right for a tail a crash tore, and wrong for bytes changed in the middle or in
the header, where it silently dropped every commit after them (a trial's restart lost 300
acknowledged messages so). Each frame's checksum goes on from the one before it, as stored,
so a frame that holds after one that does not was written whole after it: the one before was
changed since. A torn tail has no such frame after it. The format: sqlite.org/fileformat2.html,
"The Write-Ahead Log".
"""
import struct

HEADER_BYTES = 32
FRAME_HEADER_BYTES = 24
MAGICS = {0x377F0682: "<", 0x377F0683: ">"}     # the checksums' byte order: little, big
VERSION = 3007000
NOT_SQLITES = "it is not SQLite's"


def damage(path):
    """-> why the log at `path` is damaged (a changed byte that SQLite would read as its end,
    with commits after it), or None when it is whole, torn only at its tail, or absent."""
    try:
        with open(path, "rb") as log:
            data = log.read()
    except FileNotFoundError:
        return None
    if len(data) < HEADER_BYTES:
        return None                 # (empty, or a header a crash tore: nothing committed)
    magic, version, page_bytes, _, salts, stored = _header(data)
    if magic not in MAGICS and any(data[:HEADER_BYTES]):
        # SQLite writes no other first bytes, and a crash's torn write leaves its old ones or
        # its new ones, both its own: the log was overwritten whole, and SQLite would have
        # read it as empty without a word (an operator's trial lost 100 acknowledged messages
        # so). Zeros, or another file's old bytes, are what a file system may show after a
        # power cut of a log begun anew and never synced (nothing in it was acknowledged
        # then): store_files says how to start from the file alone
        return (f"{NOT_SQLITES} (its first bytes were overwritten), and SQLite would read "
                f"none of it")
    order = MAGICS.get(magic, "<")
    header_holds = (magic in MAGICS and version == VERSION and _page_size_ok(page_bytes)
                    and _checksum(order, data[:24], (0, 0)) == stored)
    if not _page_size_ok(page_bytes):
        # (the page size changed: frames cannot be told apart. Any other page size of a
        # real log makes frames that hold below)
        page_bytes = _likely_page_size(data, order, stored)
        if page_bytes is None:
            return None
    frames = _frames(data, page_bytes, order, stored, salts)
    if not header_holds and any(holds for holds, _ in frames):
        return "its header was changed, and SQLite would read none of the commits after it"
    broken = False
    for holds, commits in frames:
        if not holds:
            broken = True
        elif broken and commits:
            return "bytes in it were changed, and SQLite would drop the commits after them"
    return None


def _header(data):
    magic, version, page_bytes, sequence, salt1, salt2, sum1, sum2 = struct.unpack(
        ">8I", data[:HEADER_BYTES])
    return magic, version, page_bytes, sequence, (salt1, salt2), (sum1, sum2)


def _page_size_ok(page_bytes):
    return 512 <= page_bytes <= 65536 and page_bytes & (page_bytes - 1) == 0


def _likely_page_size(data, order, stored):
    """The page size whose first frame holds (the header's own field changed), or None."""
    for page_bytes in (4096, 1024, 2048, 8192, 16384, 32768, 65536, 512):
        frame = data[HEADER_BYTES:HEADER_BYTES + FRAME_HEADER_BYTES + page_bytes]
        if len(frame) == FRAME_HEADER_BYTES + page_bytes and _frame_holds(frame, order, stored):
            return page_bytes
    return None


def _frames(data, page_bytes, order, first_sums, salts):
    """-> [(holds, commits)] for each whole frame: whether its checksum holds, going on
    from the checksum stored in the frame before it, with the header's salts; and whether it
    ends a commit (it gives the database's size)."""
    size = FRAME_HEADER_BYTES + page_bytes
    frames = []
    before = first_sums
    for start in range(HEADER_BYTES, len(data) - size + 1, size):
        frame = data[start:start + size]
        _, commit_size, salt1, salt2, sum1, sum2 = struct.unpack(">6I", frame[:24])
        holds = (salt1, salt2) == salts and _frame_holds(frame, order, before)
        frames.append((holds, holds and commit_size > 0))
        before = (sum1, sum2)
    return frames


def _frame_holds(frame, order, before):
    """True if `frame`'s stored checksum is the one computed on from `before`."""
    sums = _checksum(order, frame[:8], before)
    sums = _checksum(order, frame[FRAME_HEADER_BYTES:], sums)
    return sums == struct.unpack(">2I", frame[16:24])


def _checksum(order, data, sums):
    """SQLite's log checksum of `data` (a multiple of 8 bytes), going on from `sums`."""
    s0, s1 = sums
    words = struct.unpack(f"{order}{len(data) // 4}I", data)
    for index in range(0, len(words), 2):
        s0 = (s0 + words[index] + s1) & 0xFFFFFFFF
        s1 = (s1 + words[index + 1] + s0) & 0xFFFFFFFF
    return s0, s1

