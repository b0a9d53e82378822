"""The timer wheel and the clocks: checked against a plain heap, and through a Reactor."""
import heapq
import random
import sys

import pytest

from pacing import Lapses
from reactor import Reactor
from timers import TICK_S, WHEEL_SLOTS, RealClock, TimerWheel, VirtualClock

REVOLUTION_S = TICK_S * WHEEL_SLOTS


class HeapReference:
    """The obvious timer queue: a heap of (deadline, seq) with lazy cancellation."""

    def __init__(self):
        self._heap = []
        self._cancelled = set()
        self.live = {}                  # seq -> deadline

    def schedule(self, deadline, seq):
        heapq.heappush(self._heap, (deadline, seq))
        self.live[seq] = deadline

    def cancel(self, seq):
        self._cancelled.add(seq)
        del self.live[seq]

    def earliest(self):
        self._drop_cancelled()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now):
        due = []
        while self.earliest() is not None and self._heap[0][0] <= now:
            deadline, seq = heapq.heappop(self._heap)
            del self.live[seq]
            due.append(seq)
        return due

    def _drop_cancelled(self):
        while self._heap and self._heap[0][1] in self._cancelled:
            self._cancelled.discard(heapq.heappop(self._heap)[1])


def random_delay_s(rng):
    """Delays of every kind the server uses: soon, seconds, past a revolution, in the past."""
    kind = rng.random()
    if kind < 0.3:
        return rng.uniform(0, 3 * TICK_S)
    if kind < 0.6:
        return rng.uniform(0, REVOLUTION_S)
    if kind < 0.8:
        return rng.uniform(REVOLUTION_S, 6 * REVOLUTION_S)
    if kind < 0.9:
        return round(rng.uniform(0, 2), 2)          # coarse values make equal deadlines
    return -rng.uniform(0, 1)                       # already due when scheduled


def random_step_s(rng, ref, now):
    kind = rng.random()
    if kind < 0.1:
        return 0.0
    if kind < 0.25 and ref.earliest() is not None:
        return max(0.0, ref.earliest() - now)      # land exactly on a deadline
    if kind < 0.6:
        return rng.uniform(0, 2 * TICK_S)
    if kind < 0.95:
        return rng.uniform(0, 1)
    return rng.uniform(REVOLUTION_S, 3 * REVOLUTION_S)


def run_random_schedule(seed, timers=10_000):
    """Drive a wheel and the heap with the same operations; assert they agree at every step."""
    rng = random.Random(seed)
    now = rng.uniform(0, 100)
    wheel, ref = TimerWheel(now), HeapReference()
    handles = {}                        # seq -> Timer
    scheduled = fired = 0
    while scheduled < timers or ref.live:
        for _ in range(rng.randrange(0, 12) if scheduled < timers else 0):
            scheduled += 1
            deadline = now + random_delay_s(rng)
            handles[scheduled] = wheel.schedule(deadline, scheduled)
            ref.schedule(deadline, scheduled)
        for _ in range(rng.randrange(0, 4)):
            if not ref.live:
                break
            seq = rng.choice(list(ref.live))
            handles.pop(seq).cancel()
            ref.cancel(seq)
            if rng.random() < 0.6:      # re-arm: a heartbeat moved the deadline
                scheduled += 1
                deadline = now + random_delay_s(rng)
                handles[scheduled] = wheel.schedule(deadline, scheduled)
                ref.schedule(deadline, scheduled)
        assert len(wheel) == len(ref.live)
        bound, earliest = wheel.next_deadline(), ref.earliest()
        assert (bound is None) == (earliest is None)
        if earliest is not None:
            assert bound <= earliest
        now += random_step_s(rng, ref, now)
        got = [timer.fn for timer in wheel.pop_due(now)]
        assert got == ref.pop_due(now)
        for seq in got:
            assert not handles.pop(seq).active
        fired += len(got)
    return scheduled, fired


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_wheel_fires_like_a_heap_on_random_schedules(seed):
    scheduled, fired = run_random_schedule(seed)
    assert scheduled >= 10_000
    assert fired > scheduled // 2       # most timers fire; the rest were cancelled


