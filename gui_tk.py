"""The window: Tk widgets drawn from a `gui.ChatView`, and the reactor run inside Tk's loop.

`TkScreen` is the client's screen as a window (gui.WindowScreen drawn by Tk widgets); client.py
builds the same client around it as around the terminal. `TkLoop` is how one thread serves both: Tk watches the reactor's selector descriptor (on Linux an
epoll object, readable whenever one of its sockets is) and runs a reactor pass when it is ready,
and one `after` timer wakes the reactor for its next deadline. While idle the process sleeps in
Tk's own wait: no thread, no polling.
"""
import math
import tkinter
import tkinter.font
import tkinter.messagebox
from tkinter import ttk

from client_events import Fate, Stage
from gui import WindowScreen, entry_mark, entry_text, exit_box_text, stamp
from words import waiting_words

WINDOW_SIZE = (900, 620)    # pixels, on a screen with room for it ...
SCREEN_MARGIN = (0, 80)     # ... else the screen less this (a title bar, a panel)
MIN_SIZE = (640, 440)       # below this the buttons and the input line would be cut
DIALOG_WRAP = 360           # pixels a line of the consent dialog may take before it wraps
FORM_TEXT_WIDTH = 420   # pixels a line of the login form's text may take before it wraps
HEADING_FONT = ("TkDefaultFont", 14, "bold")
ERROR_COLOUR = "#b00020"
NOTICE_COLOUR = "#333333"
SELECTED_BACKGROUND = "#1f5fbf"     # the selected user: white on a strong blue, 6:1 contrast
SELECTED_FOREGROUND = "#ffffff"
MS_PER_S = 1000
STAMP_GAP = "  "        # between an entry's time stamp and its text
DIALOG_ARM_MS = 400     # a consent dialog's buttons wait this long before they take a click
REFRESH_S = 0.05        # what the passes changed is drawn at most this often (_after_pass)

# How the conversation pane shows each entry kind (Text tag options).
_LOOKS = {
    "stamp": {"foreground": "#888888", "font": "TkFixedFont"},
    "direct": {},
    "broadcast": {"foreground": "#1f4e9e"},
    "private": {"foreground": "#7a1fa2", "font": ("TkDefaultFont", 10, "italic")},
    "offline": {"foreground": "#8a6d00", "background": "#fff8dc"},
    "system": {"foreground": "#666666", "font": ("TkDefaultFont", 9, "italic")},
    "help": {"foreground": "#666666", "font": "TkFixedFont"},
    "error": {"foreground": ERROR_COLOUR},
    # own messages: grey while on their way, green once the server (or the peer) took them,
    # red and struck through when they will not go
    "pending": {"foreground": "#8a8a8a"},
    "mine": {"foreground": "#2e7d32"},
    "refused": {"foreground": ERROR_COLOUR, "overstrike": True},
    # perhaps not sent: it may have arrived, so not struck through (a trial's read as refused,
    # sent again with `message`, and shown twice)
    "unsure": {"foreground": "#b26a00"},
    "mark": {"foreground": "#8a8a8a"},
    "mark-sent": {"foreground": "#2e7d32"},
    "mark-refused": {"foreground": ERROR_COLOUR, "font": ("TkDefaultFont", 9, "bold")},
    "mark-unsure": {"foreground": "#b26a00", "font": ("TkDefaultFont", 9, "bold")},
}
# an own message's fate -> the looks of its text and of its mark
_OWN_LOOKS = {None: ("pending", "mark"), Fate.WAITING: ("pending", "mark"),
              Fate.SENT: ("mine", "mark-sent"), Fate.REFUSED: ("refused", "mark-refused"),
              Fate.UNSURE: ("unsure", "mark-unsure")}


