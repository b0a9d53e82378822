"""What waits for whom, in memory: the index of the store's log (storage.py keeps the log itself
in SQLite).

A loop pass's messages are one record of the log; each message has one number. The index knows,
per record, how many deliveries of it still wait (`live`), and per recipient, which messages wait
(a Box: numbers, sizes and records, in arrays of 8 bytes an entry). An acknowledgement moves the
recipient's cursor and trims its box; a record nobody waits for is dead (the store deletes it),
one mostly passed is thin (the store rewrites it with what still waits). Pure state: the store
does the writing, and tells the index what it wrote.

Messages kept one after another for the same recipients (the same list: a run of broadcasts
read together, chat_server.py) are a run: their numbers and sizes are gathered, and each
recipient's box takes them all at once when anything next reads or adds to the boxes
(`_settle`), a few array extends per recipient instead of three appends per message. Until
then `crowded` answers for the run's recipients from their fullest box.
"""
import array
import bisect

REWRITE_LIVE = 4            # a record is rewritten once under 1/REWRITE_LIVE of it still waits
REWRITE_MIN = 16            # ... if it holds at least this many messages


class Record:
    """One record in memory: how many of its deliveries still wait (`live`), how many messages
    and bytes it holds on the disk. The open record also holds its messages until written."""
    __slots__ = ("first", "live", "count", "size", "seqs", "recipients", "wires")

    def __init__(self, first, count=0, size=0):
        self.first = first
        self.live = 0
        self.count = count
        self.size = size
        self.seqs = None        # while open: the messages' numbers, recipients and lines
        self.recipients = None
        self.wires = None


class Box:
    """What waits for one recipient, oldest first: each message's number, size and record.
    Entries before `head` are acknowledged and cut off in bulk.

    `bytes` is at least their sum: exact while `exact`, and only added to in between. An
    acknowledgement leaves it as it is (a sum at each was a tenth of a broadcast delivery's
    cost), and a check it would fail counts first (`counted`)."""
    __slots__ = ("seqs", "sizes", "recs", "head", "bytes", "exact")

    def __init__(self):
        self.seqs = array.array("q")
        self.sizes = array.array("q")
        self.recs = array.array("q")
        self.head = 0
        self.bytes = 0
        self.exact = True

    def __len__(self):
        return len(self.seqs) - self.head

    def counted(self):
        """The exact bytes waiting (and `bytes` made so)."""
        if not self.exact:
            self.bytes = sum(self.sizes[self.head:])
            self.exact = True
        return self.bytes


