"""Time for the loop: the clocks (`RealClock` reads the system's; `VirtualClock` moves only when
told, so tests run days of timers in no time) and the hashed timer wheel the reactor keeps its
timers in (O(1) schedule and cancel, due timers in (deadline, scheduling order)). Nothing here
knows sockets; the reactor (reactor.py) runs the wheel's due timers once a pass.
"""
from time import monotonic as _monotonic, time as _wall

TICK_S = 0.01                        # timer wheel resolution
WHEEL_SLOTS = 4096                   # one revolution = 40.96 s: heartbeat deadlines (31 s) fit in
                                     # one, so finding the next deadline rarely looks past a slot


class RealClock:
    """Monotonic time for the loop, wall time for log stamps."""

    # the C functions themselves, not methods calling them: the clock is read several times
    # a request, and a Python call each was 0.1 us
    now = staticmethod(_monotonic)
    wall = staticmethod(_wall)

    def poll_timeout(self, deadline):
        """Seconds to wait in poll for `deadline`: really wait."""
        return max(0.0, deadline - self.now())


class VirtualClock:
    """A clock that moves only when told; `advance` fires due timers with no real waiting."""

    def __init__(self, start=0.0, wall_start=1_700_000_000.0):
        self._now = float(start)
        self._wall_offset = wall_start - start
        self._wheels = []

    def now(self):
        return self._now

    def wall(self):
        return self._now + self._wall_offset

    def poll_timeout(self, deadline):
        """0 if the timer is due; else None: virtual time never passes while polling.

        So a later timer sets no limit and a pass waits for descriptors up to run_once's
        timeout_s; always 0 made every pass with a timer pending (a connect) spin instead.
        """
        return 0.0 if deadline <= self._now else None

    def attach(self, reactor):
        """Let `advance` fire this reactor's timers."""
        self._wheels.append(reactor)

    def advance(self, seconds):
        """Move time forward by `seconds`, stopping at each due timer to fire it, in order."""
        if seconds < 0:
            raise ValueError("a clock only moves forward")
        target = self._now + seconds
        while True:
            deadlines = [d for d in (r.next_deadline() for r in self._wheels) if d is not None]
            if not deadlines or min(deadlines) > target:
                break
            self._now = max(self._now, min(deadlines))
            for reactor in self._wheels:
                reactor.timer_pass()
        self._now = target

    def stall(self, seconds):
        """Move time forward by `seconds` and fire nothing: the process was away (stopped with
        Ctrl-Z, a machine paused), so the next pass finds its timers late."""
        if seconds < 0:
            raise ValueError("a clock only moves forward")
        self._now += seconds


class Timer:
    """A scheduled callback; `cancel()` is O(1) and safe to call twice."""

    __slots__ = ("deadline", "seq", "fn", "args", "tick", "wheel")

    def __init__(self, deadline, seq, fn, args, tick, wheel):
        self.deadline, self.seq, self.fn, self.args = deadline, seq, fn, args
        self.tick, self.wheel = tick, wheel

    def cancel(self):
        if self.wheel is not None:
            self.wheel.remove(self)
        self.fn = None      # popped as due but not yet run: fire_timers skips it
        self.args = ()      # its arguments (a connection, say) are not kept alive by it

    @property
    def active(self):
        return self.wheel is not None


class TimerWheel:
    """A hashed timer wheel: O(1) schedule and cancel, due timers in (deadline, seq) order.

    A timer sits in slot tick % slots, where tick = deadline // tick_s. A slot also holds timers
    of later revolutions; popping compares deadlines, so those simply stay.
    """

    def __init__(self, now, tick_s=TICK_S, slots=WHEEL_SLOTS):
        self._tick_s = tick_s
        self._slots = [{} for _ in range(slots)]   # dict as an ordered set: O(1) delete
        self._cursor = self._tick(now)             # every tick before this one is empty
        self._seq = 0
        self._count = 0
        self._earliest = None                      # a lower bound of all deadlines, or None: unknown

    def __len__(self):
        return self._count

    def _tick(self, t):
        return int(t // self._tick_s)

    def schedule(self, deadline, fn, args=()):
        """Run fn(*args) at `deadline` (absolute seconds); returns the Timer."""
        tick = int(deadline // self._tick_s)        # (self._tick, inline: a timer or two a login)
        if tick < self._cursor:
            tick = self._cursor
        self._seq += 1
        timer = Timer(deadline, self._seq, fn, args, tick, self)
        self._slots[tick % len(self._slots)][timer] = None
        self._count += 1
        if self._earliest is not None and deadline < self._earliest:
            self._earliest = deadline
        elif self._count == 1:
            self._earliest = deadline
        return timer

    def remove(self, timer):
        index = timer.tick % len(self._slots)
        slot = self._slots[index]
        del slot[timer]
        if not slot:
            self._slots[index] = {}     # see pop_due
        timer.wheel = None
        self._count -= 1
        # _earliest stays a valid lower bound; waking early finds nothing and recomputes it

    def next_deadline(self):
        """The earliest deadline (or an earlier bound), or None when no timer is scheduled."""
        if self._count == 0:
            return None
        if self._earliest is None:
            self._earliest = self._find_earliest()
        return self._earliest

    def _find_earliest(self):
        slots = len(self._slots)
        for tick in range(self._cursor, self._cursor + slots):
            slot = self._slots[tick % slots]
            if not slot:        # most slots are empty; skipping them keeps a wake-up cheap
                continue
            this_revolution = [t.deadline for t in slot if t.tick == tick]
            if this_revolution:
                return min(this_revolution)
        return min(t.deadline for slot in self._slots for t in slot)

    def pop_due(self, now):
        """Remove and return every timer with deadline <= now, in (deadline, seq) order."""
        if self._count == 0 or (self._earliest is not None and self._earliest > now):
            now_tick = int(now // self._tick_s)     # (self._tick: most passes end here)
            if now_tick > self._cursor:
                self._cursor = now_tick
            return []
        now_tick = self._tick(now)
        slots = len(self._slots)
        if now_tick - self._cursor >= slots:
            scan = range(slots)
        else:
            scan = (t % slots for t in range(self._cursor, now_tick + 1))
        due = []
        for index in scan:
            slot = self._slots[index]
            ready = [t for t in slot if t.deadline <= now]
            for timer in ready:
                del slot[timer]
                timer.wheel = None
            if ready and not slot:
                # a dict keeps the table of its largest size: after a burst (10,000 logins)
                # the emptied slots held 5 MB until they were replaced
                self._slots[index] = {}
            due.extend(ready)
        self._count -= len(due)
        self._cursor = max(self._cursor, now_tick)
        self._earliest = None
        due.sort(key=lambda t: (t.deadline, t.seq))
        return due