class TkLoop:
    """Runs a Reactor inside Tk's event loop; `after_pass()` is called after every pass."""

    def __init__(self, widget, reactor, after_pass):
        self.widget = widget
        self.reactor = reactor
        self.after_pass = after_pass
        self.running = False
        self._after_id = None
        self._fd = None

    def start(self):
        self.running = True
        self._fd = self.reactor.fileno()
        self.widget.tk.createfilehandler(self._fd, tkinter.READABLE, self._ready)
        self.kick()

    def stop(self):
        """Stop watching the reactor; safe to call twice."""
        if self.running:
            self.running = False
            self.widget.tk.deletefilehandler(self._fd)
            self._cancel()

    def kick(self):
        """Run a pass as soon as Tk is free: the window queued work (a click sent a request)."""
        if self.running:
            self._arm(0)

    def _ready(self, fd, mask):
        # the after armed for the next timer goes: the pass arms it again (left, it fired in a
        # dialog's own loop once the client had exited, a reviewer's traceback)
        self._cancel()
        self._pass()

    def _pass(self):
        self._after_id = None
        self.reactor.run_once(0)        # something is ready or due: never wait here
        self.after_pass()
        if not self.running:
            return
        wait_s = self.reactor.wait_s()
        if wait_s is None:
            self._cancel()              # no timer: only the descriptor can wake us
        else:
            self._arm(wait_s)

    def _arm(self, wait_s):
        self._cancel()
        # rounded up: waking a little early would only run an empty pass and arm again
        self._after_id = self.widget.after(math.ceil(wait_s * MS_PER_S), self._pass)

    def _cancel(self):
        if self._after_id is not None:
            self.widget.after_cancel(self._after_id)
            self._after_id = None


