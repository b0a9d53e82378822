"""Runs: one session's broadcasts, or its messages to one user, read together go to their
recipients together (reach._Run, log_index's run, Deliveries.offer_run). What every
client is sent, in what order, and what the store holds must be exactly what handling each
request alone gives."""
import random

import log_index
from chat_server import ChatServer, Settings
import delivery
from delivery import Deliveries, Window
from protocol import Numbered
from replay import counting_secrets
from server_events import Acked, Deliver, DeliverEach, DeliverRun, Replies, Reply, Request
from storage import Store

HOST = "127.0.0.1"
USERS = {f"u{n}": f"pw{n}" for n in range(1, 8)}       # u7 never logs in: messages wait
STAYING = {"u1": 1, "u2": 2, "u3": 3, "u4": 4}      # user -> its staying connection
SHORT = {"u5": (5, 7005), "u6": (6, 7006)}          # user -> (request connection, its port)


def _core(settings):
    return ChatServer(dict(USERS), Store(":memory:", new_identity="store1"), settings,
                      make_secret=counting_secrets())


def _streams(actions, into):
    """Append what `actions` send to `into`: destination (a connection, or a listening port's
    address) -> frames in the order they go there."""
    for action in actions:
        if type(action) is Reply:
            into.setdefault(action.conn, []).append(action.frame)
        elif type(action) is Replies:
            into.setdefault(action.conn, []).extend(action.frames())
        elif type(action) is Deliver:
            into.setdefault(action.conn or action.address, []).append(dict(action.frame))
        elif type(action) is DeliverEach:
            for conn in action.conns:
                into.setdefault(conn, []).append(dict(action.frame))
        elif type(action) is DeliverRun:
            for conn in action.conns:
                into.setdefault(conn, []).extend(dict(frame) for frame in action.frames)


class _Pair:
    """The same requests to two cores: one handles each alone, the other a read at a time as
    the glue hands them in (`reading`, then end_run); their streams must stay the same."""

    def __init__(self, settings):
        self.alone, self.together = _core(settings), _core(settings)
        self.sent = ({}, {})
        self.now = 0.0

    def read(self, conn, frames):
        self.now += 0.01
        for frame in frames:
            _streams(self.alone.handle(Request(conn, dict(frame), HOST), self.now), self.sent[0])
        core = self.together
        core.reading = len(frames) > 1
        for frame in frames:
            _streams(core.handle(Request(conn, dict(frame), HOST), self.now), self.sent[1])
        core.reading = False
        if core.run is not None:
            _streams(core.end_run(), self.sent[1])

    def event(self, event):
        self.now += 0.01
        for core, sent in zip((self.alone, self.together), self.sent):
            _streams(core.handle(event, self.now), sent)

    def highest(self, destination):
        return max((frame["seq"] for frame in self.sent[0].get(destination, ())
                    if "seq" in frame), default=0)


def _log_in_everyone(pair):
    for user, conn in STAYING.items():
        pair.read(conn, [{"type": "login", "user": user, "password": USERS[user], "stay": True}])
    for user, (conn, port) in SHORT.items():
        pair.read(conn, [{"type": "login", "user": user, "password": USERS[user], "port": port}])
    tokens = {}
    for conn, frames in pair.sent[0].items():
        for frame in frames:
            if frame.get("type") == "welcome":
                tokens[frame["user"]] = frame["token"]
    return tokens


_MIDS = {}      # user -> the highest number of its mids so far


def _message_variant(rng, frame, user):
    """`frame`, a message, as a client may send it (a mid, new or repeated; a notice; an id of
    another kind) or as it may be refused (a text or mid the checks refuse; a key more): the
    run's usual next message (server_messages._next_in_run) must take none of these but its
    own, and what it takes must be what the usual way does."""
    choice = rng.random()
    if choice < 0.3:
        number = _MIDS[user] = _MIDS.get(user, 0) + 1
        if rng.random() < 0.15:
            number = rng.randrange(1, number + 1)       # a retry, or a repeat
        frame["mid"] = f"c{user}-{number}"
    elif choice < 0.35:
        frame["notice"] = True
    elif choice < 0.4:
        frame["text"] = rng.choice(["", 7, "x" * 4001, None])
    elif choice < 0.45:
        frame["mid"] = rng.choice(["nonumber", 5, "c-0"])
    elif choice < 0.5:
        frame["extra"] = 1
    elif choice < 0.55:
        frame["id"] = rng.choice(["a string", 2 ** 60, 2.5])
    return frame


