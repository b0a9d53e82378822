"""Wrong passwords per name: three in a row block that name for a while, from any address.

Kept in the store, so a restart neither forgets a lockout nor its count. Times are the core's
`now` (monotonic seconds); the store turns them into wall-clock times, which outlive a restart.
"""


class Lockouts:
    """Wrong-password counts and blocked-until times, per name and from any address."""

    def __init__(self, store, max_attempts, lockout_s):
        self._store = store
        self._max_attempts = max_attempts
        self._lockout_s = lockout_s

    def locked_for(self, name, now):
        """The seconds `name` stays blocked, 0 if it is not; the window is half-open: free at
        locked_until. A block lasts at most the block time set now: one that would last longer
        (set by a run with a longer --block-time) ends as if set now with this one. (An
        operator's trial found a name locked for 27 hours by a restart's default of 30 s, with
        no way to free it; a restart with a shorter --block-time now frees it.)"""
        failures, locked_until = self._store.lockout(name)
        if locked_until is None or now >= locked_until:
            return 0
        if locked_until - now > self._lockout_s:
            locked_until = now + self._lockout_s
            self._store.set_lockout(name, failures, locked_until)
        return locked_until - now

    def fail(self, name, now):
        """Count a wrong password; returns the attempts left (0: `name` is now blocked)."""
        failures = self._store.lockout(name)[0] + 1
        if failures < self._max_attempts:
            self._store.set_lockout(name, failures, None)
            return self._max_attempts - failures
        # The last allowed failure blocks the name and starts a fresh count for afterwards.
        self._store.set_lockout(name, 0, now + self._lockout_s)
        return 0

    def clear(self, name):
        """A correct password forgets earlier failures. With none, nothing is written: a
        write would cost every login a disk sync."""
        failures, locked_until = self._store.lockout(name)
        if failures or locked_until is not None:
            self._store.clear_lockout(name)
