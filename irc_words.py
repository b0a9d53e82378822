"""What the IRC port says to people, in IRC's terms: refusals, notices, the help, the topic,
times, and /me both ways (no state; irc_session.py decides when to say it).

The native codes these word are in PROTOCOL.md; the terminal's and the window's words for the
same things are in commands.py and gui.py.
"""
import time

from irc_wire import pieces

SERVICE = "chat"         # lower case: it is compared with names folded (irc_wire.fold)
SERVICE_SOURCE = f"{SERVICE}!{SERVICE}@services"
USER_HOST = "chat"      # every user's host in IRC prefixes: the server tells no addresses
VERSION = "chat-1"
TOPIC = "The chat room: everyone logged in is here. /msg chat help for the rest."
CTCP = "\x01"               # a text between two of these is a CTCP query or reply, not words
HELP = ("Commands (send them to me as a message): online | block USER | unblock USER | "
        "y USER / n USER (answer a request for your address) | logout. /msg USER and the "
        "room are message and broadcast; SILENCE +USER / -USER blocks too. Private (peer to "
        "peer) talk is for client.py users only.")
NO_PRIVATE = ("Private (peer to peer) talk needs client.py: over IRC, /msg the user instead (it "
              "goes through the server and waits if they are away).")

# A refused request's code -> why, for a notice (which says "Not sent to ..." itself).
_WHY = {
    "blocked": "{to} blocks you",
    "inbox_full": "too many messages already wait for {to}: try later",
    # (with "share": what one sender may leave users who are away, shares.py)
    ("inbox_full", "share"): "you have left {to} as many messages as one sender may until "
                             "they read them",
    ("store_full", "share"): "you have left users who are away as many messages as one "
                             "sender may until they read them",
    "store_full": "the server holds as many messages as it may: try later",
    "unavailable": "the server cannot store messages just now: send it again in a moment",
    "slow_down": "too many messages at once: send it again in a moment",
    "unknown_user": "there is no user {to}",
    "already_blocked": "you already block {to}",
    "not_blocked": "you do not block {to}",
    "self": "that names yourself",
    "offline": "{to} is not online",
    "already_asked": "you asked {to} already",
    "no_request": "{to} has not asked for your address (or the question lapsed)",
}
_LOGIN_REFUSED = {
    "wrong_password": "Wrong password ({attempts_left} more and the name is blocked for a while)",
    "too_many_attempts": "Wrong password: the name is blocked for {seconds} s",
    "locked": "This name is blocked for a while after wrong passwords; try again in {seconds} s",
    "unknown_user": "No account is called {user}",
    "unavailable": "The server cannot log anyone in just now; try again in a moment",
    "bad_field": "That name or password cannot be used here",
}


def why(refusal, to):
    """A core's error frame about user `to` -> why, in a few words."""
    code = refusal.get("code")
    key = (code, "share") if refusal.get("share") is True else code
    return _WHY.get(key, refusal.get("message", "refused")).format(to=to)


def login_refused(refusal, user):
    """A core's error frame to a login -> the sentence a 464 or 904 carries."""
    if refusal.get("code") == "slow_down":      # (failed logins, or logins in all: it says)
        message = str(refusal.get("message", "too many logins just now"))
        return message[:1].upper() + message[1:]
    return _LOGIN_REFUSED.get(refusal.get("code"), "Login refused").format(
        user=user, **{k: v for k, v in refusal.items() if k != "user"})


def notice_about(kind, user, unreached=False):
    """A peer-to-peer notice from the core (PROTOCOL.md, "Peer to peer") -> its sentence, or
    None for those an IRC user need not hear. `unreached`: the question never reached `user`."""
    if kind == "address_lapsed" and unreached:
        return f"{user} could not be asked: their client did not take the question."
    return {
        "consent_request": f"{user} asks for your address for a private talk. IRC has none, "
                           f"but you can answer: /msg {SERVICE} y {user} (they will be told to "
                           f"/msg you) or /msg {SERVICE} n {user}.",
        "consent_lapsed": f"{user}'s request for your address lapsed.",
        "address_refused": f"{user} refused to give you their address.",
        "address_lapsed": f"{user} did not answer your request.",
        "address_unavailable": f"{user} agreed, but has no address to give: /msg them.",
    }.get(kind)


def stamp(at):
    """Wall-clock seconds -> IRCv3 server-time, UTC with milliseconds."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at * 1000) % 1000:03d}Z"


def sent_at(at):
    """A kept message's time, for a client without server-time: `[sent 2026-12-05 14:02 UTC] `."""
    return f"[sent {stamp(at)[:16].replace('T', ' ')} UTC] "


def ctcp_word(text):
    """'\\x01VERSION\\x01' -> 'VERSION': a CTCP message's command, upper-cased."""
    return (text[1:].split(None, 1) or [""])[0].rstrip(CTCP).upper()   # (a tab ends it too)


def from_action(text):
    """An IRC /me (CTCP ACTION) -> the text a client.py user types for it, `/me waves`. Its
    word in any case, its closing mark or not, as ctcp_word reads it (a trial's "\x01action
    x\x01" reached client.py users with its marks, IRC users as " action x ")."""
    word = CTCP + "ACTION"
    after = text[len(word):len(word) + 1]
    if text[:len(word)].upper() == word and (after in ("", CTCP) or after.isspace()):
        # (a mark inside it is a space: a re-attack's "waves\x01 extra" reached client.py
        # users with it)
        return "/me " + text[len(word) + 1:].rstrip(CTCP).replace(CTCP, " ")
    return text


def to_action(text, limit):
    """Text from the core -> the IRC lines' texts: `/me waves` as a CTCP ACTION, so IRC
    clients show it as an action; long text in pieces of at most `limit` bytes, each as it
    goes (irc_wire.text_bytes). A CTCP mark in the text itself (a native user's: IRC senders'
    other CTCP is not passed on) becomes a space, so no text reaches an IRC client as CTCP
    (a DCC offer, say)."""
    if CTCP in text:
        text = text.replace(CTCP, " ")
    if not text.startswith("/me "):
        return pieces(text, limit)
    wrapping = len(f"{CTCP}ACTION {CTCP}")
    return [f"{CTCP}ACTION {piece}{CTCP}" for piece in pieces(text[4:], limit - wrapping)]
