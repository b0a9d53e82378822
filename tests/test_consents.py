"""Consents (consents.py): asks and grants by pair, and what a session's end takes with it."""
import itertools

from consents import Consents


class _NoWalk(dict):
    """A table that may be looked up, not walked: an end must find its pairs by its user."""

    def __iter__(self):
        raise AssertionError("walked every pair")

    def keys(self):
        raise AssertionError("walked every pair")

    def items(self):
        raise AssertionError("walked every pair")


def test_a_sessions_end_takes_its_own_asks_and_grants_and_looks_at_no_others():
    """(a trial kept 9,000 asks waiting between other users; each logout sorted them all)"""
    keys = (f"k{n}" for n in itertools.count())
    consents = Consents(60.0, lambda: next(keys))
    consents._asks, consents._grants = _NoWalk(), _NoWalk()
    others = [f"u{n}" for n in range(40)]
    for asker, target in itertools.permutations(others, 2):
        consents.ask(asker, target, 0.0)
    consents.ask("amy", "bob", 0.0)
    consents.ask("cat", "amy", 0.0)
    consents.ask("amy", "u1", 0.0)
    assert consents.answer("amy", "u1", 1.0)
    consents.grant("amy", "u1")
    consents.grant("u2", "amy")
    assert consents.end("amy") == [
        ("bob", {"type": "consent_lapsed", "user": "amy", "left": True}),
        ("cat", {"type": "address_lapsed", "user": "amy", "left": True}),
        ("u1", {"type": "consent_revoked", "user": "amy"}),
        ("u2", {"type": "address_revoked", "user": "amy"})]
    assert consents.end("amy") == []
    assert consents.end("bob") == [] and consents.end("cat") == []
    assert len(consents.end("u0")) == 2 * 39        # the others' stay, each its own
    assert not consents.lapse("amy", "bob") and consents.lapse("u1", "u2")
