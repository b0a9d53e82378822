"""What each sender has left for users who are not reading, so that no one sender fills a
user's inbox, or the store, for everyone else.

A recipient's quota (`--inbox-messages`, `--inbox-bytes`) counts what waits for them, whoever
sent it: one user with a script filled an absent user's inbox in about a minute, after which
nobody else could leave that user a word until they came back and read it all (a trial's); a
user logged in whose listening port the server cannot reach (behind NAT) fills up the same way.
So what a sender leaves a user counts while that user is away, or while a tenth of their inbox
(the share), and at least twice what a reading client has on its way, waits already, as when
their client takes nothing: one sender may leave such a user at most a share, and all such
users together at most a share of the store. The counts end when the user logs in, or
acknowledges until less than that waits.

Kept in memory: a restart forgets the counts (what they counted stays stored), so a sender may
leave a second share after one. A broadcast counts as a message to each such user it reaches:
it goes to users online only, but one who is not reading fills up as one away does (a trial's
sender filled such a user's inbox with 10,000 broadcasts); it skips those whose inbox is full,
or who have their share from its sender.
"""


class Shares:
    """Per counted recipient, per sender: [messages, bytes] left since the counting began;
    and per sender, the sum over every counted recipient."""

    def __init__(self, share, inbox_messages, inbox_bytes, store_messages, store_bytes,
                 window=(0, 0)):
        """A sender's share is 1/`share` of each quota (1: all of it, as if there were none).
        `window`: (messages, bytes) a client that reads may have on their way to it."""
        self._one = (max(1, inbox_messages // share), max(1, inbox_bytes // share))
        self._all = (max(1, store_messages // share), max(1, store_bytes // share))
        # (messages, bytes) waiting for a user past which what each sender leaves counts: a
        # share, but never less than twice what a client that reads may have on its way (a
        # fan-in of 32 senders kept over a thousand in flight to one reader)
        self.crowd = (max(self._one[0], 2 * window[0]), max(self._one[1], 2 * window[1]))
        self.counted = {}       # recipient -> {sender: [messages, bytes]}
        self._by = {}           # sender -> [messages, bytes], for all counted recipients

    def full(self, sender, recipient, size):
        """None if `sender` may leave `recipient` one more message of `size` bytes; else
        which share it would overfill: "inbox" (this recipient's) or "store" (all counted
        recipients' together)."""
        left = self.counted.get(recipient)
        mine = left.get(sender) if left is not None else None
        if mine is not None and (mine[0] >= self._one[0] or mine[1] + size > self._one[1]):
            return "inbox"
        total = self._by.get(sender)
        if total is not None and (total[0] >= self._all[0] or total[1] + size > self._all[1]):
            return "store"
        return None

    def left(self, sender, recipient, size):
        """`sender` left `recipient` (counted: away, or crowded) a message of `size` bytes."""
        mine = self.counted.setdefault(recipient, {}).setdefault(sender, [0, 0])
        mine[0] += 1
        mine[1] += size
        total = self._by.setdefault(sender, [0, 0])
        total[0] += 1
        total[1] += size

    def forget(self, recipient):
        """What was left for `recipient` counts no more: they logged in, and it is on its
        way, or they read until less than a share waits."""
        left = self.counted.pop(recipient, None)
        if left is None:
            return
        by = self._by
        for sender, (messages, size) in left.items():
            total = by[sender]
            total[0] -= messages
            total[1] -= size
            if total[0] <= 0:
                del by[sender]