def _random_request(rng, user, token):
    # most often the first other user (a run of messages to one user), else any
    others = [name for name in USERS if name != user]
    other = others[0] if rng.random() < 0.6 else rng.choice(others)
    kind = rng.choice(["broadcast"] * 5 + ["message"] * 4
                      + ["block", "unblock", "heartbeat", "bad"])
    frame = {"type": kind, "token": token}
    if kind == "broadcast":
        frame["text"] = "b" * rng.randrange(1, 40)
        if rng.random() < 0.2:
            frame["notice"] = True
    elif kind == "message":
        frame.update(to=other, text="m" * rng.randrange(1, 40))
        if rng.random() < 0.5:
            frame["id"] = rng.randrange(1000)
        return _message_variant(rng, frame, user)
    elif kind in ("block", "unblock"):
        frame["user"] = other
    elif kind == "bad":
        frame = {"type": "broadcast", "token": token, "text": 5}    # refused mid-read
    if rng.random() < 0.5:
        frame["id"] = rng.randrange(1000)
    return frame


def test_reads_of_many_requests_send_every_client_what_each_request_alone_would():
    """Random reads of broadcasts, messages, blocks, refusals and acknowledgements, with
    windows and inboxes small enough that runs meet full windows, backlogs and full inboxes,
    and in some the rate limits on, tight enough to refuse."""
    for seed in range(60):
        rng = random.Random(seed)
        limited = seed % 3 == 2
        pair = _Pair(Settings(delivery_window=rng.choice([2, 5, 64]),
                              delivery_window_bytes=rng.choice([150, 400, 10**6]),
                              inbox_messages=rng.choice([6, 30, 10_000]),
                              inbox_bytes=rng.choice([900, 10**6]),
                              user_rate_per_s=5 if limited else 0, user_burst=12,
                              address_rate_per_s=0))
        tokens = _log_in_everyone(pair)
        senders = {**STAYING, **{user: conn for user, (conn, _) in SHORT.items()}}
        for _ in range(60):
            step = rng.random()
            if step < 0.6:
                user = rng.choice(sorted(senders))
                pair.read(senders[user], [_random_request(rng, user, tokens[user])
                                          for _ in range(rng.randrange(1, 9))])
            elif step < 0.9:
                user = rng.choice(sorted(STAYING))
                pair.read(STAYING[user], [{"type": "ack",
                                           "seq": pair.highest(STAYING[user]) or 1}])
            else:
                user = rng.choice(sorted(SHORT))
                highest = pair.highest((HOST, SHORT[user][1]))
                if highest:
                    proof = next(frame["proof"] for frame in pair.sent[0][SHORT[user][0]]
                                 if frame.get("type") == "welcome")
                    pair.event(Acked(proof, highest))
        assert pair.sent[0] == pair.sent[1], seed
        assert any(len(frames) > 5 for frames in pair.sent[0].values())
        for user in USERS:
            assert (pair.alone._store.waiting(user)
                    == pair.together._store.waiting(user)), (seed, user)
            # and the box's bytes, which the windows' acknowledgements keep, are its lines'
            for core in (pair.alone, pair.together):
                waiting = core._store.waiting(user)
                assert core._store.box(user) == (len(waiting), sum(
                    len(line) for _, line in waiting)), (seed, user)


def test_reads_of_messages_to_one_user_send_what_each_alone_would_whatever_they_carry():
    """Runs of messages to one user, the run's usual next message taken its own short way
    (server_messages._next_in_run), among ones it must leave to the usual way: mids new and
    repeated, notices, refused texts and mids, keys more, ids of other kinds, another
    recipient, the rate limit or the recipient's inbox full."""
    for seed in range(60):
        rng = random.Random(seed)
        pair = _Pair(Settings(inbox_messages=rng.choice([40, 10_000]),
                              user_rate_per_s=rng.choice([0, 0, 20]), user_burst=30,
                              address_rate_per_s=0))
        tokens = _log_in_everyone(pair)
        for _ in range(12):
            user = rng.choice(["u1", "u5"])     # (staying, and short)
            conn = STAYING.get(user) or SHORT[user][0]
            frames = []
            for number in range(rng.randrange(2, 30)):
                frame = {"type": "message", "token": tokens[user],
                         "to": "u2" if rng.random() < 0.9 else "u7",
                         "text": f"m{number}", "id": number}
                if rng.random() < 0.05:
                    frame["token"] = tokens["u3"]     # another session's, on this connection
                frames.append(_message_variant(rng, frame, user) if rng.random() < 0.4
                              else frame)
            pair.read(conn, frames)
            if rng.random() < 0.5:
                pair.read(STAYING["u2"], [{"type": "ack", "seq": pair.highest(2) or 1}])
        assert pair.sent[0] == pair.sent[1], seed
        for user in USERS:
            assert (pair.alone._store.waiting(user)
                    == pair.together._store.waiting(user)), (seed, user)


