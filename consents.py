"""Consent for peer to peer: who asked whom for an address, and who may dial whom.

`getaddress` asks; the target answers within the consent time or the ask lapses. A yes makes a
random key for the pair, which the asker proves itself with at the target's listener. Both live
in memory only, so a restart ends every consent, and both end with either side's session
(PROTOCOL.md, "Peer to peer"). Pure state: the core says who is told what.
"""


class Consents:
    """Waiting asks and granted keys, by (asker, target) pair."""

    def __init__(self, consent_s, make_key):
        self._consent_s = consent_s
        self._make_key = make_key
        self._asks = {}         # (requester, target) -> asked_until: waiting for an answer
        self._grants = {}       # (holder, granter) -> key: holder may dial granter's port
        # user -> the pairs of each it is in: a session's end finds its own (a look at every
        # pair, sorted, made each logout cost 3 ms with 9,000 asks waiting, a trial found)
        self._asks_of = {}
        self._grants_of = {}

    def ask(self, requester, target, now):
        """`requester` asks `target`: the time the ask lapses, or None if one is waiting."""
        pair = (requester, target)
        if now < self._asks.get(pair, now):
            return None
        asked_until = self._asks[pair] = now + self._consent_s
        _note(self._asks_of, pair)
        return asked_until

    def answer(self, requester, target, now):
        """`target` answers `requester`'s ask: True if one was waiting (it is used up).
        Half-open like the lockout: an answer at exactly asked_until is too late."""
        pair = (requester, target)
        if now >= self._asks.get(pair, now):
            return False
        del self._asks[pair]
        _forget(self._asks_of, pair)
        return True

    def lapse(self, requester, target):
        """The ask's time is up: True if it was still waiting (the asker must be told)."""
        pair = (requester, target)
        if self._asks.pop(pair, None) is None:
            return False
        _forget(self._asks_of, pair)
        return True

    def grant(self, holder, granter):
        """`granter` agreed: the key `holder` will prove itself with (never logged)."""
        pair = (holder, granter)
        key = self._grants[pair] = self._make_key()
        _note(self._grants_of, pair)
        return key

    def revoke(self, holder, granter):
        """`granter` blocked `holder`: True if a grant ended (holder is not told)."""
        pair = (holder, granter)
        if self._grants.pop(pair, None) is None:
            return False
        _forget(self._grants_of, pair)
        return True

    def end(self, user):
        """`user`'s session ended: every ask and grant it took part in goes. Returns the
        notices, [(to whom, frame)]: askers waiting on `user` lapse, users that gave `user` a
        key forget it, and holders of `user`'s address must ask again."""
        notices = []
        for requester, target in sorted(self._asks_of.get(user, ())):
            self.lapse(requester, target)
            if target == user:
                notices.append((requester, {"type": "address_lapsed", "user": user,
                                            "left": True}))
            else:           # the asker left: its question to `target` has nobody to answer
                notices.append((target, {"type": "consent_lapsed", "user": user,
                                         "left": True}))
        for holder, granter in sorted(self._grants_of.get(user, ())):
            self.revoke(holder, granter)
            if holder == user:
                notices.append((granter, {"type": "consent_revoked", "user": user}))
            else:
                notices.append((holder, {"type": "address_revoked", "user": user}))
        return notices


def _note(index, pair):
    """`pair` is in the asks or grants that `index` (user -> pairs) finds by either user."""
    for user in set(pair):
        index.setdefault(user, set()).add(pair)


def _forget(index, pair):
    for user in set(pair):
        pairs = index[user]
        pairs.discard(pair)
        if not pairs:
            del index[user]
