"""Senders' counters (senders.py): which of a client's numbered messages were taken."""
import senders
from senders import LAST, NEW, TAKEN, TOO_OLD, Senders


def take(counters, number, client="c", user="alice", at=0.0):
    assert counters.seen(user, client, number) is NEW
    counters.taken(user, client, number, {"type": "ok", "n": number}, at)


def test_a_number_is_new_until_taken_then_the_last_or_taken():
    counters = Senders()
    assert counters.seen("alice", "c", 1) is NEW and counters.reply_to_last("alice", "c") is None
    take(counters, 1)
    take(counters, 2)
    assert [counters.seen("alice", "c", n) for n in (1, 2, 3)] == [TAKEN, LAST, NEW]
    assert counters.seen("bob", "c", 1) is NEW and counters.seen("alice", "d", 1) is NEW
    reply = counters.reply_to_last("alice", "c")
    reply["id"] = 9                                             # the caller's copy
    assert counters.reply_to_last("alice", "c") == {"type": "ok", "n": 2}


def test_numbers_that_overtake_each_other_are_each_taken_once():
    """Within REPLAY_WINDOW of the highest, each number is told apart: one that arrives after
    a higher one is new the first time and taken after; further back nobody can tell."""
    counters = Senders()
    for number in (5, 2, 9):
        take(counters, number)
    assert [counters.seen("alice", "c", n) for n in (1, 2, 3, 5, 8, 9, 10)] == [
        NEW, TAKEN, NEW, TAKEN, NEW, LAST, NEW]
    assert counters.reply_to_last("alice", "c") == {"type": "ok", "n": 9}     # the highest's
    far = 9 + senders.REPLAY_WINDOW
    take(counters, far)
    assert counters.seen("alice", "c", 9) is TOO_OLD
    assert counters.seen("alice", "c", 10) is NEW           # the window's oldest number
    assert counters.seen("alice", "c", far) is LAST


def test_a_number_far_past_the_highest_costs_what_a_near_one_does():
    """A jump of 2^45 (the largest number is 2^53 - 1) left nothing of the window to keep,
    but shifting it that far built an integer 2^45 bits wide first: a hostile trial saw 1.5 s
    of CPU a message at 2^33, and a MemoryError after the message was kept (then stored again
    at each retry) at 2^50."""
    counters = Senders()
    take(counters, 7)
    take(counters, 8)
    far = 8 + 2 ** 45
    take(counters, far)
    assert [counters.seen("alice", "c", n) for n in (8, far - 1023, far - 1, far)] == [
        TOO_OLD, NEW, NEW, LAST]
    take(counters, far - 1)
    assert counters.seen("alice", "c", far - 1) is TAKEN


def test_a_user_keeps_the_counters_of_its_most_recent_client_ids_only(monkeypatch):
    monkeypatch.setattr(senders, "CLIENTS_PER_USER", 2)
    counters = Senders()
    for n, client in enumerate(["a", "b", "a", "c"]):
        take(counters, n + 1, client)
    assert [counters.seen("alice", c, n) for c, n in (("a", 3), ("b", 2), ("c", 4))] == [
        LAST, NEW, LAST]                                    # b, least recently used, went
    rows, gone = counters.take_moved()
    assert [row[:3] for row in rows] == [("alice", "a", 3), ("alice", "c", 4)]
    assert gone == [("alice", "b")] and not counters


def test_a_client_id_outlives_hundreds_of_runs_of_its_account():
    """(a trial's account, a script run 70 times while one run's reply was lost on the way,
    forgot that run's id: its retry was stored twice)"""
    counters = Senders()
    take(counters, 1, "suspended")
    for run in range(70 * 60):
        take(counters, 1, f"run{run}")
        if run == 900:
            assert counters.seen("alice", "suspended", 1) is LAST
    assert counters.seen("alice", "suspended", 1) is NEW    # (but not for ever)


def test_what_changed_is_handed_over_once_and_loads_back_the_same():
    counters = Senders()
    take(counters, 1, at=1.0)
    take(counters, 3, at=2.0)
    take(counters, 2, at=3.0)
    assert counters
    rows, gone = counters.take_moved()
    assert rows == [("alice", "c", 3, "7", {"type": "ok", "n": 3}, 3.0)] and gone == []
    assert not counters and counters.take_moved() == ([], [])
    again = Senders()
    again.load(rows)
    assert [again.seen("alice", "c", n) for n in (1, 2, 3, 4)] == [TAKEN, TAKEN, LAST, NEW]
    again.forget_before("alice", 3.5)
    assert again.seen("alice", "c", 3) is NEW and again.take_moved() == ([], [("alice", "c")])
