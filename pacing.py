"""Timers and log lines paced by key, on a reactor's timers: `KeyedTimers` (a core's timers,
named by their keys: arming one again replaces it), `Lapses` (keys that lapse when untouched
for a while, all on one timer), `RepeatedLines` (log lines a flood could repeat, said once
per key per quiet period, then counted) and `StateLines` (a state said as it changes, and
truly when it flaps). Each takes the reactor it times with; nothing here
knows sockets.
"""
import math

import limits


class KeyedTimers:
    """Timers named by a key, as cores ask for them: arming a key replaces its timer, and
    `fire(key)` runs when one is due."""

    def __init__(self, reactor, fire):
        self._reactor = reactor
        self._fire = fire
        self._timers = {}           # key -> Timer
        self._due_once = self._due  # one bound method for every timer (64 bytes each, else)

    def arm(self, key, at):
        """Fire `key` at clock time `at`, instead of whenever it was armed for before."""
        self.cancel(key)
        self._timers[key] = self._reactor.call_at(at, self._due_once, key)

    def cancel(self, key):
        """Forget `key`'s timer; nothing happens if there is none."""
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def __contains__(self, key):
        return key in self._timers

    def _due(self, key):
        del self._timers[key]
        self._fire(key)


class Lapses:
    """Keys that lapse `limit_s` after they were last touched, all on one timer: `touch(key)`
    starts a key's time again, and `on_lapse(key)` runs once it has gone untouched that long.

    With one limit for every key, the order keys were last touched in is the order they lapse
    in: a dict re-inserted at each touch keeps that order, and one timer, due at the oldest's
    lapse, does for them all (it lapses what is due and is armed again for the next). A timer
    each (with its wheel entry, deadline and re-arms) was 270 bytes of every idle connection.
    """

    __slots__ = ("_reactor", "limit_s", "_on_lapse", "_since", "_timer")

    def __init__(self, reactor, limit_s, on_lapse):
        self._reactor = reactor
        self.limit_s = limit_s
        self._on_lapse = on_lapse
        self._since = {}            # key -> clock time it was last touched, the oldest first
        self._timer = None          # due no later than the oldest key's lapse, while there is one

    def touch(self, key):
        """`key` lapses limit_s from now (instead of whenever it was to before) -> True if it
        was not here."""
        now = self._reactor.clock.now()
        since = self._since
        new = since.pop(key, None) is None  # re-inserted: the end of the order is the latest
        since[key] = now
        if self._timer is None:
            self._timer = self._reactor.call_at(now + self.limit_s, self._due)
        return new

    def discard(self, key):
        """Forget `key` -> True if it was here. (The timer stays: waking early, it finds
        nothing due and is armed again for the oldest left.)"""
        since = self._since
        if since.pop(key, None) is None:
            return False
        if not since:
            # a dict keeps the table of its largest size: a burst of 10,000 logins, each past
            # its first-frame limit, left that limit's empty dict holding 37 bytes a user
            self._since = {}
        return True

    def __contains__(self, key):
        return key in self._since

    def __len__(self):
        return len(self._since)

    def _due(self):
        self._timer = None
        now = self._reactor.clock.now()
        limit_s = self.limit_s
        since = self._since
        lapsed = []
        for key, touched_at in since.items():
            if now < touched_at + limit_s:
                self._timer = self._reactor.call_at(touched_at + limit_s, self._due)
                break
            lapsed.append(key)
        for key in lapsed:
            del since[key]
        if lapsed and not since:
            self._since = {}        # (as discard)
        for key in lapsed:      # each on its own: one that fails does not keep the rest open
            try:
                self._on_lapse(key)
            except Exception as exc:
                self._reactor.report(exc)