def test_wheel_keeps_timers_beyond_one_revolution_in_their_slot():
    wheel = TimerWheel(0.0)
    far = wheel.schedule(REVOLUTION_S * 3 + 0.005, "far")
    near = wheel.schedule(0.005, "near")      # same slot, an earlier revolution
    assert far.tick % WHEEL_SLOTS == near.tick % WHEEL_SLOTS
    assert [t.fn for t in wheel.pop_due(REVOLUTION_S)] == ["near"]
    assert wheel.next_deadline() == far.deadline
    assert wheel.pop_due(REVOLUTION_S * 3) == []
    assert [t.fn for t in wheel.pop_due(REVOLUTION_S * 3 + 0.005)] == ["far"]
    assert wheel.next_deadline() is None


def test_wheel_finds_the_earliest_when_every_timer_is_more_than_a_revolution_away():
    wheel = TimerWheel(0.0)
    wheel.schedule(100.0, "a")
    wheel.schedule(50.0, "b")
    wheel.pop_due(0.0)                  # forgets the cached bound
    assert wheel.next_deadline() == 50.0


def test_next_deadline_after_cancel_is_a_bound_and_waking_early_recomputes_it():
    wheel = TimerWheel(0.0)
    first = wheel.schedule(1.0, "first")
    wheel.schedule(2.0, "second")
    first.cancel()
    assert wheel.next_deadline() <= 2.0
    assert wheel.pop_due(1.0) == []
    assert wheel.next_deadline() == 2.0


def test_cancel_is_safe_twice_and_after_firing():
    wheel = TimerWheel(0.0)
    timer = wheel.schedule(1.0, "x")
    timer.cancel()
    timer.cancel()
    assert not timer.active and len(wheel) == 0
    fired = wheel.schedule(1.0, "y")
    assert [t.fn for t in wheel.pop_due(1.0)] == ["y"]
    fired.cancel()
    assert len(wheel) == 0


def test_scheduling_into_an_emptied_wheel_sets_an_exact_earliest():
    wheel = TimerWheel(0.0)
    first = wheel.schedule(1.0, "a")
    assert wheel.next_deadline() == 1.0
    first.cancel()                      # leaves a stale bound of 1.0
    wheel.schedule(5.0, "b")
    assert wheel.next_deadline() == 5.0


# -- through a Reactor and a VirtualClock ---------------------------------------------------

@pytest.fixture
def clock():
    return VirtualClock()


@pytest.fixture
def reactor(clock):
    return Reactor(clock, log=lambda text: None)


def test_timers_due_at_the_same_instant_fire_in_scheduling_order(clock, reactor):
    fired = []
    for name in "abcde":
        reactor.call_at(1.0, lambda name=name: fired.append(name))
    reactor.call_at(0.5, lambda: fired.append("early"))
    clock.advance(1.0)
    assert fired == ["early", "a", "b", "c", "d", "e"]


def test_a_timer_scheduled_by_a_callback_waits_for_the_next_pass(clock, reactor):
    fired = []

    def first():
        fired.append("first")
        reactor.call_at(0.0, lambda: fired.append("already due"))
        reactor.call_soon(lambda: fired.append("soon"))
    reactor.call_at(1.0, first)
    reactor.call_at(1.0, lambda: fired.append("second"))
    clock._now = 1.0                    # move time without advance's extra passes
    reactor.run_once(timeout_s=0)
    assert fired == ["first", "second"]
    reactor.run_once(timeout_s=0)
    assert fired == ["first", "second", "already due", "soon"]


def test_cancelling_a_timer_that_is_due_in_the_same_pass_stops_it(clock, reactor):
    fired = []
    later = None

    def first():
        fired.append("first")
        later.cancel()                  # e.g. a reply arrived and cancels its time-out
    reactor.call_at(1.0, first)
    later = reactor.call_at(1.0, lambda: fired.append("cancelled"))
    clock.advance(2.0)
    assert fired == ["first"]


