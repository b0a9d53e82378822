"""The log's status line: every STATUS_EVERY_S, when anything changed since the last one, who is
online, how many messages the server took, and what waits for whom. An operator's trial ran 10
minutes and 13,263 messages, and the log said only the logins: a busy server and a stuck one,
or a backlog growing toward store_full, read alike."""
from words import plural

STATUS_EVERY_S = 600.0
_MIB = 1024 * 1024


class StatusLine:
    """Logs the line on `reactor`'s timers, from the core's and the store's counts."""

    def __init__(self, reactor, core, store, log, store_messages, store_bytes,
                 every_s=STATUS_EVERY_S):
        self._reactor, self._core, self._store, self._log = reactor, core, store, log
        self._store_messages = store_messages       # the quotas the store is held to
        self._store_bytes = store_bytes
        self._every_s = every_s
        self._last = self._counts()
        reactor.call_later(every_s, self._tick)

    def _counts(self):
        """(users online, the last message number given, deliveries waiting)."""
        return (self._core.online_count(), self._store.head, self._store.count_all_waiting())

    def _tick(self):
        counts = self._counts()
        if counts != self._last:
            self._log(self.line(counts, self._last))
        self._last = counts
        self._reactor.call_later(self._every_s, self._tick)

    def line(self, counts, last):
        online, head, waiting = counts
        taken = head - last[1]
        minutes = self._every_s / 60
        users = len(self._store.names_waiting()) if waiting else 0
        held = self._store.total[1]
        return (f"status: {plural(online, 'user')} online; {plural(taken, 'message')} taken in "
                f"the last {minutes:g} minute{'' if minutes == 1 else 's'}; "
                f"{plural(waiting, 'message')} wait{'s' if waiting == 1 else ''} for "
                f"{plural(users, 'user')} (of {self._store_messages:,} allowed; "
                f"{held / _MIB:.1f} MiB stored of the {self._store_bytes / _MIB:.1f} MiB quota)")