class RepeatedLines:
    """Log lines a flood could repeat, said once per key per `quiet_s`: the first of a burst at
    once, then one line with how many more came (limits.Tally), on a timer of the reactor's.
    Keys are bounded one by one (an address, a kind), but not in number: past `max_lines`
    lines in a quiet period (many addresses), the rest are counted in one line at its end."""

    def __init__(self, reactor, log, quiet_s=60.0, max_lines=200):
        self._reactor = reactor
        self._log = log
        self._tally = limits.Tally(quiet_s)
        self._about = {}            # key -> what the count line says it counted
        self._timer = None
        self.max_lines = max_lines
        self._said = 0              # lines said since the timer last ran
        self._unsaid = 0            # ... and lines left unsaid past max_lines

    def say(self, key, text, about):
        """`text` if it is the first for `key` in a while; else it is counted as `about`."""
        if self._tally.note(key, self._reactor.clock.now()):
            self._say(text)
        self._about[key] = about
        if self._timer is None:
            self._timer = self._reactor.call_later(self._tally.quiet_s, self._say_counts)

    def _say(self, text):
        if self._said < self.max_lines:
            self._said += 1
            self._log(text)
        else:
            self._unsaid += 1

    def flush(self):
        """Say every count still open now (the program stops: a count left would be lost)."""
        if self._timer is not None:
            self._timer.cancel()
        self._say_counts(math.inf, "before the stop")

    def _say_counts(self, now=None, when=None):
        """Say the counts of the periods over by `now` (the clock's), and what went unsaid
        past max_lines; `when` words the time they cover."""
        self._timer = None
        self._said = 0
        when = when or f"in the last {self._tally.quiet_s:g} s"
        for key, repeats in self._tally.ended(self._reactor.clock.now() if now is None else now):
            self._say(f"{self._about[key]}: {repeats} more like it {when}")
        if self._unsaid:
            # (said past the bound: the one line that stands for all the rest)
            self._log(f"{self._unsaid} more log lines of floods from many sources were not "
                      f"written {when} (past {self.max_lines} in that time)")
            self._unsaid = 0
        # what is said of keys whose periods ended goes with them (kept until the tally was
        # empty, a trickle from one address kept every other address's entry)
        self._about = {key: about for key, about in self._about.items() if key in self._tally}
        if self._tally:
            self._timer = self._reactor.call_later(self._tally.quiet_s, self._say_counts)


class StateLines:
    """A state said in the log as it changes, good or bad (the store cannot commit, commits
    again), and true when it flaps: a change to bad is said at once unless the log says bad
    already; a change to good at once unless one was said in the last `quiet_s`, else held.
    At the end of that time, the state it is in, with how often it changed unsaid, unless the
    log says it already with nothing unsaid. (Folded as repeated lines are, an operator's
    trial's log said "the store commits again" for a minute in which every write was
    refused.) Flapping, it says a few lines a period at most: the period's summary, then a
    recovery and a failure (a review's count: three a minute)."""

    def __init__(self, reactor, log, good_text, quiet_s=60.0):
        self._reactor = reactor
        self._log = log
        self._good_text = good_text
        self._bad_text = None
        self.quiet_s = quiet_s
        self.bad = False                # the state now
        self._said_bad = False          # the state the log says
        self._good_said_at = -math.inf
        self._unsaid = 0                # changes of state since the last line
        self._timer = None

    def went_bad(self, text):
        """The state is bad now, said as `text` (a bad state's own words are its latest)."""
        self._bad_text = text
        if self.bad:
            return
        self.bad = True
        if self._said_bad:
            self._unsaid += 1
        else:
            self._say(text)

    def went_good(self):
        """The state is good now."""
        if not self.bad:
            return
        self.bad = False
        now = self._reactor.clock.now()
        if now - self._good_said_at >= self.quiet_s:
            self._good_said_at = now
            self._say(self._good_text)
            return
        self._unsaid += 1
        if self._timer is None:
            self._timer = self._reactor.call_at(self._good_said_at + self.quiet_s, self._due)

    def flush(self):
        """The program stops: what is unsaid is said now."""
        if self._timer is not None:
            self._timer.cancel()
        self._due()

    def _due(self):
        self._timer = None
        if not self._unsaid:
            return
        if not self.bad:
            self._good_said_at = self._reactor.clock.now()
        changes = "1 change" if self._unsaid == 1 else f"{self._unsaid} changes"
        self._say(f"{self._bad_text if self.bad else self._good_text} (after {changes} of state "
                  f"since the last line on it)")

    def _say(self, text):
        self._log(text)
        self._said_bad = self.bad
        self._unsaid = 0
