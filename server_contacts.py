"""Who the server core lets see whom: presence told to the others as users come and go (at
once or batched, presence.py), `online`, blocks (`block`, `unblock`), and peer-to-peer addresses
given only by consent (`getaddress`, the asked user's `consent`, a question that lapsed or never
reached its client, an answer owed until the asker is heard from; consents.py).

`Contacts` is ChatServer's base class (chat_server.py): it uses the core's store (block lists),
sessions (`_users`), presence, consents, the answers owed (`_owed`), the address-request limit
(`_asks`), settings, its `_account_field` and `_writable`, and reach.py's `_reach` and
`_tell`.
"""
import limits
import protocol
from protocol import whole
from server_events import Arm, AskLapses, Log, PresenceBatch, PresenceHeld
from server_replies import Refused, reply_to


class Contacts:
    """Presence, blocks and consents, for ChatServer (see the module)."""

    def _presence_change(self, user, online, now, reason=None, let_go=False):
        """Tell every other online user that `user` came or went, except those it blocks and
        those who block it (_unseen_by): at once while the presence budget allows, else in the
        next batch (which carries no `reason`, the words a user left with); not while `user`
        is held for coming and going too often (where it is then, once `let_go`)."""
        if not let_go:
            held = self._presence.hold(user, online, now)
            if held is not None:
                return [Arm(PresenceHeld(user), held)] if held else []
        listeners = len(self._users)   # `user` is not among them, coming or going
        when = self._presence.change(user, online, listeners, now)
        if when is None:
            return []                       # it joined the waiting batch
        if when != "now":
            return [Arm(PresenceBatch(), when)]
        notice = {"type": "presence", "user": user, "online": online}
        if reason is not None:
            notice["reason"] = reason
        blocked = self._unseen_by(user)
        return self._reach_each([other for name, other in sorted(self._users.items())
                                 if name != user and name not in blocked], notice)

    def _unseen_by(self, user):
        """Who is not told of `user`'s comings and goings: those it blocks (they learn nothing
        of it), and those who block it (they want nothing of it, as with its broadcasts)."""
        blockers = self._store.blockers(user)
        blocks = self._store.blocks(user)
        return blocks | blockers if blockers else blocks

    def _let_presence_go(self, key, now):
        """A held user's hold ends: the others are told where it is now, if not that already."""
        online = key.user in self._users
        if not self._presence.let_go(key.user, online):
            return []
        return self._presence_change(key.user, online, now, let_go=True)

    def _send_presence_batch(self, key, now):
        """Every change since the batch began, in order, as one notice to each online user.

        The same notice (encoded once) goes to all but the few that a changed user blocks,
        who get theirs without that user. A user that came during the batch gets it whole,
        its own arrival included: the client skips changes about itself (PROTOCOL.md).
        """
        changes = self._presence.take_batch()
        if not changes:
            return []
        # (each subject's unseen set made once: made again for each change and each screened
        # user, a batch cost blocks x changes x screened users, seconds for a trial's account
        # that blocked 900 and logged in and out 95 times)
        unseen = {user: self._unseen_by(user) for user in {user for user, _ in changes}}
        screened = set().union(*unseen.values())
        notice = {"type": "presence", "changes": [[user, online] for user, online in changes]}
        whole, actions = [], []
        for name, session in sorted(self._users.items()):
            if name not in screened:
                whole.append(session)
                continue
            told = [[user, online] for user, online in changes if name not in unseen[user]]
            if told:
                actions += self._reach(session, {"type": "presence", "changes": told})
        return actions + self._reach_each(whole, notice)

    def _online(self, session, request, frame_id, now):
        # as presence tells it: who blocks this user, or whom it blocks, is not listed (a list
        # kept by presence notices, an IRC client's or the window's, would keep them for ever)
        unseen = self._unseen_by(session.user)
        others = [name for name in self.online_users()
                  if name != session.user and name not in unseen]
        held = self._presence.held
        if held:
            # a user held for coming and going too often is where the others were last told
            # it is (gone), until it is let go and they are told where it is then: listed as
            # it is, a trial's newcomer kept a wrong nick list for good (the let-go told it
            # nothing new)
            others = [name for name in others if name not in held]
        return [reply_to(request.conn, frame_id, {"type": "online", "users": others})]

    def _block_target(self, session, frame):
        target = self._account_field(frame, "user")
        if target == session.user:
            raise Refused("self")
        return target

    def _block(self, session, request, frame_id, now):
        target = self._block_target(session, request.frame)
        if self._store.is_blocked(session.user, target):
            raise Refused("already_blocked")
        self._writable()
        seen = target not in self._unseen_by(session.user)
        self._store.add_block(session.user, target)
        actions = [reply_to(request.conn, frame_id, {"type": "ok"}, durable=True),
                   *self._relisted(session.user, target, seen)]
        # Its next private is refused by the blocker's client, which drops the key itself, and
        # its next getaddress is refused here.
        if self._consents.revoke(target, session.user):
            actions.append(Log(f"{session.user} blocked {target}: its address grant ended"))
        # and its ask waiting for an answer lapses, as if unanswered (a trial's blocker then
        # answered Y, and the blocked user had the address and sent private messages)
        if self._consents.lapse(target, session.user):
            actions += [Log(f"{session.user} blocked {target}: its address request lapsed"),
                        *self._answer_asker(target, {"type": "address_lapsed",
                                                     "user": session.user}),
                        *self._tell(session.user, {"type": "consent_lapsed", "user": target})]
        return actions

    def _unblock(self, session, request, frame_id, now):
        name = protocol.name_field(request.frame, "user")
        if name not in self._passwords and name in self._store.blocks(session.user):
            # an account removed since the block: it may still go (an operator's trial's
            # was there for good, for whoever is given the name next)
            target = name
        else:
            target = self._block_target(session, request.frame)
        if not self._store.is_blocked(session.user, target):
            raise Refused("not_blocked")
        self._writable()
        seen = target not in self._unseen_by(session.user)
        self._store.remove_block(session.user, target)
        return [reply_to(request.conn, frame_id, {"type": "ok"}, durable=True),
                *self._relisted(session.user, target, seen)]

    def _relisted(self, user, other, seen_before):
        """A block between `user` and `other` began or ended: if they now see each other
        otherwise than before (presence and `online` leave blocked pairs out), tell both while
        both are online, so that the lists presence keeps (an IRC client's nick list, the
        window's) neither keep a user whose logout they will never hear of, nor miss one."""
        seen = other not in self._unseen_by(user)
        if seen == seen_before:
            return []
        # each is told of the other where presence last told it the other is: a user held for
        # coming and going too often may be online, or not, otherwise than it was told (a
        # reviewer's blocker kept a held user in its list for good, and a held user's block
        # and unblock listed it to others who had been told it was gone)
        held = self._presence.held          # (told gone: held at a login, presence.py)
        actions = []
        if other in self._users and other not in held:
            actions += self._tell(user, {"type": "listed", "user": other, "listed": seen})
        if user not in held and other in self._users:
            actions += self._tell(other, {"type": "listed", "user": user, "listed": seen})
        return actions

    def _getaddress(self, session, request, frame_id, now):
        requester = session.user
        target = self._account_field(request.frame, "user")
        if target == requester:
            raise Refused("self")
        # Checked before "offline", so a blocked user learns nothing, not even presence.
        if self._store.is_blocked(target, requester):
            raise Refused("blocked")
        granter = self._users.get(target)
        if granter is None:
            raise Refused("offline")
        # each a question on the target's screen (a dialog in the window), which a logout
        # takes back: a trial's account logging in, asking and out put 110 on one in 1 s.
        # Only a question asked is counted (a reviewer's already_asked ones spent the budget)
        wait_s = self._asks.check(requester, now)
        if wait_s:
            raise self._slow_down(f"{requester}'s address requests", wait_s, now,
                                  f"too many address requests; try again in "
                                  f"{limits.wait_text(wait_s)} s")
        asked_until = self._consents.ask(requester, target, now)
        if asked_until is None:
            raise Refused("already_asked")
        self._asks.take(requester, now)
        if requester in self._owed:     # an answer to the question before is news no more
            self._owed[requester].pop(target, None)
        # (folded per asker: a trial's 40 accounts asking within their rate limits wrote
        # 29,000 lines a minute)
        asked = [Log(f"{requester} asked {target} for its address",
                     ("address requests", requester)),
                 reply_to(request.conn, frame_id, {"type": "ok"})]
        question = {"type": "consent_request", "from": requester}
        reaching = self._reach(granter, question)
        if not reaching:        # (a staying target between connections: not now)
            return asked + self._unreached(granter, [question])
        return [*asked, *reaching, Arm(AskLapses(requester, target), asked_until)]

    def _consent(self, session, request, frame_id, now):
        frame = request.frame
        target = session.user
        requester = self._account_field(frame, "user")
        agree = protocol.flag_field(frame, "agree")
        asked = self._consents.answer(requester, target, now)
        # a no takes back a consent given before (a trial's user said N to a second question
        # and went on getting the asker's private messages: nothing else could stop them)
        revoked = not agree and self._consents.revoke(requester, target)
        if not asked and not revoked:
            raise Refused("no_request")
        asker = self._users.get(requester)     # an ask, and a grant, end with its session
        if not agree:
            refused = f"{target} refused {requester} its address"
            took_back = f"took back its consent to {requester}"
            reply = {"type": "ok"}
            if revoked:
                reply["revoked"] = True
                if asked:   # (said too: a trial's user who refused a new question and took
                    reply["refused"] = True     # back an old yes was told of the yes only)
            actions = [Log(f"{refused}, and {took_back}" if asked and revoked else
                           refused if asked else f"{target} {took_back}"),
                       reply_to(request.conn, frame_id, reply)]
            if asked:
                actions += self._answer_asker(requester, {"type": "address_refused",
                                                          "user": target})
            if revoked:
                actions += self._reach(asker, {"type": "address_revoked", "user": target,
                                               "taken_back": True})
            return actions
        host, port = session.host, session.port
        if port is None:
            # the target agreed, but its client listens nowhere (it stays connected without a
            # port): no peer could reach it, so there is no address to give, and both are told.
            # Kept as a grant all the same, so that its end is told as any grant's (a trial's
            # asker went on hearing "no listening port" after the target came back with one)
            self._consents.grant(requester, target)
            return [Log(f"{target} agreed to talk with {requester} but has no listening port"),
                    reply_to(request.conn, frame_id, {"type": "ok", "no_port": True}),
                    *self._answer_asker(requester, {"type": "address_unavailable",
                                                    "user": target})]
        # One random key per consent, known only to the pair: the requester proves with it
        # who it is to the target's listener (PROTOCOL.md, "Peer to peer"). Never logged.
        key = self._consents.grant(requester, target)
        address = {"type": "address", "user": target, "host": host, "port": port}
        if asker is not None and asker.proof is not None:
            # delivered to its listening port, in plain TCP: the key sealed with the session's
            # proof, which crossed inside the login's (TLS) reply only. In clear, anyone who
            # read it on the way could prove to be the asker, and a trial's eavesdropper's
            # forged private message showed as the asker's
            self._seals += 1
            salt = str(self._seals)
            address.update(salt=salt, sealed=protocol.seal(key, asker.proof,
                                                           protocol.ADDRESS_KEY_LABEL, target,
                                                           salt))
        else:
            address["key"] = key        # (a staying session's: inside its connection)
        return [Log(f"{target} gave {requester} its address"),
                reply_to(request.conn, frame_id, {"type": "ok", "key": key}),
                *self._answer_asker(requester, address)]

    def _ask_lapsed(self, key, now):
        if not self._consents.lapse(key.requester, key.target):
            return []   # answered already, or ended with a session
        # (folded per target, as the asks are per asker: a trial's soak of unanswered asks
        # made a quarter of the log of these)
        return [Log(f"{key.target} did not answer {key.requester}'s address request within "
                    f"{whole(self._settings.consent_s)} s",
                    ("address requests unanswered by", key.target)),
                *self._answer_asker(key.requester, {"type": "address_lapsed",
                                                    "user": key.target}),
                *self._tell(key.target, {"type": "consent_lapsed", "user": key.requester})]

    def _answers_owed(self, session):
        """Answers to the session's getaddress that never reached its client (_unreached),
        now that it is heard from again: a trial's asker, stopped as its answer came, was
        never told, and was told to wait for the agreement that had come."""
        owed = self._owed.pop(session.user, None) if self._owed else None
        return [action for frame in owed.values() for action in self._reach(session, frame)
                ] if owed else []

    def _unreached(self, session, notices):
        """A question, or an address, that never reached the client of `session`: it ends,
        and the other side is told, rather than waiting on it. (A trial's client, frozen for
        13 s, never saw a question while its asker was told to wait for the answer; another
        never got the address its peer had been told it gave.) An answer to its own
        getaddress goes again once it is heard from (_owe); other notices just lapse."""
        actions = []
        user = session.user
        for frame in notices:
            kind = frame.get("type")
            if kind == "consent_request" and self._consents.lapse(frame["from"], user):
                actions += [Log(f"{frame['from']}'s address request could not be delivered "
                                f"to {user}: it lapsed",
                                ("address requests undeliverable to", user)),
                            *self._tell(frame["from"], {"type": "address_lapsed", "user": user,
                                                        "unreached": True})]
            elif kind == "address" and self._consents.revoke(user, frame["user"]):
                actions += [Log(f"{frame['user']}'s address could not be delivered to {user}: "
                                f"the consent ended", ("addresses undeliverable to", user)),
                            *self._tell(frame["user"], {"type": "consent_revoked", "user": user,
                                                        "unreached": True})]
                self._owe(user, {"type": "address_lapsed", "user": frame["user"],
                                 "lost": True})
            elif kind in ("address_refused", "address_unavailable", "address_lapsed"):
                self._owe(user, frame)
        return actions

    def _answer_asker(self, asker, answer):
        """Deliver `answer` to the getaddress of `asker` (a user) if online. One that cannot
        reach its client now (staying, between connections) is unreached, as one its
        listening port did not take (_unreached): an address ends its grant, and the answer
        goes again once the asker is heard from."""
        session = self._users.get(asker)
        if session is None:
            return []
        return self._reach(session, answer) or self._unreached(session, [answer])

    def _owe(self, user, answer):
        """`answer` to `user`'s getaddress goes again once its client is heard from (the
        newest per target: one question per pair waits at a time)."""
        self._owed.setdefault(user, {})[answer["user"]] = answer
