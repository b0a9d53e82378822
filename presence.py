"""When presence notices go out: at once while they are cheap, in batches when they are not.

Every login and logout is told to everyone online, so n users logging in cost n²/2 deliveries.
While that stays within a budget (a token bucket of deliveries a second), each change goes out at
once. Past it, changes wait and go to each user as one batch, max(batch_s, n / rate) after the
first (a batch is not charged, so presence may cost up to twice the rate). PROTOCOL.md says what
clients see. Pure timing: the core builds the notices.
"""
import limits


class Presence:
    """The presence budget and the batch waiting for its timer."""

    def __init__(self, rate_per_s, burst, batch_s):
        self._budget = limits.RateLimiter(rate_per_s, burst)
        self._rate_per_s = rate_per_s
        self._batch_s = batch_s
        self._batch = None      # [(user, online)] waiting for the batch timer, or None

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