class ChatWindow:
    """The widgets. They read the view in refresh() and hand every click to the screen."""

    def __init__(self, root, screen, kick):
        self.root, self.screen, self.view, self.kick = root, screen, screen.view, kick
        self._shown = 0                 # conversation entries already in the pane
        self._cleared = 0               # the view's conversations begun, as drawn
        self._showing = None            # "login" or "chat"
        self._to_end = False            # the pane's next drawing shows its end, scrolled or not
        self._view_at_end = True        # the pane shows its last line (as last drawn or scrolled)
        self.dialog = None              # the consent Toplevel while one is open
        self.leaving = None             # the Toplevel asking before a close, while one is open
        root.title("Chat room")
        root.geometry("{}x{}".format(*fitted(WINDOW_SIZE, (root.winfo_screenwidth(),
                                                           root.winfo_screenheight()))))
        root.minsize(*MIN_SIZE)
        self.status = tkinter.StringVar(root)
        ttk.Label(root, textvariable=self.status, relief="sunken", anchor="w", padding=(6, 2),
                  name="status").pack(side="bottom", fill="x")
        self.login_frame = self._login_form(root)
        self.chat_frame = self._chat_pane(root)
        root.protocol("WM_DELETE_WINDOW", self.close)
        # Return presses the button that has the focus, as Space does (a trial's keyboard user
        # tabbed to Log in and pressed Enter: nothing)
        for button in (self.login_button, *self.user_buttons.values(), self.everyone_button,
                       self.logout_button, self.send_button):
            button.bind("<Return>", lambda event: event.widget.invoke())

    # -- building -----------------------------------------------------------------------------

    def _login_form(self, root):
        # widgets have names so that a test (or Tk's `send`) can find them: .login.username
        frame = ttk.Frame(root, padding=24, name="login")
        self.prompt = tkinter.StringVar(root)
        self.notice = tkinter.StringVar(root)
        self.message = tkinter.StringVar(root)
        ttk.Label(frame, text="Chat room", font=HEADING_FONT, name="heading").grid(
            row=0, column=0, columnspan=2, sticky="w", pady=(0, 8))
        ttk.Label(frame, textvariable=self.prompt, wraplength=FORM_TEXT_WIDTH,
                  name="prompt").grid(row=1, column=0, columnspan=2, sticky="w", pady=(0, 8))
        ttk.Label(frame, text="Username").grid(row=2, column=0, sticky="w", pady=4, padx=(0, 8))
        self.name_entry = ttk.Entry(frame, width=28, name="username")
        self.name_entry.grid(row=2, column=1, sticky="we")
        ttk.Label(frame, text="Password").grid(row=3, column=0, sticky="w", pady=4, padx=(0, 8))
        self.password_entry = ttk.Entry(frame, width=28, show="•", name="password")
        self.password_entry.grid(row=3, column=1, sticky="we")
        self.login_button = ttk.Button(frame, text="Log in", command=self.submit_login,
                                       name="submit")
        self.login_button.grid(row=4, column=1, sticky="e", pady=8)
        # why the form shows again (logged out, the session ended) is news, not an error
        ttk.Label(frame, textvariable=self.notice, foreground=NOTICE_COLOUR,
                  wraplength=FORM_TEXT_WIDTH, name="notice").grid(row=5, column=0, columnspan=2,
                                                                   sticky="w")
        ttk.Label(frame, textvariable=self.message, foreground=ERROR_COLOUR,
                  wraplength=FORM_TEXT_WIDTH, name="message").grid(row=6, column=0,
                                                                    columnspan=2, sticky="w")
        for entry in (self.name_entry, self.password_entry):
            entry.bind("<Return>", lambda event: self.submit_login())
        return frame

    def _chat_pane(self, root):
        frame = ttk.Frame(root, padding=6, name="chat")
        side = ttk.Frame(frame, name="side")
        side.pack(side="right", fill="y", padx=(6, 0))
        ttk.Label(side, text="Online").pack(anchor="w")
        # the selected user is what the buttons act on: it must stand out, focused or not
        self.user_list = tkinter.Listbox(side, width=18, exportselection=False, name="users",
                                         selectbackground=SELECTED_BACKGROUND,
                                         selectforeground=SELECTED_FOREGROUND,
                                         activestyle="none")
        self.user_list.bind("<<ListboxSelect>>", lambda event: self._draw_user_buttons())
        # a double-click on a user is Message (a trial's selection alone sent to everyone),
        # and so is Enter on one (a keyboard user's did nothing)
        for event_name in ("<Double-Button-1>", "<Return>"):
            self.user_list.bind(event_name,
                                lambda event: self._on_selected(lambda user: self.aim(user)))
        self.user_buttons = {}
        for name, label, command in (
                ("message", "Message", lambda u: self.aim(u)),
                ("private", "Private message", lambda u: self.aim(u, private=True)),
                ("getaddress", "Get address", lambda u: self.act("getaddress", u)),
                ("block", "Block", lambda u: self.act("block", u)),
                ("takeback", "Take back yes", lambda u: self.act("N", u)),
                ("unblock", "Unblock", None)):
            self.user_buttons[name] = ttk.Button(
                side, text=label, name=name,
                command=self._unblock if command is None else (
                    lambda c=command: self._on_selected(c)))
        self.hint = tkinter.StringVar(root)
        # what the buttons can do for the one selected: Private message waits for consent
        hint = ttk.Label(side, textvariable=self.hint, wraplength=150, foreground="#555555",
                         name="hint")
        self.everyone_button = ttk.Button(side, text="Everyone", command=lambda: self.aim(None),
                                          name="everyone")
        self.logout_button = ttk.Button(side, text="Log out", command=self.logout, name="logout")
        # Packed from the bottom up, and the list last, which takes the room that is left: a
        # hint that grows by a line takes it from the list, and no button moves under the
        # pointer (they did, and a click meant for Block landed on Unblock).
        self.logout_button.pack(fill="x", side="bottom")
        self.everyone_button.pack(fill="x", side="bottom", pady=(6, 0))
        for button in reversed(self.user_buttons.values()):
            button.pack(fill="x", side="bottom")
        hint.pack(fill="x", side="bottom", pady=(2, 2))
        # (more users than the list has rows: a trial's small window hid half, unsaid)
        users_scroll = ttk.Scrollbar(side, command=self.user_list.yview, name="userscroll")
        self.user_list.configure(yscrollcommand=users_scroll.set)
        users_scroll.pack(side="right", fill="y")
        self.user_list.pack(fill="y", expand=True)

        bottom = ttk.Frame(frame, name="bottom")
        bottom.pack(side="bottom", fill="x", pady=(6, 0))
        self.target = tkinter.StringVar(root)
        # Send packed first, on the right: a long label took its room at a small size
        self.send_button = ttk.Button(bottom, text="Send", command=self.send, name="send")
        self.send_button.pack(side="right")
        ttk.Label(bottom, textvariable=self.target, name="target").pack(side="left", padx=(0, 6))
        self.input = ttk.Entry(bottom, name="input")
        self.input.pack(side="left", fill="x", expand=True)
        self.input.bind("<Return>", lambda event: self.send())
        # the pane is read from the keyboard too, the input keeping the focus (a trial's
        # keyboard could not scroll it: Tab never reaches a disabled Text)
        for key, pages in (("<Prior>", -1), ("<Next>", 1)):
            self.input.bind(key, lambda event, pages=pages: self._scroll(pages))
        self.input.bind("<Control-End>", lambda event: self._scroll(None))

        # messages in the proportional text font, which reads best; time stamps in the fixed
        # one, so that they line up in a column
        self.pane = tkinter.Text(frame, wrap="word", state="disabled", height=20, width=60,
                                 font="TkTextFont", padx=6, pady=4, name="pane")
        scroll = ttk.Scrollbar(frame, command=self.pane.yview)
        self.pane.configure(yscrollcommand=lambda first, last: self._on_pane_view(
            scroll, first, last))
        self.pane.bind("<Configure>", self._on_pane_resized)
        scroll.pack(side="right", fill="y")
        self.pane.pack(side="left", fill="both", expand=True)
        for tag, look in _LOOKS.items():
            self.pane.tag_configure(tag, **look)
        # a long entry wraps under its text, not under the time stamps' column (Tk takes
        # lmargin2 from the first character of each wrapped display line: all carry "line")
        stamp_px = tkinter.font.nametofont("TkFixedFont").measure(stamp(0) + STAMP_GAP)
        self.pane.tag_configure("line", lmargin2=stamp_px)
        self.pane.tag_lower("line")
        return frame

    # -- clicks -------------------------------------------------------------------------------

    def _on_pane_view(self, scroll, first, last):
        scroll.set(first, last)
        self._view_at_end = float(last) >= 1.0

    def _on_pane_resized(self, event):
        """A pane made smaller keeps its top line, and its end went out of view: one who was
        reading the newest line is kept there, so what comes next shows (a trial's window,
        shrunk, followed no new message until Ctrl+End). Tk tells the new size before the
        view that follows it (_on_pane_view)."""
        if self._view_at_end:
            self.pane.see("end")

    def _scroll(self, pages):
        """Page the pane up or down (`pages`), or to its end (None), from the input."""
        if pages is None:
            self.pane.see("end")
        else:
            self.pane.yview_scroll(pages, "pages")
        return "break"

    def _type(self, lines):
        """What a button typed: its answer is shown however far up one had scrolled (a
        trial's "User seas has been blocked." came out of sight)."""
        self._to_end = True
        self.screen.type_lines(lines)
        self.kick()
        self.refresh()

    def submit_login(self):
        name, password = self.name_entry.get(), self.password_entry.get()
        self.password_entry.delete(0, "end")
        self.screen.log_in(name, password)
        self.kick()
        self.refresh()
        self._focus_form()

    def send(self):
        if self.screen.send(self.input.get()):
            self.input.delete(0, "end")
            # one's own line is shown, and its mark, however far up one had scrolled (a
            # trial's ✓ or ✗ was never seen)
            self._to_end = True
        self.kick()
        self.refresh()

    def selected_user(self):
        picked = self.user_list.curselection()
        return self.user_list.get(picked[0]) if picked else None

    def _on_selected(self, command):
        user = self.selected_user()
        if user is not None:
            command(user)

    def _unblock(self):
        """Unblock the selected user; with nobody selected, the input asks for the name: a
        blocked user is in no list (presence leaves them out), so a button that waited for a
        selection could never reach one (a trial's)."""
        user = self.selected_user()
        if user is not None:
            self.act("unblock", user)
            return
        if self.input.get().strip():
            # (a draft is not replaced: a trial's half-typed message went so)
            self.screen.note("To unblock someone, type /unblock and their name (a user you "
                             "block is in no list).")
            self._to_end = True
            self.refresh()
        else:
            self.input.delete(0, "end")
            self.input.insert(0, "/unblock ")
            self.input.icursor("end")
        self.input.focus_set()

    def aim(self, user, private=False):
        self.view.aim(user, private)
        self.refresh()
        self.input.focus_set()

    def act(self, verb, user):
        self._type(self.view.act(verb, user))

    def logout(self):
        self._type(self.view.logout())

    def answer(self, agree):
        self._type(self.view.answer(agree))

    def close(self):
        """The window's close button: hide at once, then log out as Ctrl-C does. While
        messages wait for the server, it asks first, and closes by itself once they are
        taken: closed at once, a trial's messages typed in an outage were listed as not sent
        on a standard error nobody read."""
        if self.leaving is not None:
            # (asked already: a second click is not the answer, and closed, a trial's
            # impatient double click lost what the question was for)
            self.leaving.lift()
            self.leaving.focus_set()
            return
        if self._sending():
            self.leaving = self._leave_dialog()
            self._draw_leaving()
            return
        self._close_now()

    def _sending(self):
        """True while a logged-in user's lines wait for the server: before a login, what
        waits is a login, not a message, and what waits for the next login never goes
        without one (a reviewer's question waited for ever so)."""
        return bool(self.view.waiting) and self.view.stage is Stage.LOGGED_IN

    def _close_now(self):
        # (said in the box at the end; once its user has logged out, theirs, not shown to
        # whoever is at the form: a re-trial's)
        self.screen.draft = self.input.get() if self.view.stage is Stage.LOGGED_IN else ""
        self._keep_open()
        self.root.withdraw()
        self.screen.close()
        self.kick()

    def _keep_open(self):
        if self.leaving is not None:
            self._end_dialog(self.leaving)
            self.leaving = None

    def _end_dialog(self, dialog):
        """Destroy `dialog`; if it had the keyboard, give it back to the widget that had it
        before: without a window manager nobody else does, and what was typed next was lost
        until a click that did not take either (a trial's)."""
        had_focus = str(self.root.tk.call("focus")).startswith(str(dialog))
        dialog.destroy()
        if had_focus:
            self.root.tk.call("focus", "-force", self.root.tk.call("focus", "-lastfor", "."))

    def _draw_leaving(self):
        if self.leaving is None:
            return
        if not self._sending():
            if self.view.waiting and self.view.stage is not Stage.LOGGED_IN:
                # the session ended as they waited (the server restarted, say): they go only
                # after a login, so the window stays for it, the status line saying what
                # waits (a trial's closed by itself, and its message was never sent); and
                # the form says that the close was put off (a later trial's wondered)
                self._keep_open()
                self.screen.note("The window stayed open: what you sent goes once you log in "
                                 "again. Close it after that, or now to leave it unsent.")
                self.refresh()
                return
            self._close_now()       # all taken: the close goes on
            return
        self.leaving.count.set(waiting_words(self.view.waiting, self.view.commands) + " waiting.")

    # -- drawing ------------------------------------------------------------------------------

    def refresh(self):
        """Make the widgets show the view."""
        view = self.view
        self._show("chat" if view.stage is Stage.LOGGED_IN else "login")
        self.prompt.set(view.prompt)
        self.notice.set(view.form_notice)
        if view.form_message != self.message.get():
            self.message.set(view.form_message)
            if self._showing == "login":
                # the answer to a submitted form: a refused name is typed again in the name
                # field (a trial's "Wrong username." left the cursor in the password field,
                # and the name typed next went there, hidden, and the wrong name with it)
                self._focus_form()
        self._draw_entries()
        if list(self.user_list.get(0, "end")) != view.users:
            self._draw_users()
        self._draw_user_buttons()
        self.target.set(view.target_text())
        self.status.set(view.status)
        self.root.title(f"Chat room: {view.user}" if view.stage is Stage.LOGGED_IN else "Chat room")
        self._draw_dialog()
        self._draw_leaving()

    def _show(self, which):
        if which == self._showing:
            return
        self._showing = which
        hide, show = ((self.login_frame, self.chat_frame) if which == "chat"
                      else (self.chat_frame, self.login_frame))
        hide.pack_forget()
        if which == "chat":
            show.pack(fill="both", expand=True)
        else:
            show.pack(expand=True)      # the form in the middle of the window
        if which == "chat":
            self.input.focus_set()
            # what came while the form was shown is drawn from its newest line: measured in
            # a pane not yet shown, a trial's 444 kept messages were left at their oldest
            self._to_end = True
        else:
            self._focus_form()

    def _focus_form(self):
        """The name field while it is empty or its name was refused (selected, so that the
        next one typed replaces it), else the password's: a form shown again with the name
        filled in had the password typed into the name field, shown and sent as a name (a
        trial's, twice; a re-attack's after the lockout's "blocked for 30 seconds", and after
        a login the server was too slow to answer)."""
        if self.view.name_refused or not self.name_entry.get().strip():
            self.name_entry.focus_set()
            self.name_entry.select_range(0, "end")
            self.name_entry.icursor("end")
        else:
            self.password_entry.focus_set()

    def _draw_entries(self):
        if self._cleared != self.view.cleared:      # another user's conversation begins
            self._cleared = self.view.cleared
            self.input.delete(0, "end")     # (the last user's draft too: a trial's stayed)
            self.pane.configure(state="normal")
            self.pane.delete("1.0", "end")
            self.pane.configure(state="disabled")
            self._shown = 0
        entries = self.view.entries[self._shown:]
        changed = [index for index in self.view.take_changed() if index < self._shown]
        if not entries and not changed:
            if self._to_end:
                self._see_end()
            return
        # (one scrolled up to read is left there)
        at_end = self._to_end or self.pane.yview()[1] >= 1.0
        self.pane.configure(state="normal")
        for index in changed:
            # entry i is line i + 1: each entry is one line (entry_text shows a newline as \x0a)
            self.pane.delete(f"{index + 1}.0", f"{index + 1}.end")
            self._draw_entry(f"{index + 1}.0", self.view.entries[index])
        for entry in entries:
            self._draw_entry("end", entry)
            self.pane.insert("end", "\n")
        self.pane.configure(state="disabled")
        if at_end:      # (an entry redrawn, one's own ✓, had left the pane at its top)
            self._see_end()
        self._shown += len(entries)

    def _see_end(self):
        if self._to_end:
            self.pane.update_idletasks()    # (a pane just shown: its size is known now)
            self._to_end = False
        self.pane.see("end")

    def _draw_entry(self, where, entry):
        """One entry's line (without its newline) at text index `where`."""
        if entry.kind != "mine":
            self.pane.insert(where, stamp(entry.at) + STAMP_GAP, ("stamp", "line"),
                             entry_text(entry), (entry.kind, "line"))
            return
        look, mark_look = _OWN_LOOKS[entry.fate]
        self.pane.insert(where, stamp(entry.at) + STAMP_GAP, ("stamp", "line"), entry_text(entry),
                         (look, "line"), "  " + entry_mark(entry), (mark_look, "line"))

    def _draw_users(self):
        keep = self.selected_user()
        self.user_list.delete(0, "end")
        for index, user in enumerate(self.view.users):
            self.user_list.insert("end", user)
            if user == keep:
                self.user_list.selection_set(index)

    def _draw_user_buttons(self):
        """The user-list buttons act on the selected user; Private message once they agreed."""
        user = self.selected_user()
        for name, button in self.user_buttons.items():
            usable = name == "unblock" or (user is not None and (
                name != "private" or self.view.can_private(user)) and (
                name != "takeback" or self.view.agreed(user)))
            button.state(["!disabled"] if usable else ["disabled"])
        self.hint.set(self.view.user_hint(user))

    def _draw_dialog(self):
        requester = self.view.consent
        if self.dialog is not None and self.dialog.requester != requester:
            self._end_dialog(self.dialog)       # answered, or the session ended
            self.dialog = None
        if requester is not None and self.dialog is None:
            self.dialog = self._consent_dialog(requester)

    def _consent_dialog(self, requester):
        dialog = self._dialog(
            "consent", "Private talk",
            f"Do you agree to have a private talk with {requester}?",
            f"If you agree, {requester} gets your address and can send you messages straight "
            f"to this window, not through the server.",
            (("agree", "Agree", lambda: self.answer(True)),
             ("refuse", "Refuse", lambda: self.answer(False))))
        dialog.requester = requester
        return dialog

    def _leave_dialog(self):
        dialog = self._dialog(
            "leave", "Messages on their way",
            "Some of your messages are not yet with the server.",
            "The window closes by itself once the server has them. Closed now, they are not "
            "sent.",
            (("close", "Close now", self._close_now),
             ("keep", "Keep the window open", self._keep_open)))
        dialog.count = tkinter.StringVar(dialog)
        ttk.Label(dialog, textvariable=dialog.count, padding=(16, 0, 16, 12),
                  name="count").pack(anchor="w", before=dialog.nametowidget("buttons"))
        return dialog

    def _dialog(self, name, heading, question, explained, buttons):
        """A dialog over the window: a heading, a question, a line explaining it, and buttons
        of (name, text, command), the last of them also Escape's and the close button's."""
        dialog = tkinter.Toplevel(self.root, name=name)
        dialog.title(heading)
        dialog.transient(self.root)
        # a border of its own: without a window manager's frame it would melt into the window
        dialog.configure(borderwidth=1, relief="solid")
        ttk.Label(dialog, text=heading, font=HEADING_FONT, name="heading",
                  padding=(16, 16, 16, 4)).pack(anchor="w")
        ttk.Label(dialog, padding=(16, 4), name="question", wraplength=DIALOG_WRAP,
                  text=question).pack(anchor="w")
        ttk.Label(dialog, padding=(16, 0, 16, 8), name="explained", wraplength=DIALOG_WRAP,
                  foreground=NOTICE_COLOUR, text=explained).pack(anchor="w")
        row = ttk.Frame(dialog, padding=(16, 0, 16, 16), name="buttons")
        row.pack()
        made = [ttk.Button(row, text=text, command=command, name=button_name)
                for button_name, text, command in buttons]
        for button in made:
            button.pack(side="left", padx=4)
        dialog.protocol("WM_DELETE_WINDOW", buttons[-1][2])
        # Escape presses the last button; Return presses the button that has the focus (Tab
        # moves it), never the first by itself: an Enter meant for the input as a consent
        # dialog opened would give the address away
        dialog.bind("<Escape>", lambda event: buttons[-1][2]())
        for button in made:
            button.bind("<Return>", lambda event, b=button: b.invoke())
            # (the next request's dialog opens where the last one's buttons were: a trial's
            # double-click answered two)
            button.state(["disabled"])
            dialog.after(DIALOG_ARM_MS, lambda b=button: b.winfo_exists() and b.state(
                ["!disabled"]))
        # over the middle of the chat window: with no window manager it would land at 0,0
        dialog.update_idletasks()
        dialog.geometry("+{}+{}".format(*centred(
            (dialog.winfo_reqwidth(), dialog.winfo_reqheight()),
            (self.root.winfo_rootx(), self.root.winfo_rooty(),
             self.root.winfo_width(), self.root.winfo_height()))))
        # above the chat window, with the keyboard: Escape answers at once, Tab reaches the
        # buttons (a trial's opened behind the window, and took no key until clicked)
        dialog.transient(self.root)
        dialog.focus_set()
        # what one was typing as it opened goes on into the input, not lost (a trial's half
        # sentence was): the dialog's own keys are Escape, Tab and a focused button's
        dialog.bind("<Key>", lambda event: self._typed_on(dialog, event))
        return dialog

    def _typed_on(self, dialog, event):
        """A key typed on a dialog itself (no button focused): a character, or BackSpace,
        goes to the input, whose text stays behind the dialog until it is answered."""
        if event.widget is not dialog:
            return None
        if event.keysym == "BackSpace":
            if self.input.selection_present():
                self.input.delete("sel.first", "sel.last")
            elif self.input.index("insert") > 0:
                self.input.delete(self.input.index("insert") - 1)
        elif event.char and event.char.isprintable():
            self.input.insert("insert", event.char)
        return None


