"""The one room and its users as an IRC client asks about them: JOIN, PART, NAMES, TOPIC, LIST,
MODE, INVITE, KICK, WHO, WHOIS, WHOWAS, ISON, USERHOST, AWAY, MOTD, LUSERS.

Every logged-in user is in the room, so each answer comes from one `online` request to the
core (who is online is the core's to say), worded as the numerics IRC clients expect. A part of
irc_session.IrcSession (its base class): it answers through the session's own output
(`numeric`, `say`, `notice`) and requests (`ask`), and reads its nick, capabilities and room.
"""
from irc_wire import MAX_LINE_BYTES, fold, mask_matcher
from irc_words import SERVICE, TOPIC, USER_HOST, why

# an account not in one's list: offline, or hidden by a block either way, which presence
# does not tell apart (a trial's WHOIS of a user who blocked it promised that a message
# would wait for them)
NOT_SEEN = ("Not online (a message sent now waits for their next login), or one of you blocks "
            "the other")
NOT_SEEN_WAS = ("not online (a message sent now waits for their next login), or one of you "
                "blocks the other")     # (WHOWAS's words for the same)

NOT_ASKED = object()        # no answer under way: one's own AWAY is as it is now
REJOIN_GAP_S = 2.0          # a PART of the room answered with a JOIN at most this often
WHOIS_NICKS = 8             # the nicks one WHOIS answers for (a,b,c): its work stays bounded
# the room's lists, asked for by MODE <room> <letter>: each empty, and its end numeric
_LIST_ENDS = {"b": ("368", "End of channel ban list"),
              "e": ("349", "End of channel exception list"),
              "I": ("347", "End of channel invite list")}


