"""The store's log against a model, under seeded random keeps, acknowledgements, commits,
rewrites and crashes: whatever the order, nothing committed and unacknowledged is lost, nothing
uncommitted survives a crash, what waits is always every message above some cursor, lines come
back intact, and no number that reached the disk is given again."""
import json
import random

import pytest

import log_index
import protocol
import storage
from timers import VirtualClock
from storage import Store

USERS = ["alice", "bob", "carol", "dave"]


class Model:
    """What the store must hold: every message kept, which commit made it durable, and each
    user's acknowledgement as the store was told it."""

    def __init__(self):
        self.messages = {}          # seq -> (recipients, text)
        self.durable = set()        # seqs committed
        self.pending = set()        # seqs kept since the last commit
        self.acked = {}             # user -> highest seq acknowledged
        self.highest_durable = 0

    def expected(self, user, acked):
        """Durable messages for `user` above `acked`."""
        return sorted(seq for seq in self.durable
                      if user in self.messages[seq][0] and seq > acked)


def run(seed, clock, path):
    rng = random.Random(seed)
    store = Store(path, clock)
    model = Model()
    for step in range(400):
        roll = rng.random()
        if roll < 0.45:
            recipients = rng.sample(USERS, rng.randint(1, len(USERS)))
            text = f"m{step} " + "x" * rng.randint(0, 300)
            seq, line = store.keep(recipients, protocol.line_head({"text": text}))
            assert seq > model.highest_durable          # never a number the disk has seen
            kept = json.loads(line)
            # with a clock the line says when it was kept (its pass's first keep: not later)
            at = kept.pop("at", None)
            assert at is None if clock is None else at <= clock.wall()
            assert kept == {"text": text, "seq": seq}
            model.messages[seq] = (recipients, text)
            model.pending.add(seq)
        elif roll < 0.7:
            user = rng.choice(USERS)
            waiting = store.waiting(user)
            if waiting:
                upto = rng.choice(waiting)[0]
                store.acknowledge(user, upto)
                model.acked[user] = max(model.acked.get(user, 0), upto)
        elif roll < 0.85:
            store.commit()
            model.durable |= model.pending
            model.pending.clear()
            model.highest_durable = max(model.durable, default=0)
        elif roll < 0.95:
            if clock is not None:
                clock.advance(rng.choice([0.1, 0.5, storage.COMPACT_S]))
        else:
            store.close()                               # a crash: nothing since commit
            store = Store(path, clock)
            for seq in model.pending:
                del model.messages[seq]
            model.pending.clear()
            for user in USERS:
                got = [seq for seq, _ in store.waiting(user)]
                # what waits is every durable message above some cursor, at most the one the
                # store was told: nothing unacknowledged lost, nothing uncommitted back
                acked = model.acked.get(user, 0)
                assert set(model.expected(user, acked)) <= set(got)
                assert got == model.expected(user, min(got, default=acked + 1) - 1) or got == []
                assert set(got) <= model.durable
                # acknowledgements not yet compacted were forgotten (they come again), and so
                # were those of uncommitted messages, whose numbers may be given again
                mine = [seq for seq in model.durable if user in model.messages[seq][0]]
                model.acked[user] = min(got) - 1 if got else max(mine, default=0)
        for user in USERS:                              # in memory: exactly what the model says
            acked = model.acked.get(user, 0)
            waiting = store.waiting(user)
            live = sorted(seq for seq, (names, _) in model.messages.items()
                          if user in names and seq > acked
                          and (seq in model.durable or seq in model.pending))
            assert [seq for seq, _ in waiting] == live
            assert all(json.loads(line)["text"] == model.messages[seq][1] for seq, line in waiting)
            # and the box's bytes (the quotas read them) are those lines', however trimmed
            assert store.box(user) == (len(live), sum(len(line) for _, line in waiting))
        assert store.count_all_waiting() == sum(store.box(user)[0] for user in USERS)
    store.close()


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("with_clock", [False, True], ids=["no clock", "clock"])
def test_the_log_keeps_what_it_must_through_random_crashes(tmp_path, monkeypatch, seed,
                                                           with_clock):
    monkeypatch.setattr(log_index, "REWRITE_MIN", 4)      # rewrites happen in short runs too
    monkeypatch.setattr(storage, "RECORDS_CACHED", 2)   # and reads from the disk
    run(seed, VirtualClock() if with_clock else None, str(tmp_path / "chat.db"))