def _core_reading():
    """A core with everyone logged in, handed a read's requests -> (core, tokens by user)."""
    pair = _Pair(Settings(user_rate_per_s=0, address_rate_per_s=0))
    tokens = _log_in_everyone(pair)
    pair.together.reading = True
    return pair.together, tokens


def test_a_run_is_sent_as_one_action_and_ends_before_the_next_message_to_others():
    core, tokens = _core_reading()
    actions = []
    for text in ("one", "two", "three"):
        actions += core.handle(Request(1, {"type": "broadcast", "token": tokens["u1"],
                                           "text": text}, HOST), 1.0)
    assert [type(action) for action in actions] == [Reply] * 3      # the deliveries wait
    direct = core.handle(Request(1, {"type": "message", "token": tokens["u1"], "to": "u2",
                                     "text": "after"}, HOST), 1.0)
    direct += core.handle(Request(1, {"type": "message", "token": tokens["u1"], "to": "u2",
                                      "text": "and after"}, HOST), 1.0)
    core.reading = False
    direct += core.end_run()
    runs = [action for action in direct if type(action) is DeliverRun]
    assert len(runs) == 2 and sorted(runs[0].conns) == [2, 3, 4] and runs[1].conns == [2]
    assert [frame["text"] for frame in runs[0].frames] == ["one", "two", "three"]
    # the messages to u2, a run of their own, come after the run they followed
    assert [frame["text"] for frame in runs[1].frames] == ["after", "and after"]
    assert direct.index(runs[0]) < direct.index(runs[1])
    # the short users are sent each message of the run by their listening ports, in order
    by_port = [(action.address[1], action.frame["text"]) for action in direct
               if type(action) is Deliver]
    assert by_port == [(7005, "one"), (7005, "two"), (7005, "three"),
                       (7006, "one"), (7006, "two"), (7006, "three")]
    assert core.run is None


def test_a_refused_broadcast_leaves_the_run_and_any_other_event_ends_it():
    core, tokens = _core_reading()
    for frame in ({"type": "broadcast", "token": tokens["u1"], "text": "kept"},
                  {"type": "broadcast", "token": tokens["u1"], "text": "x" * 100_000},
                  {"type": "broadcast", "token": tokens["u1"], "text": "also kept"}):
        core.handle(Request(1, frame, HOST), 1.0)
    assert [frame["text"] for frame in core.run.frames] == ["kept", "also kept"]
    # an acknowledgement from another connection (a read of its own) delivers the run first
    actions = core.handle(Acked("nobody", 1), 1.0)
    [run] = [action for action in actions if type(action) is DeliverRun]
    assert [frame["text"] for frame in run.frames] == ["kept", "also kept"]
    assert core.run is None


def test_a_broadcast_with_another_sessions_token_on_the_same_connection_ends_the_run():
    core, tokens = _core_reading()
    first = core.handle(Request(5, {"type": "broadcast", "token": tokens["u5"], "text": "a"},
                                HOST), 1.0)
    second = core.handle(Request(5, {"type": "broadcast", "token": tokens["u6"], "text": "b"},
                                 HOST), 1.0)
    assert [type(action) for action in first] == [Reply]
    ended = [action for action in second if type(action) is DeliverEach]
    assert [action.frame["text"] for action in ended] == ["a"]     # u5's, before u6's run
    assert core.run.sender.user == "u6"


def test_the_index_answers_crowded_for_a_run_as_for_each_message_boxed():
    """crowded for a run's recipients, answered from the fullest box before the run, is the
    answer the boxes give with every message of the run in them; reading a box boxes the run."""
    rng = random.Random(7)
    for _ in range(200):
        lazy, eager = log_index.LogIndex(), log_index.LogIndex()
        names = ["a", "b", "c", "d"]
        seq = 0
        for name in names:             # some backlog before the run
            for _ in range(rng.randrange(4)):
                seq += 1
                wire = b"x" * rng.randrange(1, 30)
                for index in (lazy, eager):
                    index.add(seq, [name], wire)
        run = rng.sample(names, rng.randrange(2, 5))
        for _ in range(rng.randrange(1, 8)):
            seq += 1
            wire = b"y" * rng.randrange(1, 30)
            lazy.add(seq, run, wire)
            eager.add(seq, list(run), wire)     # a new list each time: no run
            eager.box("a")
            messages, size_left = rng.randrange(1, 12), rng.randrange(0, 200)
            assert lazy.crowded(run, messages, size_left) == eager.crowded(run, messages,
                                                                           size_left)
        for name in names:
            assert lazy.box(name) == eager.box(name)
            assert lazy.positions(name, 0, -1) == eager.positions(name, 0, -1)
        assert (lazy.deliveries, lazy.total) == (eager.deliveries, eager.total)