class RoomCommands:
    """IrcSession's answers about the room and its users (see the module docstring)."""

    __slots__ = ()          # (the session's own slots hold the state)

    def _ask_online(self, then, context=None, always=False):
        """Ask the core who is online; `then(frame, context)` answers from it. A refusal
        (slow_down, say) is said, not read as an empty room: `then` hears of it only if it
        must go on whatever the answer (`always`: the welcome's NAMES)."""
        self.ask("online", {}, self._online_answered, (then, context, always, self.away))

    def _online_answered(self, frame, pending):
        then, context, always, away = pending
        if frame["type"] != "online":
            self.notice(f"Could not list who is online ({why(frame, self.nick)}); try again.")
            if not always:
                return
        # one's own AWAY as it was when asked: answers keep the order of the lines, and an
        # `AWAY :x`, `WHO me`, `AWAY` in one write showed H (a trial's)
        self._away_asked = away
        try:
            then(frame, context)
        finally:
            self._away_asked = NOT_ASKED

    def _online_list(self, frame):
        return frame.get("users", []) if frame["type"] == "online" else []

    def _names(self, frame, _):
        names = [self.nick, *self._online_list(frame)]
        if "userhost-in-names" in self.caps:
            names = [self.who_is(name) for name in names]
        # Cut at 380 characters, a trial's room of CJK names passed 512 bytes, and lost 23 of
        # 51 names to the line's end
        for line in self._fitting(names, " ", f"353 {self.nick} = {self.room} :"):
            self.numeric("353", "=", self.room, line)
        self.numeric("366", self.room, "End of /NAMES list")

    def _fitting(self, names, between, head, tail=""):
        """`names` joined by `between` (one ASCII character) in as many lines as fit between
        `head` (the numeric and the parameters before them) and `tail`: cut between names,
        never in one (a name longer than a line goes alone, cut to the room left). One string
        cut at its separators (one byte in UTF-8, never part of a character): a room of
        thousands is a few dozen lines, and this was a Python step per name."""
        data = between.join(names).encode("utf-8")
        sep = between.encode("utf-8")
        room = MAX_LINE_BYTES - 2 - len(f":{self.server} {head}{tail}".encode("utf-8"))
        lines, start = [], 0
        while len(data) - start > room:
            cut = data.rfind(sep, start, start + room + 1)
            if cut <= start:
                cut = data.find(sep, start + 1)
                if cut < 0:
                    break
            lines.append(_cut_to(data[start:cut], room))
            start = cut + 1
        lines.append(_cut_to(data[start:], room))
        return lines

    def _is_room(self, name):
        return fold(name) == self.room_folded

    def _c_join(self, params, wall):
        if not self._need(params, 1, "JOIN"):
            return
        for channel in filter(None, params[0].split(",")):
            if channel == "0":
                # "leave every channel": the room cannot be left
                self.notice(f"Everyone logged in is in {self.room}; QUIT to leave it.")
            elif self._is_room(channel):
                # in it already, nothing, as ngIRCd does (answered, a second JOIN made irssi
                # drop its window of the room, the old lines gone, and WeeChat show it twice)
                if not self.joined:
                    self._join_room(first=True)
            else:
                self.numeric("403", channel, f"No such channel: this server has one room, "
                             f"{self.room}")

    def _join_room(self, first=False):
        """JOIN, the topic and NAMES; the first time, what waited for the room follows."""
        self.joined = True
        self.say("JOIN", self.room, source=self.who_is(self.nick))
        self.numeric("332", self.room, TOPIC)
        self._ask_online(self._names, always=first)
        if first:
            held, self.held = self.held, []
            for delivered in held:
                self._deliver(delivered)        # (after NAMES: they wait for its answer)

    def _c_part(self, params, wall):
        """The room cannot be left: a PART of it is echoed and the room joined again at once.
        A client closes its window of the room as it parts (WeeChat's /close, irssi's /wc)
        and drops what comes for a room it is not in, while its PONGs acknowledge it: told
        only with a notice, a trial's WeeChat lost every room message after /close."""
        if not self._need(params, 1, "PART"):
            return
        room_named = False
        for channel in dict.fromkeys(filter(None, params[0].split(","))):
            if self._is_room(channel):
                room_named = True
            else:
                self.numeric("403", channel, "No such channel")
        if not room_named:
            return
        # the room, named once or more: echoed and joined again, its topic, names and the
        # notice with it at most every REJOIN_GAP_S (a client that parted at each join looped
        # 8,000 times a second, each a NAMES); sooner, the PART and JOIN alone
        mask = self.who_is(self.nick)
        self.say("PART", self.room, *params[1:2], source=mask)
        if self.rejoined_at is not None and 0 <= wall - self.rejoined_at < REJOIN_GAP_S:
            self.say("JOIN", self.room, source=mask)
            return
        self.rejoined_at = wall
        self._join_room(first=not self.joined)   # (before the join: what waited for it goes)
        self.notice(f"Everyone logged in is in {self.room}; QUIT to leave it.")

    def _c_names(self, params, wall):
        if params and not any(self._is_room(c) for c in params[0].split(",")):
            self.numeric("366", params[0], "End of /NAMES list")
        else:
            self._ask_online(self._names)

    def _c_topic(self, params, wall):
        if not self._need(params, 1, "TOPIC"):
            return
        if not self._is_room(params[0]):
            self.numeric("403", params[0], "No such channel")
        elif len(params) > 1:
            self.numeric("482", self.room, "The room's topic is fixed")
        else:
            self.numeric("332", self.room, TOPIC)

    def _c_invite(self, params, wall):
        if not self._need(params, 2, "INVITE"):
            return
        if self._is_room(params[1]):
            self.numeric("443", params[0], self.room,
                         "is in the room once logged in: everyone is")
        else:
            self.numeric("403", params[1], "No such channel")

    def _c_kick(self, params, wall):
        if not self._need(params, 2, "KICK"):
            return
        if self._is_room(params[0]):
            self.numeric("482", self.room, "Nobody is a channel operator here: /msg "
                         f"{SERVICE} block <nick> to stop hearing from someone")
        else:
            self.numeric("403", params[0], "No such channel")

    def _c_list(self, params, wall):
        if params and params[0] and not any(self._is_room(c) for c in params[0].split(",")):
            self.numeric("321", "Channel", "Users  Name")
            self.numeric("323", "End of /LIST")        # no such channel: an empty list
            return
        self._ask_online(self._list)

    def _list(self, frame, _):
        self.numeric("321", "Channel", "Users  Name")
        self.numeric("322", self.room, str(1 + len(self._online_list(frame))), TOPIC)
        self.numeric("323", "End of /LIST")

    def _c_mode(self, params, wall):
        if not self._need(params, 1, "MODE"):
            return
        target = params[0]
        if self._is_room(target):
            if len(params) == 1:
                self.numeric("324", self.room, "+nt")
            elif len(params) == 2 and params[1].lstrip("+") in _LIST_ENDS:
                # a list query (no mask): each list is empty. A mask sets or removes an entry,
                # which the fixed modes refuse (482 below): answered as a query, irssi showed
                # nothing, and a ban seemed set
                code, words = _LIST_ENDS[params[1].lstrip("+")]
                self.numeric(code, self.room, words)
            else:
                self.numeric("482", self.room, "The room's modes are fixed")
        elif fold(target) == fold(self.nick):
            if len(params) == 1:
                self.numeric("221", "+i")
            elif params[1].strip("+-i"):
                self.numeric("501", "Unknown MODE flag")
            # else +i, which every user has: no change, and servers say nothing (irssi sends
            # it at every connection, from its usermode setting); -i is not taken, quietly
            # (the room shows everyone anyway: a 501 called a known mode unknown)
        elif target.startswith("#"):
            self.numeric("403", target, "No such channel")
        else:
            self.numeric("502", "Can't change mode for other users")

    def _c_who(self, params, wall):
        mask = params[0] if params else "*"
        # `WHO mask o`: operators only, and there are none here (a trial's listed everyone,
        # where ngIRCd lists nobody); WHOX's %fields come after the flags
        operators_only = len(params) > 1 and "o" in params[1].split("%", 1)[0]
        self._ask_online(self._who, (mask, operators_only))

    def _who(self, frame, asked):
        mask, operators_only = asked
        names = [] if operators_only else [self.nick, *self._online_list(frame)]
        everyone = self._is_room(mask) or mask in ("*", "0")
        matches = None if everyone else mask_matcher(mask)
        for name in names:
            username, realname = self._user_of(name)
            # a mask is matched against the nick, user name, host, server and real name, as
            # RFC 2812 has it (a trial's matched the nick alone)
            if matches is not None and not any(map(matches, (name, username, USER_HOST,
                                                             self.server, realname))):
                continue
            here = "G" if self._away_of(name) else "H"
            self.numeric("352", self.room, username, USER_HOST, self.server, name, here,
                         f"0 {realname}")
        self.numeric("315", mask, "End of WHO list")

    def _irc_user(self, name):
        """The session of IRC user `name` on this port, or None (a client.py user)."""
        return self if name == self.nick else self.shared.users.get(name)

    def _user_of(self, name):
        """(user name, real name) to show for `name`: the user part of the mask its lines
        come from (who_is: a client keeps the mask WHO gives, and irssi kept one none of its
        lines had), and an IRC user's real name from USER, else its name."""
        user = self._irc_user(name)
        username = self.who_is(name).split("!", 1)[1].rsplit("@", 1)[0]
        return username, user.realname if user is not None and user.realname else name

    def _away_of(self, name):
        if name == self.nick and self._away_asked is not NOT_ASKED:
            return self._away_asked
        user = self._irc_user(name)
        return None if user is None else user.away

    def _c_whois(self, params, wall):
        if not params:
            self.numeric("431", "No nickname given")
            return
        self._ask_online(self._whois, params[-1])

    def _whois(self, frame, wanted):
        """The answer for each nick of `wanted` (a,b,c: RFC 2812 3.6.2), then one 318."""
        online = {fold(name): name for name in [self.nick, *self._online_list(frame)]}
        for nick in filter(None, wanted.split(",")[:WHOIS_NICKS]):
            name = online.get(fold(nick))
            if name is None:
                # (a trial read "a message waits" as one waiting already)
                self.numeric("401", nick, "No such nick" if fold(nick) not in self.accounts
                             else NOT_SEEN)
                continue
            username, realname = self._user_of(name)
            self.numeric("311", name, username, USER_HOST, "*", realname)
            if self._away_of(name):
                self.numeric("301", name, self._away_of(name))
            self.numeric("319", name, self.room)
            self.numeric("312", name, self.server, "the chat room")
            # everyone here logged in to an account, whose name the nick is (irssi and
            # WeeChat show it as "authenticated as")
            self.numeric("330", name, name, "is logged in as")
        # the nicks asked for, as many as fit: cut by the line's end, a trial's 318 lost its
        # words and ended in half a nick
        asked = self._fitting(wanted.split(","), ",", f"318 {self.nick} ",
                              " :End of /WHOIS list")[0]
        self.numeric("318", asked, "End of /WHOIS list")

    def _c_whowas(self, params, wall):
        """An account not online is answered as a nick that was (314: offline, a message to
        it waits): irssi sends WHOWAS by itself after a WHOIS's 401, and shows only its
        answer, which was "There is no such nick" (a trial's) for an account a message would
        have reached. No history is kept: a name no account has is 406."""
        wanted = [nick for nick in params[0].split(",")[:WHOIS_NICKS] if nick] if params else []
        if not wanted:
            self.numeric("431", "No nickname given")
            return
        self._ask_online(self._whowas, wanted)

    def _whowas(self, frame, wanted):
        """The answer for each nick of `wanted` (a,b,c), each ended by its 369."""
        online = {self.nick, *self._online_list(frame)}
        for nick in wanted:
            account = self.accounts.get(fold(nick))
            if account is None:
                self.numeric("406", nick, "There was no such nickname")
            elif account in online:
                self.numeric("406", account, "Online now: WHOIS tells more")
            else:
                username, _ = self._user_of(account)
                self.numeric("314", account, username, USER_HOST, "*",
                             NOT_SEEN_WAS)
                self.numeric("312", account, self.server, "the chat room")
            self.numeric("369", nick if account is None else account, "End of WHOWAS")

    def _c_ison(self, params, wall):
        if self._need(params, 1, "ISON"):
            self._ask_online(self._ison, " ".join(params).split())

    def _ison(self, frame, wanted):
        online = {fold(name) for name in [self.nick, *self._online_list(frame)]}
        # as many 303s as it takes: one cut by the line's end named half a nick nobody has
        # (a trial's notify list then had the real one offline)
        for line in self._fitting([name for name in wanted if fold(name) in online], " ",
                                  f"303 {self.nick} :"):
            self.numeric("303", line)

    def _c_userhost(self, params, wall):
        if self._need(params, 1, "USERHOST"):
            self._ask_online(self._userhost, params[:5])

    def _userhost(self, frame, wanted):
        online = {fold(name): name for name in [self.nick, *self._online_list(frame)]}
        found = [online[fold(name)] for name in wanted if fold(name) in online]
        # (+ here, - away: RFC 2812 4.8; the user part as WHO and every line show it)
        self.numeric("302", " ".join(f"{name}={'-' if self._away_of(name) else '+'}"
                                     f"{self._user_of(name)[0]}@{USER_HOST}" for name in found))

    def _c_away(self, params, wall):
        self.away = params[0] if params and params[0] else None
        if self.away:
            self.numeric("306", "You have been marked as being away")
        else:
            self.numeric("305", "You are no longer marked as being away")

    def _c_motd(self, params, wall):
        self.numeric("375", f"- {self.server} Message of the day -")
        self.numeric("372", f"- Everyone logged in is in {self.room}. Messages to users who "
                     "are away wait for their next login.")
        self.numeric("372", f"- /msg {SERVICE} help lists what else you can do.")
        self.numeric("376", "End of /MOTD command")

    def _c_lusers(self, params, wall):
        self._ask_online(self._lusers)

    def _lusers(self, frame, _):
        count = 1 + len(self._online_list(frame))
        self.numeric("251", f"There are {count} users and 0 invisible on 1 servers")
        self.numeric("255", f"I have {count} clients and 0 servers")
        # the most seen at once is the most LUSERS has counted since the server started
        # (there is one server: local and global are the same)
        most = self.shared.most_users = max(self.shared.most_users, count)
        self.numeric("265", str(count), str(most), f"Current local users {count}, max {most}")
        self.numeric("266", str(count), str(most), f"Current global users {count}, max {most}")


def _cut_to(data, room):
    """A line's names (bytes) -> text of at most `room` bytes: one name longer than a line is
    cut at a character's boundary, so that the words after it are not lost with the line's
    end (a review's WHOIS of one 450-byte nick)."""
    return data[:room].decode("utf-8", "ignore") if len(data) > room else data.decode("utf-8")