class LogIndex:
    """Records, boxes and cursors; `total` and `deliveries` count what the store holds."""

    def __init__(self, cursors=None):
        self.records = {}           # first seq -> Record, every record not yet deleted
        self.open = None            # the record taking this pass's messages, until written
        self.boxes = {}             # recipient -> Box, for those with messages waiting
        self.cursors = dict(cursors or {})      # recipient -> delivered up to this seq
        self.moved = {}             # cursors moved since the store last wrote them
        self.dead = []              # records every cursor has passed, still on the disk
        self.dead_total = [0, 0]    # their [messages, bytes], in `total` until deleted
        self.thin = set()           # records mostly passed, to be rewritten
        self.total = [0, 0]         # [messages, bytes] in the log, as the disk holds them
                                    # (the store adds its senders' counters' bytes)
        self.deliveries = 0         # deliveries waiting, for everyone
        # the run not yet in the boxes: its recipients (a list, told by identity), its record,
        # its messages' numbers and sizes, their sum, and the fullest of its recipients' boxes
        # before it ((messages, bytes), found at the first `crowded` that asks)
        self._run_names = None
        self._run_first = 0
        self._run_seqs = []
        self._run_sizes = []
        self._run_bytes = 0
        self._run_peak = None

    def load(self, first, messages, size):
        """A written record read at open: `messages` [(seq, recipients, line length)], `size`
        its bytes on the disk. What the cursors have passed is not indexed; a record nobody
        waits for is dead at once."""
        record = Record(first, len(messages), size)
        cursors = self.cursors
        for seq, names, length in messages:
            for name in names:
                if seq > cursors.get(name, 0):
                    self._add_to_box(name, seq, length, first)
                    record.live += 1
        if not record.live:
            self.dead.append(first)
            return
        self.records[first] = record
        self.total[0] += record.count
        self.total[1] += record.size
        self.deliveries += record.live

    def add(self, seq, recipients, wire):
        """Message `seq`, whose line is `wire`, waits for `recipients` from now on."""
        record = self.open
        if record is None:
            record = self.open = self.records[seq] = Record(seq)
            record.seqs, record.recipients, record.wires = [], [], []
        size = len(wire)
        record.seqs.append(seq)
        record.recipients.append(recipients)
        record.wires.append(wire)
        record.live += len(recipients)
        record.count += 1
        record.size += size
        self.total[0] += 1
        self.total[1] += size
        self.deliveries += len(recipients)
        first = record.first
        if recipients is self._run_names and first == self._run_first:
            self._run_seqs.append(seq)      # the run goes on: boxed at the next _settle
            self._run_sizes.append(size)
            self._run_bytes += size
            return
        if self._run_names is not None:
            self._settle()
        if len(recipients) > 1:             # a broadcast: perhaps the first of a run
            self._run_names, self._run_first = recipients, first
            self._run_seqs, self._run_sizes, self._run_bytes = [seq], [size], size
            self._run_peak = None
            return
        boxes = self.boxes
        for name in recipients:     # (_add_to_box, inline: once per delivery)
            box = boxes.get(name)
            if box is None:
                box = boxes[name] = Box()
            box.seqs.append(seq)
            box.sizes.append(size)
            box.recs.append(first)
            box.bytes += size

    def _settle(self):
        """The run's messages into its recipients' boxes: what every reader of a box sees.
        Called while a run waits (`_run_names`), by whatever reads or adds to the boxes."""
        names, self._run_names = self._run_names, None
        seqs, sizes, size, first = (self._run_seqs, self._run_sizes, self._run_bytes,
                                    self._run_first)
        self._run_seqs, self._run_sizes, self._run_peak = [], [], None
        boxes = self.boxes
        seqs = array.array("q", seqs)
        sizes = array.array("q", sizes)
        recs = array.array("q", (first,)) * len(seqs)
        for name in names:
            box = boxes.get(name)
            if box is None:
                box = boxes[name] = Box()
            box.seqs += seqs
            box.sizes += sizes
            box.recs += recs
            box.bytes += size

    def _add_to_box(self, name, seq, size, first):
        box = self.boxes.get(name)
        if box is None:
            box = self.boxes[name] = Box()
        box.seqs.append(seq)
        box.sizes.append(size)
        box.recs.append(first)
        box.bytes += size

    def takes(self, copies, size, messages_max, bytes_max):
        """True if `copies` more deliveries of a message of `size` bytes keep the store within
        `messages_max` deliveries waiting and `bytes_max` bytes on the disk."""
        return (self.deliveries + copies <= messages_max
                and self.total[1] + size <= bytes_max)

    def room_for_one(self, recipient, size, messages_max, bytes_max, box_messages, box_bytes,
                     crowd_messages=None, crowd_bytes=None):
        """takes(1, size, messages_max, bytes_max) and crowded([recipient], box_messages,
        box_bytes - size) in one call, for a message to one recipient (each direct message
        asks) -> None if it fits, "store" if the store would pass its bounds, "box" if the
        box would; and, given `crowd_messages` and `crowd_bytes`, "crowded" if it fits but
        the box holds that many already (bytes: at most that many, counted loosely)."""
        if self._run_names is not None:
            self._settle()
        if self.deliveries + 1 > messages_max or self.total[1] + size > bytes_max:
            return "store"
        box = self.boxes.get(recipient)
        if box is None:
            return None
        size_left = box_bytes - size
        waiting = len(box.seqs) - box.head
        if waiting >= box_messages or (box.bytes > size_left and box.counted() > size_left):
            return "box"
        if crowd_messages is not None and (waiting >= crowd_messages
                                           or box.bytes >= crowd_bytes):
            return "crowded"
        return None

    def count(self, recipient):
        """How many messages wait for `recipient` (box's first, without counting bytes)."""
        if self._run_names is not None:
            self._settle()
        box = self.boxes.get(recipient)
        return 0 if box is None else len(box)

    def box(self, recipient):
        """(messages, bytes) waiting for `recipient`."""
        if self._run_names is not None:
            self._settle()
        box = self.boxes.get(recipient)
        return (0, 0) if box is None else (len(box), box.counted())

    def crowded(self, recipients, messages, size_left):
        """Those of `recipients` whose box holds `messages` or more, or more than `size_left`
        bytes (a set). For the run's own recipients, while nobody is near either bound, that
        is known from the fullest box before the run and the run, without a look at each."""
        if recipients is self._run_names:
            peak = self._run_peak
            if peak is None:
                peak = self._run_peak = self._peak(recipients)
            if (peak[0] + len(self._run_seqs) < messages
                    and peak[1] + self._run_bytes <= size_left):
                return set()
        if self._run_names is not None:
            self._settle()
        boxes, crowded = self.boxes, set()
        for name in recipients:
            box = boxes.get(name)
            if box is not None and (len(box.seqs) - box.head >= messages or (
                    box.bytes > size_left and box.counted() > size_left)):
                crowded.add(name)
        return crowded

    def _peak(self, recipients):
        """The most messages and the most bytes in any of `recipients`' boxes (bytes as
        bounded: see Box)."""
        boxes, most, most_bytes = self.boxes, 0, 0
        for name in recipients:
            box = boxes.get(name)
            if box is not None:
                most = max(most, len(box.seqs) - box.head)
                most_bytes = max(most_bytes, box.bytes)
        return most, most_bytes

    def positions(self, recipient, after, limit):
        """`recipient`'s waiting messages after seq `after`, at most `limit` (-1: all):
        [(seq, first seq of its record)], oldest first."""
        if self._run_names is not None:
            self._settle()
        box = self.boxes.get(recipient)
        if box is None:
            return []
        seqs = box.seqs
        start = bisect.bisect_right(seqs, after, box.head)
        end = len(seqs) if limit < 0 else min(len(seqs), start + limit)
        return list(zip(seqs[start:end], box.recs[start:end]))

    def acknowledge(self, recipient, upto):
        """`recipient` has shown every message up to seq `upto`: its cursor moves there."""
        if upto <= self.cursors.get(recipient, 0):
            return
        self.cursors[recipient] = self.moved[recipient] = upto
        if self._run_names is not None:
            self._settle()
        box = self.boxes.get(recipient)
        if box is None:
            return
        start = box.head
        end = bisect.bisect_right(box.seqs, upto, start)
        if end == start:
            return
        self.deliveries -= end - start
        box.exact = False       # (its bytes: see Box)
        recs = box.recs
        # records are in order in a box: each record's stretch ends where a bisect says (an
        # acknowledgement of a broadcast's reader spans many records, and counting its
        # thousands of entries one by one was a sixth of the server's time)
        at = start
        while at < end:
            first = recs[at]
            past = bisect.bisect_right(recs, first, at, end)
            self._passed(first, past - at)
            at = past
        if end == len(box.seqs):
            del self.boxes[recipient]       # an idle user holds no box
        elif end > 64 and end * 2 > len(box.seqs):
            del box.seqs[:end], box.sizes[:end], box.recs[:end]
            box.head = 0
        else:
            box.head = end

    def _passed(self, first, passed):
        """`passed` deliveries of record `first` are acknowledged: dead when none waits, thin
        when few do."""
        record = self.records[first]
        record.live -= passed
        if record is self.open:
            return          # written first, at the commit; dead there if nothing waits
        if record.live <= 0:
            self._forget(record)
        elif record.count >= REWRITE_MIN and record.live * REWRITE_LIVE < record.count:
            self.thin.add(first)

    def _forget(self, record):
        """`record` is passed by every cursor: dead. Its bytes stay in `total` until the store
        deletes it (take_dead), at its next compaction: freed at the acknowledgement, they let
        a trial's 59 pipelining senders store 2.7 times the quota (a compaction a second, the
        reader acknowledging 15,000 messages a second), and the disk filled first."""
        del self.records[record.first]
        self.thin.discard(record.first)
        self.dead_total[0] += record.count
        self.dead_total[1] += record.size
        self.dead.append(record.first)

    def count_bytes(self, change):
        """Bytes on the disk besides the log's records (the senders' counters: the store
        counts them) come or go: the byte quota counts them too."""
        self.total[1] += change

    def take_dead(self):
        """The dead records' first numbers, for the store to delete -> [first]; from now on
        `total` counts them no more."""
        dead, self.dead = self.dead, []
        self.total[0] -= self.dead_total[0]
        self.total[1] -= self.dead_total[1]
        self.dead_total = [0, 0]
        return dead

    def take_open(self):
        """The open record, to be written (its messages taken from it), or None; from now on
        new messages open another."""
        record, self.open = self.open, None
        return record

    def written(self, record):
        """`record` (from take_open) is written: dead at once if nobody waits for it."""
        record.seqs = record.recipients = record.wires = None
        if record.live <= 0:
            self._forget(record)        # acknowledged before it was written (tests do that)

    def rewritten(self, first, count, size):
        """Record `first` now holds `count` messages in `size` bytes."""
        record = self.records[first]
        self.total[0] += count - record.count
        self.total[1] += size - record.size
        record.count, record.size = count, size

    def holds_passed(self):
        """True while cursors, deletes or rewrites wait for the store to write them."""
        return bool(self.moved or self.dead or self.thin)

    def still_waits(self, seq, names):
        """True if any of `names` has not acknowledged message `seq` (a rewrite keeps it)."""
        cursors = self.cursors
        return any(seq > cursors.get(name, 0) for name in names)
