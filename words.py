"""Counts in the words people read, one way everywhere: the client's screens and the server's
log alike ("1 message", "3 messages", "12,000 users")."""


def plural(count, word):
    """3, "message" -> "3 messages" (1 -> "1 message"); thousands are grouped."""
    return f"{count:,} {word}" + ("" if count == 1 else "s")
