"""What the client sends the server for the user: messages and broadcasts, kept in the outbox
until the server takes them (sent one at a time, in order, again after a failure or a wait the
server asks for), and commands, each answered in the screen's words.

`Sending` is ChatClient's base class (chat_client.py): it uses the core's outbox, session
(`user`, `token`, `stage`; client_session.py's `_session_ended`, `_logged_out`), requests
(`_request`, `_stale`), peers (and client_deliveries.py's `_peer_reply`, `_revoke_consent`),
timers (`_arm`), and the counts a script's exit status is made of.
"""
import limits
from client_events import (CommandRetry, Fate, Log, OutboxRetry, Show, ShowFate, ShowOnline,
                           ShowSending, Stage)
from client_requests import NEVER_SENT, RETRY_MAX_S, Purpose
from commands import described, error_code, listed_users, reply_lines


class Sending:
    """Messages and commands, for ChatClient (see the module)."""

    def _post(self, command, now, out, blocks_input):
        """Queue a message or broadcast; send it now unless older ones still wait."""
        entry = self.outbox.add(self.user, command)
        out.append(ShowSending(entry.mid, command.user, command.text))
        waiting = len(self.outbox.entries)
        if waiting == 1:
            self.waiting_said = 0
            self._send_head(now, out, blocks_input)
        elif (waiting == 2 or waiting % 100 == 0) and waiting > self.waiting_said:
            # said when the queue begins, then every 100 (a paste of 100 lines said it 100
            # times), each count once while the queue lasts (a pipe that kept it between 500
            # and 1,000 said each 4 to 6 times); the status line counts them meanwhile
            self.waiting_said = waiting
            out.append(Show("system", f"The server has not taken your earlier messages yet; "
                                      f"this one waits behind them ({waiting} waiting)."))

    def _send_head(self, now, out, blocks_input):
        """Send the oldest waiting message alone, so the server takes them in order."""
        head = self.outbox.head()
        if head is None:
            return
        self.last_request_at = now
        self.outbox.sending = self._request(Purpose.OUTBOX, head.frame(self.token), out,
                                            blocks_input, head.command)

    def _outbox_retry(self, key, now, out):
        if self.stage is Stage.LOGGED_IN and not self.exiting:
            self._send_head(now, out, blocks_input=False)

    def _reply_outbox(self, pending, frame, now, out):
        if error_code(frame) == "slow_down":
            # kept, not refused: the server takes it once we wait as long as it says
            if self.slowed_since is None:
                self.slowed_since = now
            wait_s = self.outbox.slowed(frame.get("seconds"))
            self._notice(f"The server asks us to slow down; your message is kept and sent in "
                         f"{wait_s:g} s.", out, key="slow down")
            self._arm(OutboxRetry(), now + wait_s, out)
            return
        self.slowed_since = None            # (answered otherwise: taken, or an outage's)
        if error_code(frame) == "unavailable":
            # kept, not refused: the server could not store it; tried again with backoff. The
            # server holds the write and commits it once it can: given up at exit, it is
            # "perhaps" sent (a trial's "Not sent" message arrived)
            self.outbox.lost_on_the_way()
            said = self.outbox.retry_s
            retry_s = self.outbox.failed()
            if not said:
                out.append(Show("system", "The server cannot store messages just now; yours "
                                          "is kept and sent again until it can."))
            self._arm(OutboxRetry(), now + retry_s, out)
            return
        if error_code(frame) == "no_session":
            # kept: it goes out again once this user has logged in again
            self.outbox.kept()
            if not self._stale(pending):
                self._session_ended(out, frame)
            return
        mid = self.outbox.taken().mid
        lines = reply_lines(pending.command, frame)
        named = mid in self.carried
        self.carried.discard(mid)
        if lines is None:
            # neither stored nor refused in words we know: it is not shown as sent
            out.extend([Log(f"unexpected reply to {pending.command.name}: {frame.get('type')}"),
                        ShowFate(mid, Fate.REFUSED)])
        elif frame.get("type") == "error":
            self.refused += 1
            out.extend(ShowFate(mid, Fate.REFUSED, line) for line in lines)
            if self.settings.scripted:
                # a script's lines are not echoed: which one it was (a trial's 4,000 refusals
                # were one line 4,000 times)
                out.append(ShowFate(mid, Fate.REFUSED, f"Not sent: {described(pending.command)}"))
        else:
            out.append(ShowFate(mid, Fate.SENT))
            for line in lines:
                self._notice(f"{line} ({described(pending.command)})" if named else line, out,
                             key=line)
        if self.outbox.head() is None and not self.lines:
            self._run_notices.clear()       # the run is over: the next message is told again
        if self.stage is Stage.LOGGED_IN:
            self._send_head(now, out, blocks_input=False)

    def _notice(self, text, out, key=None):
        """A notice about sending ("seas is offline; ..."), once in a run of messages (while
        the outbox has not emptied): a file of 300 messages to one offline user said it 197
        times. A message typed on its own, sent before the next, is told each time."""
        key = key or text
        if key not in self._run_notices:
            self._run_notices.add(key)
            out.append(Show("system", text))

    def _fail_outbox(self, pending, now, out):
        outage_begins = not self.outbox.retry_s
        retry_s = self.outbox.failed()
        if outage_begins:           # say which messages wait, once: Status says the rest
            out.extend(ShowFate(entry.mid, Fate.WAITING,
                                "Waiting to be sent: " + described(entry.command))
                       for entry in self.outbox.entries)
            out.append(Show("system", f"Your message is kept and will be sent when the server "
                                      f"answers ({len(self.outbox.entries)} waiting; next try "
                                      f"in {retry_s:g} s)."))
        self._arm(OutboxRetry(), now + retry_s, out)

    def _outbox_after_login(self, now, out):
        """Messages typed before the session ended go out now, if this is the same user."""
        waiting = list(self.outbox.entries)
        if not waiting:
            return
        if waiting[0].user != self.user:
            self._report_unsent(out, "you logged in as someone else")
            return
        self.outbox.fresh_start()
        self.carried = {entry.mid for entry in waiting}
        self._send_head(now, out, blocks_input=False)

    def _report_unsent(self, out, why, at_exit=False):
        """List each waiting message as not sent, or perhaps not sent -> how many."""
        entries, unanswered = self.outbox.drop_all()
        for entry in entries:
            if unanswered:      # (the oldest: it went out unanswered, or `unavailable`)
                unanswered = False
                out.append(ShowFate(entry.mid, Fate.UNSURE, f"Perhaps not sent (the server may "
                                    f"have it; it may yet arrive): {described(entry.command)}",
                                    "the server may have it; it may yet arrive", at_exit))
            else:
                out.append(ShowFate(entry.mid, Fate.REFUSED,
                                    f"Not sent ({why}): " + described(entry.command), why,
                                    at_exit))
        return len(entries)

    def _send_command(self, command, now, out):
        frame = {"type": command.name, "token": self.token}
        if command.name in ("N", "block") and command.user in self.peers.granted:
            # the key given ends now, whatever the server answers, or when: its private
            # messages come to our listener, not the server's (a trial's peer was let in
            # after N and a block typed in an outage)
            self._revoke_consent(command.user, out)
        if command.name in ("Y", "N"):
            self.peers.answered(command.user)
            frame.update(type="consent", user=command.user, agree=command.name == "Y")
        elif command.user is not None:
            frame["user"] = command.user
        self.last_request_at = now
        self._request(Purpose.COMMAND, frame, out, blocks_input=True, command=command)

    def _command_retry(self, key, now, out):
        command, self.command_again = self.command_again, None
        if command is None:
            return
        if self.stage is Stage.LOGGED_IN and not self.exiting:
            self.sent_again = command
            self._send_command(command, now, out)
        else:       # (said to go again: its end is said too)
            self._not_done("ended_not_done", command, out)

    def _reply_command(self, pending, frame, now, out):
        command = pending.command
        if self._stale(pending):
            return
        if command.name == "logout":
            self._logged_out(out)
            return
        if error_code(frame) == "no_session":
            # (a trial's `online` typed after a restart was not spoken of again)
            self._not_done("ended_not_done", command, out)
            self._session_ended(out, frame)
            return
        if error_code(frame) == "slow_down":
            # not refused: sent again once we have waited as asked, what was typed after it
            # waiting behind it, as for a message (a trial's blocks typed after 150 `online`
            # were answered "too many requests", and never done)
            wait_s = limits.asked_wait(frame.get("seconds"), 1.0, RETRY_MAX_S)
            self.command_again = command
            self._notice(f"The server asks us to slow down; {described(command)} goes again "
                         f"in {wait_s:g} s.", out, key="command slowed")
            self._arm(CommandRetry(), now + wait_s, out)
            return
        self._run_notices.discard("command slowed")
        if command.name == "getaddress" and frame.get("type") == "ok":
            self.peers.asking[command.user] = now
            # each screen words it; one sent again after a wait names its user (a trial's bare
            # "request sent" came after another getaddress had been typed)
            out.append(Show("asked_again" if command is self.sent_again else "asked",
                            sender=command.user))
            return
        lines = reply_lines(command, frame)
        if lines is None:
            out.append(Log(f"unexpected reply to {command.name}: {frame.get('type')}"))
            return
        if frame.get("type") == "ok":
            self._peer_reply(command, frame, out)
        elif frame.get("type") == "error":
            # (a trial's script ended 0 after "User nobody does not exist." to a block, and 1
            # after it to a message)
            self.refused_commands += 1
        if command.name == "online" and frame.get("type") == "online":
            out.append(ShowOnline(tuple(user for user in listed_users(frame)
                                        if isinstance(user, str))))
            return
        out.extend(Show("system", line) for line in lines)

    def _fail_command(self, pending, now, out):
        if pending.command.name == "logout" and not self._stale(pending):
            # the server ends the session itself once our heartbeats stop
            self._logged_out(out)
        elif not self._stale(pending):
            # (a trial's block typed in an outage was never spoken of again, and had been
            # done: the request reached a stopped server, which did it once it went on)
            kind = "not_done" if self.outage.reason in NEVER_SENT else "perhaps_not_done"
            self._not_done(kind, pending.command, out)

    def _not_done(self, kind, command, out):
        """Say `command` was not done (or may not have been: `kind`, each screen words it),
        and count it for a script's status."""
        out.append(Show(kind, described(command)))
        if kind == "perhaps_not_done":
            self.perhaps_done += 1
        else:
            self.not_done += 1