def test_rearming_moves_the_deadline(clock, reactor):
    fired = []
    timer = reactor.call_later(30.0, lambda: fired.append(clock.now()))
    clock.advance(20.0)
    timer.cancel()
    reactor.call_later(30.0, lambda: fired.append(clock.now()))
    clock.advance(15.0)
    assert fired == []
    clock.advance(20.0)
    assert fired == [50.0]


def test_advance_fires_everything_due_in_order_at_each_deadline(clock, reactor):
    rng = random.Random(7)
    deadlines = [rng.uniform(0, 100) for _ in range(500)]
    seen = []
    for deadline in deadlines:
        reactor.call_at(deadline, lambda d=deadline: seen.append((d, clock.now())))
    clock.advance(100.0)
    assert [d for d, _ in seen] == sorted(deadlines)
    assert all(d == at for d, at in seen)
    assert clock.now() == 100.0


def test_advance_handles_jumps_of_hours(clock, reactor):
    seen = []
    hour_s = 3600.0
    for deadline in (5 * hour_s + 0.25, 0.5, 2 * hour_s, 5 * hour_s + 0.125):
        reactor.call_at(deadline, lambda: seen.append(clock.now()))
    clock.advance(6 * hour_s)
    assert seen == [0.5, 2 * hour_s, 5 * hour_s + 0.125, 5 * hour_s + 0.25]
    assert reactor.next_deadline() is None


def test_advance_runs_a_chain_of_timers_each_scheduled_by_the_previous(clock, reactor):
    seen = []

    def tick():
        seen.append(clock.now())
        if len(seen) < 5:
            reactor.call_later(1.0, tick)
    reactor.call_later(1.0, tick)
    clock.advance(10.0)
    assert seen == [1.0, 2.0, 3.0, 4.0, 5.0]


def test_advance_serves_every_attached_reactor(clock, reactor):
    other = Reactor(clock, log=lambda text: None)
    seen = []
    reactor.call_at(2.0, lambda: seen.append("first reactor"))
    other.call_at(1.0, lambda: seen.append("second reactor"))
    clock.advance(3.0)
    assert seen == ["second reactor", "first reactor"]


def test_a_clock_only_moves_forward(clock):
    with pytest.raises(ValueError):
        clock.advance(-1.0)


def test_an_exception_in_a_timer_is_logged_and_later_timers_still_fire():
    clock, logged, fired = VirtualClock(), [], []
    reactor = Reactor(clock, log=logged.append)
    reactor.call_at(1.0, lambda: 1 / 0)
    reactor.call_at(1.0, lambda: fired.append("next"))
    clock.advance(1.0)
    assert fired == ["next"]
    assert len(logged) == 1 and "ZeroDivisionError" in logged[0]


def test_virtual_clock_wall_time_moves_with_it():
    clock = VirtualClock(start=10.0, wall_start=1000.0)
    clock.advance(5.0)
    assert (clock.now(), clock.wall()) == (15.0, 1005.0)
    assert clock.poll_timeout(99.0) is None
    assert clock.poll_timeout(15.0) == 0.0


def test_a_pass_on_a_virtual_clock_waits_for_descriptors_not_for_timers(clock, reactor):
    reactor.call_at(99.0, lambda: None)
    assert reactor._poll_timeout(0.25) == 0.25      # 0 here would make a waiting loop spin
    assert reactor._poll_timeout(None) is None
    reactor.call_soon(lambda: None)
    assert reactor._poll_timeout(None) == 0.0       # a due timer must not wait for descriptors


def test_a_pass_on_a_real_clock_waits_until_the_next_timer_at_most():
    reactor = Reactor(RealClock(), log=lambda text: None)
    assert reactor._poll_timeout(0.25) == 0.25
    reactor.call_later(10.0, lambda: None)
    assert 9.0 < reactor._poll_timeout(None) <= 10.0
    assert reactor._poll_timeout(0.25) == 0.25


