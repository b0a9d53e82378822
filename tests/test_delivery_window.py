"""A window's top-up takes the backlog a slice at a time: what it sends, and the window it leaves,
must be what taking one message at a time gives (the rule delivery.py's docstring states)."""
import copy
import random

import protocol
from delivery import READ_AHEAD, Deliveries, Window


class _Store:
    """The store as a window reads it: the messages waiting after a number, oldest first."""

    def __init__(self, rows):
        self.rows = rows        # [(seq, line)]

    def waiting(self, user, after=0, limit=-1):
        found = [row for row in self.rows if row[0] > after]
        return found if limit < 0 else found[:limit]


def _one_at_a_time(deliveries, user, win):
    """The rule, message by message: while the window has room (by count, and by bytes while
    it is not full), the next waiting message goes, unless acknowledged before it was sent."""
    if win.retrying or (win.complete and not win.backlog):
        return []
    taken = []
    while len(win.sent) < deliveries._window and win.sent_bytes < deliveries._window_bytes:
        if not win.backlog:
            win.backlog = ()
            if not deliveries._read_ahead(user, win):
                break
        frame, win.backlog = win.backlog[0], win.backlog[1:] or ()
        win.backlog_bytes -= len(frame.wire)
        if frame["seq"] <= (win.sent[-1] if win.sent else win.acked):
            continue
        win.sent = [*win.sent, frame["seq"]]
        win.sent_sizes = [*win.sent_sizes, len(frame.wire)]
        win.sent_bytes += len(frame.wire)
        taken.append(frame)
    return taken


def _line(seq, size):
    return b'{"type":"message","text":"%s","seq":%d}\n' % (b"x" * size, seq)


def test_a_top_up_sends_and_leaves_what_one_message_at_a_time_would():
    rng = random.Random(3)
    for _ in range(3000):
        window, window_bytes = rng.choice([1, 3, 8, 70]), rng.choice([60, 200, 10**6])
        deliveries = Deliveries(None, window, window_bytes, 1.0, 30.0)
        seq = rng.randrange(5)
        acked = seq
        sent, sizes = [], []
        for _ in range(rng.randrange(window + 1)):
            seq += 1
            sent.append(seq)
            sizes.append(rng.randrange(30, 60))
        # the backlog: some at the front perhaps acknowledged already (the ack got ahead)
        backlog = []
        start = seq - rng.randrange(3) if sent else seq
        for number in range(start + 1, start + 1 + rng.randrange(2 * READ_AHEAD)):
            backlog.append(protocol.numbered_line(_line(number, rng.randrange(1, 40))))
        seq = max(seq, start + len(backlog))
        complete = rng.random() < 0.5
        stored = [(number, _line(number, rng.randrange(1, 40)))
                  for number in range(seq + 1, seq + 1 + (0 if complete else rng.randrange(150)))]
        deliveries._store = _Store(stored)
        win = Window(acked, sent=sent or (), sent_sizes=sizes or (), sent_bytes=sum(sizes),
                     backlog=backlog or (), backlog_bytes=sum(len(f.wire) for f in backlog),
                     complete=complete, retrying=rng.random() < 0.05)
        expected_win = copy.deepcopy(win)
        expected = _one_at_a_time(deliveries, "bob", expected_win)
        got = deliveries.top_up("bob", win)
        assert [f["seq"] for f in got] == [f["seq"] for f in expected]
        assert (list(win.sent), list(win.sent_sizes), win.sent_bytes) == (
            list(expected_win.sent), list(expected_win.sent_sizes), expected_win.sent_bytes)
        assert [f["seq"] for f in win.backlog] == [f["seq"] for f in expected_win.backlog]
        assert (win.backlog_bytes, win.complete) == (expected_win.backlog_bytes,
                                                     expected_win.complete)


class _Target:
    """A session as the windows see it."""

    def __init__(self):
        self.window, self.acked = None, 0


class _Acks:
    """The store as an acknowledgement reaches it."""

    def acknowledge(self, user, seq):
        pass


def test_a_windows_bytes_are_the_sum_of_what_it_has_sent_and_not_had_acknowledged():
    """However offers (alone and in runs) and acknowledgements (of a few, of most, of all)
    come, sent_bytes is the bytes of the messages sent and not yet acknowledged."""
    rng = random.Random(5)
    deliveries = Deliveries(_Acks(), 64, 10**6, 1.0, 30.0)
    targets = [_Target() for _ in range(3)]
    seq, sizes = 0, {}
    for _ in range(3000):
        if rng.random() < 0.6:
            run = []
            for _ in range(rng.choice([1, 1, 5, 40])):
                seq += 1
                frame = protocol.Numbered({"type": "message", "seq": seq})
                frame.wire = _line(seq, rng.randrange(0, 60))
                sizes[seq] = len(frame.wire)
                run.append(frame)
            if len(run) == 1:
                deliveries.offer_each(targets, run[0])
            else:
                deliveries.offer_run(targets, run)
        else:
            target = rng.choice(targets)
            win = target.window
            if win is not None and win.sent:
                upto = rng.choice([win.sent[0], win.sent[len(win.sent) // 2], win.sent[-1],
                                   win.sent[-1] - 1])
                deliveries.acknowledge("user", win, upto)
        for target in targets:
            win = target.window
            if win is not None:
                assert win.sent_bytes == sum(sizes[sent] for sent in win.sent)
                assert list(win.sent_sizes) == [sizes[sent] for sent in win.sent]
