"""Wrong passwords per name: three in a row block that name for a while, from any address.

Kept in the store, so a restart neither forgets a lockout nor its count. Times are the core's
`now` (monotonic seconds); the store turns them into wall-clock times, which outlive a restart.
"""


class Lockouts:
    """Wrong-password counts and blocked-until times, per name and from any address."""

    def __init__(self, store, max_attempts, block_time_s):
        self._store = store
        self._max_attempts = max_attempts
        self._block_time_s = block_time_s

    def is_locked(self, name, now):
        """True while `name` is blocked; the window is half-open: free at locked_until."""
        locked_until = self._store.lockout(name)[1]
        return locked_until is not None and now < locked_until

    def fail(self, name, now):
        """Count a wrong password; returns the attempts left (0: `name` is now blocked)."""
        failures = self._store.lockout(name)[0] + 1
        if failures < self._max_attempts:
            self._store.set_lockout(name, failures, None)
            return self._max_attempts - failures
        # The last allowed failure blocks the name and starts a fresh count for afterwards.
        self._store.set_lockout(name, 0, now + self._block_time_s)
        return 0

    def clear(self, name):
        """A correct password forgets earlier failures. With none, nothing is written: a
        write would cost every login a disk sync."""
        failures, locked_until = self._store.lockout(name)
        if failures or locked_until is not None:
            self._store.clear_lockout(name)
