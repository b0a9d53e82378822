"""Where the server's time goes per message, from a `bench.py --profile` run:
python3 tests/measure_costs.py bench-profile-direct-1.prof PER [US_PER_MESSAGE]

PER is how many messages the run handled, or a function counted once per message (for
example `server_messages.py:_message`, or `delivery.py:offer` for broadcast deliveries).

Groups the profile's own time (tottime) by what does the work: the chat core, storage (storage.py
and SQLite), JSON (the C encoder and scanner and the code around them), the glue, the event and
action objects, the reactor, system calls, and Python built-ins (len, dict and list methods,
which the whole server calls). Prints microseconds per message: of the profiled run, and, given
the unprofiled cost (server CPU divided by the rate, from `make bench`), scaled to it. cProfile
slows Python calls more than C, so the scaled split leans toward C; the README says so.
"""
import collections
import pstats
import sys

GROUPS = [  # (group, test on (filename, function name)), first match wins
    ("storage (storage.py and SQLite)",
     lambda f, n: f.endswith("storage.py") or "sqlite3" in n),
    ("JSON (C encoder and scanner, and protocol's code around them)",
     lambda f, n: f.endswith(("json/encoder.py", "json/decoder.py", "json/__init__.py"))
     or "_json" in n or n in ("encode_text", "decode", "encode", "line_head", "chat_head",
                               "reply_line", "numbered", "numbered_line")),
    ("system calls (send, recv, epoll)",
     lambda f, n: any(word in n for word in ("'send'", "'recv'", "'poll'", "'_accept'",
                                             "'accept'", "'register'", "'modify'",
                                             "'unregister'", "'close'"))),
    ("chat core (chat_server, delivery, sessions, limits, field checks)",
     lambda f, n: f.endswith(("chat_server.py", "server_logins.py", "server_messages.py",
                              "server_contacts.py", "server_replies.py",
                              "delivery.py", "sessions.py", "limits.py",
                              "presence.py", "lockouts.py", "consents.py", "passwords.py",
                              "protocol.py"))),
    ("events and actions (server_events.py, dataclass __init__)",
     lambda f, n: f.endswith("server_events.py") or f == "<string>"),
    ("glue (server_glue.py)", lambda f, n: f.endswith("server_glue.py")),
    ("reactor (reactor.py, selectors)", lambda f, n: f.endswith(("reactor.py", "selectors.py"))),
    ("Python built-ins (len, dict and list methods, ...)", lambda f, n: f == "~"),
]


def grouped(path):
    """A profile -> {group: seconds of own time}."""
    totals = collections.Counter()
    for (filename, _, name), (_, _, tottime, _, _) in pstats.Stats(path).stats.items():
        group = next((g for g, test in GROUPS if test(filename, name)), "other")
        totals[group] += tottime
    return totals


def counted(path, per):
    """PER as a number, or how often the function `file.py:name` was called in the profile."""
    if per.isdigit():
        return int(per)
    filename, _, name = per.partition(":")
    return sum(calls for (file, _, function), (_, calls, _, _, _) in
               pstats.Stats(path).stats.items()
               if file.endswith("/" + filename) and function == name)


def main():
    path, messages = sys.argv[1], counted(sys.argv[1], sys.argv[2])
    real_us = float(sys.argv[3]) if len(sys.argv) > 3 else None
    totals = grouped(path)
    whole = sum(totals.values())
    print(f"{messages} messages; microseconds of server CPU each")
    print(f"{'group':66} {'profiled':>11} {'scaled':>9}")
    for group, seconds in totals.most_common():
        profiled = seconds / messages * 1e6
        scaled = "" if real_us is None else f"{seconds / whole * real_us:9.2f}"
        print(f"{group:66} {profiled:11.2f} {scaled}")
    print(f"{'total':66} {whole / messages * 1e6:11.2f} "
          f"{'' if real_us is None else f'{real_us:9.2f}'}")


if __name__ == "__main__":
    main()