def test_real_clock_waits_until_the_deadline_and_never_negative():
    clock = RealClock()
    assert clock.wall() > 1_600_000_000
    now = clock.now()
    assert 0 < clock.poll_timeout(now + 10.0) <= 10.0
    assert clock.poll_timeout(now - 10.0) == 0.0


def test_run_once_with_a_real_clock_waits_for_the_next_timer():
    reactor = Reactor(RealClock(), log=lambda text: None)
    fired = []
    reactor.call_later(0.005, lambda: fired.append(True))
    for _ in range(100):                # bounded: each pass polls until the deadline
        reactor.run_once(timeout_s=1.0)
        if fired:
            break
    assert fired == [True]


def test_timers_carry_their_arguments_and_fire_them_in_order():
    clock = VirtualClock()
    reactor = Reactor(clock)
    fired = []
    reactor.call_later(2.0, fired.append, "later")
    reactor.call_at(1.0, lambda *args: fired.append(args), "at", 1)
    reactor.call_soon(fired.append, "soon")
    cancelled = reactor.call_later(1.5, fired.append, "cancelled")
    cancelled.cancel()
    clock.advance(3.0)
    assert fired == ["soon", ("at", 1), "later"]


def test_a_slot_emptied_after_a_burst_gives_its_memory_back():
    """A dict keeps the table of its largest size: 10,000 timers due in one tick left each
    slot they passed through holding a large table, 5 MB across the wheel."""
    wheel = TimerWheel(0.0)
    empty_size = sys.getsizeof(wheel._slots[0])
    fired = [wheel.schedule(0.005, n) for n in range(10_000)]
    cancelled = [wheel.schedule(1.005, n) for n in range(10_000)]
    for timer in cancelled:
        timer.cancel()
    assert len(wheel.pop_due(0.005)) == len(fired)
    assert {sys.getsizeof(slot) for slot in wheel._slots} == {empty_size}


def test_lapses_end_each_key_limit_after_its_last_touch_on_one_timer():
    clock = VirtualClock()
    reactor = Reactor(clock)
    lapsed = []
    lapses = Lapses(reactor, 10.0, lambda key: lapsed.append((key, clock.now())))
    for key in "abc":
        lapses.touch(key)
        clock.advance(1.0)
    assert len(reactor._wheel) == 1             # one timer for the three, not one each
    assert lapses.touch("a") is False           # at 3: "a" is the newest now
    assert lapses.discard("c") is True
    assert lapses.discard("nothing") is False and lapses.discard("c") is False
    clock.advance(7.5)
    assert lapsed == []                         # 10.5: nothing lapsed yet
    clock.advance(0.5)                          # 11: "b", touched at 1
    assert lapsed == [("b", 11.0)]
    clock.advance(100.0)
    assert lapsed == [("b", 11.0), ("a", 13.0)] and len(lapses) == 0
    assert len(reactor._wheel) == 0             # nothing left: no timer either
    assert lapses.touch("c") is True            # new here (again)
    assert "c" in lapses
    clock.advance(10.0)
    assert lapsed[-1] == ("c", 121.0)


def test_lapses_due_at_once_all_lapse_oldest_first_and_one_that_fails_stops_no_other():
    clock = VirtualClock()
    logged = []
    reactor = Reactor(clock, log=logged.append)
    lapsed = []

    def on_lapse(key):
        lapsed.append(key)
        if key == 2:
            raise RuntimeError("broken")
    lapses = Lapses(reactor, 5.0, on_lapse)
    for key in (1, 2, 3, 4):
        lapses.touch(key)
    lapses.touch(1)
    clock.advance(5.0)
    assert lapsed == [2, 3, 4, 1]
    assert len(logged) == 1 and "RuntimeError" in logged[0]
