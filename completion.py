"""Tab completion for the input line: a command's name as the first word (and after `help`), a
user's name as the second word of a command that takes one; past them, text (IN_TEXT), where a
Tab is a space.

Pure: the terminal (terminal.py) gives the command names, which commands take a user first,
and the names it has seen; the line editor (line_editor.py) applies what comes back.
"""
from dataclasses import dataclass

# a message's text, where nothing is completed: a Tab there is a space between words (a
# trial's pasted "col1<Tab>col2" arrived as "col1col2")
IN_TEXT = object()


@dataclass(frozen=True)
class Completion:
    """The word before the cursor begins at `start` and could become any of `matches`."""
    start: int
    matches: tuple


class Completer:
    """What the word before the cursor could be: command names, then user names."""

    def __init__(self, commands, user_commands, users):
        self.commands = tuple(commands)                # every command name, as typed best
        self.user_commands = {name.lower() for name in user_commands}   # take a user first
        self.users = users          # a set the caller keeps up to date (names seen so far)

    def __call__(self, before):
        """The line up to the cursor -> a Completion, None when that word has none, or IN_TEXT
        past the words a command's name and a user's name take."""
        words = before.split()
        if not before or before[-1].isspace():
            words.append("")
        word = words[-1]
        start = len(before) - len(word)
        if len(words) == 1:
            # (after a window's or an IRC client's "/" too, which commands may begin with)
            slash = "/" if word.startswith("/") else ""
            matches = [slash + name for name in self.commands
                       if name.lower().startswith(word[len(slash):].lower())]
        elif len(words) == 2 and words[0].lower().removeprefix("/") in self.user_commands:
            matches = [name for name in self.users if name.startswith(word)]
        elif len(words) == 2 and words[0].lower().removeprefix("/") == "help":
            matches = [name for name in self.commands if name.lower().startswith(word.lower())]
        else:
            return IN_TEXT
        return Completion(start, tuple(sorted(set(matches)))) if matches else None


def common_start(words):
    """The longest start every word shares ('' for none)."""
    first, last = min(words), max(words)
    size = 0
    while size < min(len(first), len(last)) and first[size] == last[size]:
        size += 1
    return first[:size]
