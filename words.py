"""Counts in the words people read, one way everywhere: the client's screens and the server's
log alike ("1 message", "3 messages", "12,000 users")."""


def plural(count, word):
    """3, "message" -> "3 messages" (1 -> "1 message"); thousands are grouped."""
    return f"{count:,} {word}" + ("" if count == 1 else "s")


def waiting_words(count, commands, noun="message"):
    """`count` things waiting, `commands` of them commands -> "2 messages", "1 message and 1
    command", "1 command" (a logout waiting was counted as a message: a trial's)."""
    others = count - commands
    if not commands:
        return plural(count, noun)
    if not others:
        return plural(commands, "command")
    return f"{plural(others, noun)} and {plural(commands, 'command')}"
