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

    def ask(self, requester, target, now):
        """`requester` asks `target`: the time the ask lapses, or None if one is waiting."""
        pair = (requester, target)
        if now < self._asks.get(pair, now):
            return None
        asked_until = self._asks[pair] = now + self._consent_s
        return asked_until

    def answer(self, requester, target, now):
        """`target` answers `requester`'s ask: True if one was waiting (it is used up).
        Half-open like the lockout: an answer at exactly asked_until is too late."""
        pair = (requester, target)
        if now >= self._asks.get(pair, now):
            return False
        del self._asks[pair]
        return True

    def lapse(self, requester, target):
        """The ask's time is up: True if it was still waiting (the asker must be told)."""
        return self._asks.pop((requester, target), None) is not None

    def grant(self, holder, granter):
        """`granter` agreed: the key `holder` will prove itself with (never logged)."""
        key = self._grants[(holder, granter)] = self._make_key()
        return key

    def revoke(self, holder, granter):
        """`granter` blocked `holder`: True if a grant ended (holder is not told)."""
        return self._grants.pop((holder, granter), None) is not None

    def end(self, user):
        """`user`'s session ended: every ask and grant it took part in goes. Returns the
        notices, [(to whom, frame)]: askers waiting on `user` lapse, users that gave `user` a
        key forget it, and holders of `user`'s address must ask again."""
        notices = []
        for requester, target in sorted(self._asks):
            if user in (requester, target):
                del self._asks[(requester, target)]
                if target == user:
                    notices.append((requester, {"type": "address_lapsed", "user": user}))
                else:       # the asker left: its question to `target` has nobody to answer
                    notices.append((target, {"type": "consent_lapsed", "user": user}))
        for holder, granter in sorted(self._grants):
            if holder == user:
                del self._grants[(holder, granter)]
                notices.append((granter, {"type": "consent_revoked", "user": user}))
            elif granter == user:
                del self._grants[(holder, granter)]
                notices.append((holder, {"type": "address_revoked", "user": user}))
        return notices
