"""Whether the client can reach the server: an outage is said once, its end is said once, and
meanwhile it knows when the server is next tried.

The client core (chat_client.py) tells it what happened (a request failed, the server answered,
a timer that contacts the server was armed or fired) and shows what it returns; a screen draws
the rest from `Status.outage` and `Status.retry_at`. The server is tried by the outbox's retries,
the heartbeats, the staying link's reconnections, and probes (a connection that asks nothing,
made with backoff while no one is logged in). Pure state: no clock, no actions but Shows.
"""
import limits
from client_events import Show
from protocol import NOT_OURS

PROBE_FIRST_S = 1.0         # an unreachable server is looked for again after this, doubling
PROBE_MAX_S = 30.0          # ... up to this, while no one is logged in


class Outage:
    """The server's reachability as the client has seen it."""

    def __init__(self, server=None, tls=False, cafile=None):
        self.server = server        # "HOST:PORT" for the words, or None
        self.tls = tls              # the client speaks TLS
        self.cafile = cafile        # the file of certificates it trusts (--cafile), or None
        self.reached = False        # the server has answered in this run
        self.reason = None          # why the server cannot be reached now, or None
        self.tries_at = {}          # what will contact the server (a timer key's type) -> when
        self.probe_s = 0.0          # the wait before the next probe; doubles per failure

    def where(self):
        """'the server at 127.0.0.1:4119', or 'the server' when its address is not known."""
        return f"the server at {self.server}" if self.server else "the server"

    def failed(self, reason, typed=False):
        """A try failed -> what to show: the outage once, and again for a line the user typed
        (a typed line always gets an answer)."""
        said = typed or self.reason is None
        self.reason = reason
        # a TLS server resets a client that speaks plain TCP to it, and says nothing more (an
        # operator's trial: users asked what "reset" meant)
        hint = (" If the server uses TLS, start the client with --tls (or --cafile FILE)."
                if "reset" in reason and not self.tls and not self.reached else "")
        if reason == NOT_OURS:
            hint = (" Another program listens at that port (the server's IRC port, say): "
                    "check the port.")
        if self.tls and reason.startswith("tls: ") and (
                "certificate" in reason or "mismatch" in reason):
            # (tried again for ever, with nothing said of what would help: a trial's)
            hint = " That will not change by itself: " + _certificate_help(reason, self.cafile)
        return [Show("outage", f"Cannot reach {self.where()} ({reason}).{hint}")] if said else []

    def announced(self, reason):
        """The server said it is going (a staying connection's `shutdown`, shown as such):
        the outage begins, said already, so the failure that follows is not said again."""
        self.reason = reason

    def answered(self):
        """The server answered -> what to show: that it is back, if it was away."""
        was, self.reason = self.reason, None
        self.reached = True
        self.probe_s = 0.0
        return [Show("back", "The server is back.")] if was is not None else []

    def planned(self, kind, at):
        """`kind` (a timer key's type, say) will contact the server at `at`."""
        self.tries_at[kind] = at

    def unplanned(self, kind):
        """`kind` fired or was cancelled -> True if it had been planned."""
        return self.tries_at.pop(kind, None) is not None

    def next_probe_s(self):
        """A probe is due: the seconds to wait before it (1 s doubling to 30 s)."""
        self.probe_s = limits.next_backoff(self.probe_s, PROBE_FIRST_S, PROBE_MAX_S)
        return self.probe_s

    def retry_at(self, under_way):
        """When the server is tried next: the oldest of the tries `under_way` (their start
        times), else the next one planned; None without an outage or a try to come."""
        if self.reason is None:
            return None
        times = list(under_way) or list(self.tries_at.values())
        return min(times) if times else None


def _certificate_help(reason, cafile):
    """What would help with a certificate refused for `reason` (OpenSSL's words), `cafile`
    trusted: a trial's expired certificate, a wrong host, and a wrong --cafile, were told to
    give --cafile, which they had."""
    if "expired" in reason or "not yet valid" in reason:
        return ("the server's certificate is out of its dates; its operator must make a new one "
                "(make cert) and restart the server.")
    if "mismatch" in reason:
        return ("name the server as its certificate does (the host it was made for), or have "
                "one made for this name.")
    if cafile is not None:
        return (f"the certificate in {cafile} is not this server's: give the server's own with "
                f"--cafile (the cert.pem its make cert made).")
    return ("give the server's own certificate with --cafile FILE (cert.pem, from make cert).")