def test_a_boxs_bytes_after_acknowledgements_answer_as_their_exact_sum_would():
    """Acknowledgements leave a box's bytes a bound over what waits (log_index.Box): crowded,
    for a run's recipients and for others, and room_for_one answer as the exact sum would,
    and box() gives the exact sum."""
    rng = random.Random(11)
    index = log_index.LogIndex()
    everyone = ["a", "b", "c"]          # one list: broadcasts to it in a row are a run
    waiting = {name: {} for name in everyone}      # name -> {seq: size}
    seq = 0
    for _ in range(3000):
        step = rng.random()
        if step < 0.5:
            seq += 1
            to = rng.choice([everyone, everyone, [rng.choice(everyone)], everyone[:2]])
            wire = b"z" * rng.randrange(1, 40)
            index.add(seq, to, wire)
            for name in to:
                waiting[name][seq] = len(wire)
        elif step < 0.8:
            name = rng.choice(everyone)
            if waiting[name]:
                upto = rng.choice(sorted(waiting[name]))
                index.acknowledge(name, upto)
                waiting[name] = {s: size for s, size in waiting[name].items() if s > upto}
        else:
            exact = {name: sum(waiting[name].values()) for name in everyone}
            size_left = rng.randrange(0, 400)
            if step < 0.9:          # (each first, as either counts a box it finds over)
                name, size = rng.choice(everyone), rng.randrange(1, 40)
                assert index.room_for_one(name, size, 10**6, 10**9, 10**6,
                                          size_left + size) == (
                    "box" if exact[name] > size_left else None)
            else:
                assert index.crowded(rng.choice([everyone, list(everyone)]), 10**6,
                                     size_left) == {
                    name for name in everyone if exact[name] > size_left}
            for name in everyone:
                assert index.box(name) == (len(waiting[name]), exact[name])


class _Target:
    """What a window belongs to: a session's `window` and `acked`."""

    def __init__(self, sent, sent_bytes, backlog=0, retrying=False):
        self.acked = 0
        self.window = None
        if sent or backlog or retrying:
            waiting = [Numbered({}, seq=50 + n) for n in range(backlog)]
            for frame in waiting:
                frame.wire = b"w" * 5
            self.window = Window(0, sent=list(range(1, sent + 1)), sent_sizes=[0] * sent,
                                 sent_bytes=sent_bytes, backlog=waiting,
                                 backlog_bytes=5 * backlog, complete=True, retrying=retrying)


def test_a_run_leaves_every_window_as_offering_each_message_in_turn_does():
    """At and around both bounds of the window (messages and bytes), and of the backlog
    behind it, with a backlog or a retry due: offer_run sends each target the messages that
    offer_each would, and leaves its window the same, the rest waiting in the same places."""
    frames = []
    for seq, size in ((101, 10), (102, 20), (103, 30), (104, 5)):
        frame = Numbered({"type": "broadcast"}, seq=seq)
        frame.wire = b"x" * size
        frames.append(frame)
    shapes = [(sent, sent_bytes, 0, False) for sent in range(8) for sent_bytes in range(55, 102)]
    shapes += [(1, 10, 1, False), (1, 10, 0, True), (0, 0, 1, False)]
    saved = delivery.BACKLOG_MAX, delivery.BACKLOG_BYTES
    for delivery.BACKLOG_MAX, delivery.BACKLOG_BYTES in ((2, 10**6), (100, 37), (100, 30), saved):
        deliveries = Deliveries(None, 6, 100, 1.0, 30.0)
        try:
            ones = [_Target(*shape) for shape in shapes]
            each = [[frame for frame in frames if deliveries.offer_each([one], frame)]
                    for one in ones]
            runs = [_Target(*shape) for shape in shapes]
            went = {id(target): [] for target in runs}
            for going, targets in deliveries.offer_run(runs, frames):
                for target in targets:
                    went[id(target)] += going
        finally:
            delivery.BACKLOG_MAX, delivery.BACKLOG_BYTES = saved
        for shape, one, run, sent in zip(shapes, ones, runs, each):
            assert went[id(run)] == sent, shape
            assert run.window == one.window, shape
    assert any(0 < len(sent) < len(frames) for sent in each)       # some went, some wait
