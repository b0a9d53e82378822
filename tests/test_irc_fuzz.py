"""A seeded fuzzer for the IRC port: mutated and random IRC lines from several clients at once,
through the real core, store, native glue and IRC front end on a real reactor under the virtual
clock. No exception may escape (the reactor would log any a handler raised: none may be), and
a native user beside them keeps being served, every message acknowledged. The seed is fixed, so
a failure repeats; FUZZ_SEED=n tries another."""
import os
import random

from test_irc_front import (IrcClient, irc_login, native_login, settle,  # noqa: F401
                            world)

SEED = int(os.environ.get("FUZZ_SEED", "18"))
LINES = 20_000
COMMANDS = ["CAP", "AUTHENTICATE", "PASS", "NICK", "USER", "PING", "PONG", "QUIT", "PRIVMSG",
            "NOTICE", "JOIN", "PART", "NAMES", "WHO", "WHOIS", "ISON", "USERHOST", "MODE",
            "TOPIC", "LIST", "AWAY", "SILENCE", "MOTD", "LUSERS", "VERSION", "TIME", "KICK",
            "001", ""]
WORDS = ["columbia", "seas", "foobar", "guest", "chat", "#chat", "#other", "*", "0", ":", "::",
         "+seas", "-seas", "LS", "302", "REQ", ":sasl echo-message", "END", "LIST", "PLAIN",
         "+", "ack-1", "ack-99999999999999999999", "\x01ACTION x\x01", "\x01VERSION\x01", "³",
         "é", "\u202e", "x" * 450, ",", "a,,b", "@", "!", "116bway", "c?l*"]


def line(rng):
    """One fuzzed line (bytes): a command with random words, sometimes tags, a source, junk."""
    roll = rng.random()
    if roll < 0.05:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80)))
    words = [rng.choice(COMMANDS)] + [rng.choice(WORDS) for _ in range(rng.randrange(5))]
    text = " ".join(words)
    if roll < 0.15:
        text = f"@+x={rng.choice(WORDS)};time=now :{rng.choice(WORDS)} " + text
    if roll < 0.2:
        text = text.replace(" ", "  ")
    return text.encode("utf-8", "surrogatepass")


def test_fuzzed_irc_lines_raise_nothing_and_a_native_user_is_served(world):
    rng = random.Random(SEED)
    seas = native_login(world, "seas")
    clients = [irc_login(world, "columbia"), IrcClient(world.reactor, world.irc_port),
               irc_login(world, "guest", password="x"), IrcClient(world.reactor, world.irc_port)]
    everyone = list(clients)
    for sent in range(LINES):
        client = rng.choice(clients)
        if client.closed is not None:
            clients[clients.index(client)] = client = IrcClient(world.reactor, world.irc_port)
            everyone.append(client)
        client.send(line(rng) + b"\r\n")
        if sent % 100 == 0:
            seas.request("heartbeat")           # (the clock moves: seas stays logged in)
            for open_client in clients:         # every line so far read and answered
                if open_client.closed is None:
                    open_client.send(f"PING :sync-{sent}")
                    settle(world, lambda c=open_client: c.closed or any(
                        m.command == "PONG" and m.params[-1] == f"sync-{sent}"
                        for m in c.messages[-50:]))
            world.clock.advance(rng.choice([0.0, 0.5, 5.0]))
    request = seas.request("message", to="foobar", text="still served")
    settle(world, lambda: seas.reply(request))
    assert seas.reply(request)[0]["type"] == "ok", seas.reply(request)
    answered = sum(len(client.messages) for client in everyone)
    assert answered > LINES / 2, answered       # the lines were read and answered
    # an exception in any callback is logged by the reactor, and closes as "internal error"
    assert [text for text in world.log if "error in callback" in text or "internal" in text] == []