def fitted(wanted, screen):
    """The window's (width, height): `wanted`, or the screen less SCREEN_MARGIN if smaller."""
    return tuple(min(want, have - margin) for want, have, margin in
                 zip(wanted, screen, SCREEN_MARGIN))


def centred(size, over):
    """Where a window of `size` (width, height) goes to be centred over the area `over`
    (x, y, width, height): its (x, y), never left of or above the area."""
    x, y, width, height = over
    return (x + max(0, (width - size[0]) // 2), y + max(0, (height - size[1]) // 2))


class NoWindow(Exception):
    """No window can be opened (no display)."""


class TkScreen(WindowScreen):
    """The client's screen as a Tk window; `run` serves the client until it exits."""

    def __init__(self, root):
        super().__init__()
        self.root = root
        self.window = None
        self.loop = None
        self._refreshed_at = None   # when the window was last drawn after a pass (its clock)
        self._refresh_id = None     # the Tk `after` that draws it next, if one waits
        self._undrawn = []          # what waits for the next drawing (once_drawn)
        self._closed = False
        self.tell_exit = tkinter.messagebox.showerror   # why the client ends, if it fails
        self._closed_for_exit = False
        self.draft = ""             # the input's text when the window was closed

    @classmethod
    def open(cls):
        """A new window on the display, or NoWindow."""
        try:
            return cls(tkinter.Tk())
        except tkinter.TclError as exc:
            raise NoWindow(str(exc)) from None

    def run(self, glue):
        """Show the window and run the client's reactor inside Tk's loop until it exits."""
        self.attach(glue)
        self.loop = TkLoop(self.root, glue.reactor, self._after_pass)
        self.window = ChatWindow(self.root, self, self.loop.kick)
        glue.start()
        self.loop.start()
        self.root.mainloop()

    def _after_pass(self):
        """Every pass may have changed what the window shows; the client may have exited
        (exit between passes, never inside one)."""
        if self.glue.exit_code is not None:
            if self._closed_for_exit:
                return          # (a pass already ended the window: one dialog, one destroy)
            self._closed_for_exit = True
            self.loop.stop()
            said = exit_box_text(self.glue.exit_reason, self.left_behind, self.draft)
            if said:
                # the window is all its user reads: it vanished, the reason on a standard
                # error nobody saw (a reviewer's, at a port that speaks TLS; another's with a
                # message it had promised to send, the session gone with a restart)
                self.tell_exit("Chat room", said, parent=self.root)
            self.root.destroy()
            return
        # at most every REFRESH_S: a flood of 2,000 long messages, drawn after each pass,
        # redrew the pane 1,748 times and froze the window for seconds (a trial's)
        if self._refresh_id is not None:
            return
        now = self.glue.reactor.clock.now()
        if self._refreshed_at is None or now >= self._refreshed_at + REFRESH_S:
            self._refresh(now)
        else:
            wait_ms = math.ceil((self._refreshed_at + REFRESH_S - now) * MS_PER_S)
            self._refresh_id = self.root.after(wait_ms, self._refresh)

    def _refresh(self, now=None):
        self._refresh_id = None
        self._refreshed_at = self.glue.reactor.clock.now() if now is None else now
        if self.glue.exit_code is None:
            self.window.refresh()
            undrawn, self._undrawn = self._undrawn, []
            for then in undrawn:
                then()
            if undrawn:
                # what they queued (acknowledgements) leaves in a pass: one now, not at the
                # next event (a trial's window, closed seconds after drawing an 800-message
                # backlog, had acknowledged 215 of them, and the rest came again)
                self.loop.kick()

    def once_drawn(self, then):
        """Call `then` (a message's acknowledgement) after the next drawing of the window,
        never once it is closed: a message it never drew comes again at the next login."""
        if not self._closed:
            self._undrawn.append(then)

    def close(self):
        self._closed = True
        self._undrawn.clear()
        super().close()
