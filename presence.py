"""When presence notices go out: at once while they are cheap, in batches when they are not.

Every login and logout is told to everyone online, so n users logging in cost n²/2 deliveries.
While that stays within a budget (a token bucket of deliveries a second), each change goes out at
once. Past it, changes wait and go to each user as one batch, max(batch_s, n / rate) after the
first (a batch is not charged, so presence may cost up to twice the rate). And one user's
changes have a budget of their own: past it they are held, and only where the user is once the
budget has one again is told. PROTOCOL.md says what clients see. Pure timing: the core builds
the notices.
"""
import limits


class Presence:
    """The presence budget and the batch waiting for its timer; and the users whose changes
    are held back, as they come and go too often to be told each time."""

    def __init__(self, rate_per_s, burst, batch_s, flaps_per_s=0.0, flaps_burst=0):
        self._budget = limits.RateLimiter(rate_per_s, burst)
        self._rate_per_s = rate_per_s
        self._batch_s = batch_s
        self._batch = None      # [(user, online)] waiting for the batch timer, or None
        self._flaps = limits.RateLimiter(flaps_per_s, flaps_burst)
        # users whose changes are held back: each held at a login, so the others were last
        # told it is gone (a logout is never held), whatever it has done since
        self.held = set()

    def hold(self, user, online, now):
        """Whether `user`'s change (to `online`) is held back: None, it is told as usual; 0,
        it is held, and the timer to let it go is armed; else the time to arm it for. A user
        is held once it has changed more often than its budget of changes (an account that
        logged in and out in a loop put 5,853 lines on every screen in 10 s: a trial's), at a
        login; let go, only where it then is is told, if that is not what the others were
        told last."""
        if user in self.held:
            return 0
        fresh = not self._flaps.spent(user)
        if online and fresh:
            # a login with no change lately is not counted now: its bucket would be kept for
            # a minute, 77 bytes of each of 10,000 users logging in (a leaving user's is freed)
            return None
        # ... but with the logout that follows it: a burst of changes is told `burst` at
        # once, that login among them (told 11 of 10, a user logged out showed online for
        # the 6 s the next token took: a trial's)
        wait_s = self._flaps.take(user, now, cost=2 if fresh else 1)
        if not wait_s or not online:
            # a logout is told all the same: held, the others saw a user gone as online for
            # seconds, and `online` said so too (a review's); its next login is held instead
            return None
        self.held.add(user)
        return now + wait_s

    def let_go(self, user, online):
        """The hold on `user` ends -> True if the others must be told it is now `online`
        (they were told it is gone)."""
        if user not in self.held:
            return False
        self.held.discard(user)
        return online

    def change(self, user, online, listeners, now):
        """`user` came or went, with `listeners` others online -> "now": tell them at once;
        a time: a batch begins, arm its timer for then; None: it joined the waiting batch."""
        if self._batch is not None:
            self._batch.append((user, online))
            return None
        if not self._budget.take("all", now, cost=listeners):
            return "now"
        self._batch = [(user, online)]
        return now + max(self._batch_s, listeners / self._rate_per_s)

    def take_batch(self):
        """The changes of the batch, oldest first, and no batch waits any more ([] if none)."""
        changes, self._batch = self._batch or [], None
        return changes
