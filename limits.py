"""Rate limits as token buckets, keyed by whatever the caller names (a user, an address), and
the pacing rules that go with them: backoff between tries, one log line per burst.

A bucket holds at most `burst` tokens and gains `rate_per_s` tokens a second; each request
spends one. An empty bucket refuses, and says how long until the next token, so a flood gets
"slow down, try again in N s" and an honest burst passes. A full bucket is the same as no bucket,
so buckets that have refilled are forgotten and memory follows the recent senders only.

Time is the caller's `now` (seconds); nothing here reads a clock.
"""
import math

PRUNE_EVERY_S = 60.0     # how often full buckets are forgotten, at most
# One read that brings this many refused requests (empty lines, garbage, a flood past the rate
# limits) ends its connection: each refusal still cost a decode and a reply, and a trial's 30
# connections of empty lines (32,768 in each 32 KiB read) held everyone's heartbeat 15 s.
# A client that waits for its replies never sends so many wrong at once. (The server's
# connections, its IRC port's, and those it opens to listening ports, whose frames that are
# not acknowledgements count so.)
REFUSALS_PER_READ = 64
# blank lines one read may hold: skipped, not answered, each costs a look; past this many, a
# flood (a trial's 30 connections of 32,768 empty lines a read held everyone's heartbeat)
BLANKS_PER_READ = 1024
# Frames longer than LONG_FRAME_BYTES are read, from one address, at most this many bytes a
# second (LONG_FRAMES_BURST at once) while the address's rate limit is on; past it, such a
# frame is answered slow_down unread. What a frame costs to read depends on what it holds, up
# to 2.6 ms for 64 KB that fail at their end: a fuzzer's 600 connections from one address,
# each sending such frames, held another user's replies up to 3.9 s. An address's requests
# are counted only once read. (A 4,000-character message is 16 KB at most.)
LONG_FRAME_BYTES = 4096
LONG_FRAMES_PER_S = 1024 * 1024
LONG_FRAMES_BURST = 4 * 1024 * 1024


class RateLimiter:
    """Token buckets per key: `take(key, now)` -> 0.0 when allowed, else seconds to wait."""

    def __init__(self, rate_per_s, burst):
        # rate_per_s == 0 turns the limit off (every take is allowed), for benchmarks
        self.rate_per_s = float(rate_per_s)
        self.burst = float(burst)
        self.enabled = self.rate_per_s > 0 and self.burst > 0     # False: the limit is off
        self._buckets = {}          # key -> (tokens, as of this time)
        self._pruned_at = None

    def tokens(self, key, now):
        """How many tokens `key` has at `now` (burst when it never spent any)."""
        tokens, at = self._buckets.get(key, (self.burst, now))
        return min(self.burst, tokens + max(0.0, now - at) * self.rate_per_s)

    def take(self, key, now, cost=1.0):
        """Spend `cost` tokens of `key`: 0.0 if it had them, else the seconds until it has
        (a cost above the burst never passes; the caller must go another way)."""
        if not self.enabled:
            return 0.0
        if self._pruned_at is None or now - self._pruned_at >= PRUNE_EVERY_S:
            self._prune(now)    # (its time check inline: take is on every request's path)
        tokens, at = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, now - at) * self.rate_per_s)
        if tokens >= cost:
            self._buckets[key] = (tokens - cost, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (cost - tokens) / self.rate_per_s

    def check(self, key, now):
        """Like take, without spending: 0.0 if a token is there, else the seconds to wait."""
        if not self.enabled:
            return 0.0
        tokens = self.tokens(key, now)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate_per_s

    def spent(self, key):
        """True if `key` has spent tokens lately (its bucket is kept until it is full again)."""
        return key in self._buckets

    def __len__(self):
        return len(self._buckets)

    def _prune(self, now):
        """Forget buckets that are full again (take does this at most every PRUNE_EVERY_S)."""
        self._pruned_at = now
        self._buckets = {key: (tokens, at) for key, (tokens, at) in self._buckets.items()
                         if self.tokens(key, now) < self.burst}


def next_backoff(previous_s, first_s, max_s):
    """The wait before the next try after one more failure: first_s, then doubling up to max_s
    (previous_s 0 means no failure yet)."""
    return min(2 * previous_s or first_s, max_s)


def asked_wait(seconds, default_s, max_s):
    """The `seconds` a slow_down asked for (the server's word: anything) -> how long to wait:
    `default_s` unless it is a positive number, and `max_s` at most."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
        return default_s
    return min(float(seconds), max_s)


def wait_text(seconds):
    """Seconds to wait -> a whole number of seconds for people and the wire (at least 1)."""
    return max(1, math.ceil(seconds))


class OncePer:
    """`due(key, now)` is True at most once per `quiet_s` for each key: one log line per burst."""

    def __init__(self, quiet_s):
        self.quiet_s = quiet_s
        self._until = {}            # key -> quiet until
        self._pruned_at = None

    def due(self, key, now):
        """True if `key` has been quiet for quiet_s (or never seen); starts a new quiet period."""
        if self._pruned_at is None or now - self._pruned_at >= PRUNE_EVERY_S:
            self._pruned_at = now
            self._until = {k: until for k, until in self._until.items() if until > now}
        if now < self._until.get(key, now):
            return False
        self._until[key] = now + self.quiet_s
        return True


class Tally:
    """Log lines of one kind per key, said at most once per `quiet_s` with a count of the rest:
    the first of a burst is said at once; the others are counted, and `ended(now)` gives the
    counts of the quiet periods that are over, to be said in one line each. No input can then
    fill a log faster than about two lines per key per quiet_s (and keys come from a bounded
    set: an address, a kind of refusal)."""

    def __init__(self, quiet_s):
        self.quiet_s = quiet_s
        self._open = {}             # key -> [quiet until, repeats counted]
        self._over = []             # (key, repeats) of periods a new burst ended early

    def note(self, key, now):
        """One more line for `key` -> True if it is to be said now (the first of a burst)."""
        entry = self._open.get(key)
        if entry is not None and now < entry[0]:
            entry[1] += 1
            return False
        if entry is not None and entry[1]:
            self._over.append((key, entry[1]))
        self._open[key] = [now + self.quiet_s, 0]
        return True

    def ended(self, now):
        """[(key, repeats)] of every quiet period over by `now` that counted repeats, oldest
        first; they are said once and forgotten."""
        over, self._over = self._over, []
        for key, entry in list(self._open.items()):
            if now >= entry[0]:
                del self._open[key]
                if entry[1]:
                    over.append((key, entry[1]))
        return over

    def __bool__(self):
        """True while some period is open or has a count to say."""
        return bool(self._open or self._over)

    def __contains__(self, key):
        """True while `key`'s period is open."""
        return key in self._open
