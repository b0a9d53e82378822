"""What each sender has left for users who are away, so that no one sender fills an absent
user's inbox, or the store, for everyone else.

A recipient's quota (`--inbox-messages`, `--inbox-bytes`) counts what waits for them, whoever
sent it: one user with a script filled an absent user's inbox in about a minute, after which
nobody else could leave that user a word until they came back and read it all (a trial's). So
a sender may leave one absent user at most a share of their inbox (a tenth), and all absent
users together at most a share of the store. What a sender left for a user counts until that
user's next login, which delivers it: a user who is online reads what comes, and only their own
client, not a sender, can let it pile up.

Kept in memory: a restart forgets the counts (what they counted stays stored), so a sender may
leave a second share after one.
"""


class Shares:
    """Per absent recipient, per sender: [messages, bytes] left since the recipient's last
    login; and per sender, the sum over every absent recipient."""

    def __init__(self, share, inbox_messages, inbox_bytes, store_messages, store_bytes):
        """A sender's share is 1/`share` of each quota (1: all of it, as if there were none)."""
        self._one = (max(1, inbox_messages // share), max(1, inbox_bytes // share))
        self._all = (max(1, store_messages // share), max(1, store_bytes // share))
        self._for = {}          # recipient -> {sender: [messages, bytes]}
        self._by = {}           # sender -> [messages, bytes], for all absent recipients

    def full(self, sender, recipient, size):
        """None if `sender` may leave absent `recipient` one more message of `size` bytes;
        else which share it would overfill: "inbox" (this recipient's) or "store" (all of
        them together)."""
        left = self._for.get(recipient)
        mine = left.get(sender) if left is not None else None
        if mine is not None and (mine[0] >= self._one[0] or mine[1] + size > self._one[1]):
            return "inbox"
        total = self._by.get(sender)
        if total is not None and (total[0] >= self._all[0] or total[1] + size > self._all[1]):
            return "store"
        return None

    def left(self, sender, recipient, size):
        """`sender` left absent `recipient` a message of `size` bytes."""
        mine = self._for.setdefault(recipient, {}).setdefault(sender, [0, 0])
        mine[0] += 1
        mine[1] += size
        total = self._by.setdefault(sender, [0, 0])
        total[0] += 1
        total[1] += size

    def came_back(self, recipient):
        """`recipient` logged in: what was left for them is on its way, and counts no more."""
        left = self._for.pop(recipient, None)
        if left is None:
            return
        by = self._by
        for sender, (messages, size) in left.items():
            total = by[sender]
            total[0] -= messages
            total[1] -= size
            if total[0] <= 0:
                del by[sender]
