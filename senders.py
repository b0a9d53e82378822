"""Senders' counters: which of a client's numbered messages the server has taken, so a retry is
answered and never stored twice (PROTOCOL.md, "Guaranteed delivery").

Each run of a client has an id and numbers its messages 1, 2, 3 ... Like Kafka's idempotent
producer, the server keeps per (user, client id) the highest number taken and the reply to it,
not a reply per message; like IPsec's anti-replay window, it also keeps which of the
REPLAY_WINDOW numbers below the highest were taken, as the bits of one integer, so messages that
overtake each other (sent at once on parallel connections) are each taken once. In memory, with
the changes since the last write kept for the store (storage.py), which writes them with the
messages they answer.
"""
REPLAY_WINDOW = 1024        # numbers below a client's highest still told apart one by one
CLIENTS_PER_USER = 1024     # counters kept per user: past it, the least recently used client
                            # id is forgotten. client.py takes a new id each run: at 64, a
                            # trial's 70 runs of one account in a minute forgot the id of a
                            # run whose reply was lost, and its retry was stored twice; 1,024
                            # is 17 hours of a script run every minute (half a MiB)
NEW, LAST, TAKEN, TOO_OLD = "new", "last", "taken", "too old"    # what seen() says
_WINDOW_MASK = (1 << REPLAY_WINDOW) - 1
_NO_CLIENTS = {}            # the counters of a user who has sent nothing (never changed)


class Senders:
    """Per (user, client id): [highest number taken, the numbers taken below it as bits (bit n:
    highest - n), the reply to the highest, when last used (the caller's time)]."""

    def __init__(self):
        self._by_user = {}          # user -> {client id: entry}, least recently used first
        self._moved = {}            # (user, client) -> entry to write, or None to delete

    def load(self, rows):
        """Counters as written: (user, client, number, taken bits in hex, reply, at), oldest
        use first."""
        for user, client, number, taken, reply, at in rows:
            self._by_user.setdefault(user, {})[client] = [number, int(taken, 16), reply, at]

    def seen(self, user, client, number):
        """Has `user`'s client `client` had its message `number` taken? -> NEW, LAST (it was
        the highest taken), TAKEN (below the highest, taken), or TOO_OLD (more than
        REPLAY_WINDOW below the highest: nobody can tell)."""
        entry = self._by_user.get(user, _NO_CLIENTS).get(client)
        if entry is None or number > entry[0]:
            return NEW
        behind = entry[0] - number
        if behind >= REPLAY_WINDOW:
            return TOO_OLD
        if not entry[1] >> behind & 1:
            return NEW
        return LAST if behind == 0 else TAKEN

    def reply_to_last(self, user, client):
        """The reply given to the highest number taken from that client (a dict of its own),
        or None."""
        entry = self._by_user.get(user, _NO_CLIENTS).get(client)
        return None if entry is None else dict(entry[2])

    def taken(self, user, client, number, reply, at):
        """`user`'s client `client` had its NEW message `number` taken, answered `reply` (a
        dict, copied; kept if `number` is the highest) at time `at`. Past CLIENTS_PER_USER
        client ids, the least recently used one goes."""
        clients = self._by_user.get(user)
        if clients is None:
            clients = self._by_user[user] = {}
        entry = clients.pop(client, None)
        if entry is None:
            entry = [number, 1, dict(reply), at]
        elif number > entry[0]:
            gap = number - entry[0]
            # (past the window no bit of the old one stays: the shift alone, by a gap of up to
            # 2^53, built an integer that wide first, seconds of CPU and gigabytes)
            entry[1] = (entry[1] << gap | 1) & _WINDOW_MASK if gap < REPLAY_WINDOW else 1
            entry[0], entry[2], entry[3] = number, dict(reply), at
        else:
            entry[1] |= 1 << (entry[0] - number)
            entry[3] = at
        clients[client] = entry         # last in the dict: the most recently used
        self._moved[(user, client)] = entry     # a pass writes each client's last state once
        if len(clients) > CLIENTS_PER_USER:
            oldest = next(iter(clients))
            del clients[oldest]
            self._moved[(user, oldest)] = None

    def forget_before(self, user, at, keep=None):
        """Forget `user`'s client ids silent since before time `at`, but `keep` (the core calls
        this at the user's login, naming the client that logs in: it may retry its oldest
        message however long it was away; the others' runs have ended)."""
        clients = self._by_user.get(user)
        if not clients:
            return
        for client in [client for client, entry in clients.items()
                       if entry[3] < at and client != keep]:
            del clients[client]
            self._moved[(user, client)] = None

    def take_moved(self):
        """What changed since the last call -> ([(user, client, number, taken bits in hex,
        reply, at)] to write, [(user, client)] to delete)."""
        moved, self._moved = self._moved, {}
        rows = [(user, client, entry[0], f"{entry[1]:x}", entry[2], entry[3])
                for (user, client), entry in moved.items() if entry is not None]
        return rows, [key for key, entry in moved.items() if entry is None]

    def __bool__(self):
        """True while changes wait to be written."""
        return bool(self._moved)
