"""The shape of the code: every import points down the layers the README's module map lists,
no module takes another's private name, and every module says its one job."""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent

# Bottom first. A module may import the modules of lower layers, and those listed before it in
# its own layer; never one after it. The README's module map describes the same layers.
LAYERS = [
    ("protocol", "line_tags", "irc_wire", "irc_words", "options",     # the wires, plain helpers
     "limits", "certificate", "core_events", "cells", "keys", "completion", "words"),
    ("timers", "pacing", "reactor", "heap", "server_log",   # time, the loop, the log, the disk,
     "passwords", "senders", "log_index", "wal", "store_files", "storage"),     # the memory
    ("server_events", "server_replies", "client_events",           # the cores' vocabularies
     "client_requests"),
    ("lockouts", "shares", "consents", "presence", "delivery", "sessions",  # rules with state
     "commands", "peer", "outbox", "outage", "doorkeeper", "line_editor", "irc_room",
     "irc_session"),
    ("reach", "server_logins", "server_messages", "server_contacts",   # the cores, and the
     "chat_server", "client_login", "client_session", "client_sending",    # parts they are
     "client_deliveries", "client_leaving", "chat_client"),               # made of
    ("delivery_links", "server_glue", "irc_glue", "status", "client_glue", "stay", "terminal",
     "gui", "gui_tk"),                                             # glue, screens
    ("server", "client", "bench", "floor_server"),                 # the entry points
]
ORDER = [module for layer in LAYERS for module in layer]
# The imports within a layer, each one a module built on another of its kind; a new one is
# added here on purpose, with its reason, or the module moves down a layer.
SIDEWAYS = {
    ("irc_words", "irc_wire"),          # what the IRC port says, in IRC's lines
    ("reactor", "timers"),              # the loop fires the timer wheel ...
    ("reactor", "pacing"),              # ... and folds its own repeated log lines
    ("storage", "log_index"),           # the store keeps its index ...
    ("storage", "senders"),             # ... and its senders' counters
    ("storage", "store_files"),         # ... and looks at its files on the disk, which ...
    ("store_files", "wal"),             # ... reads SQLite's log before SQLite does
    ("outbox", "commands"),             # what waits to be sent is typed commands
    ("doorkeeper", "peer"),             # the private port's guard speaks the peer protocol
    ("irc_session", "irc_room"),        # a session's room commands
    ("server_replies", "server_events"),    # an answer is a Reply
    ("chat_server", "reach"),           # the server's core is made of its parts: reaching users,
    ("chat_server", "server_logins"),   # ... sessions,
    ("chat_server", "server_messages"),     # ... messages,
    ("chat_server", "server_contacts"),     # ... presence, blocks and consents
    ("chat_client", "client_login"),    # the client's core is made of its parts: the way in,
    ("chat_client", "client_session"),  # ... the session's life,
    ("chat_client", "client_sending"),  # ... messages and commands,
    ("chat_client", "client_deliveries"),   # ... what reaches it, and peers,
    ("chat_client", "client_leaving"),  # ... and the end
    ("server_glue", "delivery_links"),  # the glue's connections to listening ports
    ("irc_glue", "server_glue"),        # the IRC port is the native port with another codec
    ("stay", "client_glue"),            # the staying link is the client glue's
    ("gui_tk", "gui"),                  # Tk draws the view
}
PROJECT = sorted(path.stem for path in ROOT.glob("*.py"))


def imports(path):
    """(module, names) for every import in a file, at any depth (a lazy import counts)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.split(".")[0], []
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module.split(".")[0], [alias.name for alias in node.names]


def test_every_module_has_its_place_in_the_layers():
    assert sorted(ORDER) == PROJECT


@pytest.mark.parametrize("module", PROJECT)
def test_every_import_points_down(module):
    below = set(ORDER[:ORDER.index(module)])
    upward = [name for name, _ in imports(ROOT / f"{module}.py")
              if name in PROJECT and name != module and name not in below]
    assert upward == [], f"{module} imports {upward}, which are not below it"


def test_imports_within_a_layer_are_the_listed_ones():
    within = {(module, name) for layer in LAYERS for module in layer
              for name, _ in imports(ROOT / f"{module}.py") if name in layer and name != module}
    assert within == SIDEWAYS


@pytest.mark.parametrize("path", sorted(ROOT.glob("*.py")) + sorted(ROOT.glob("tests/*.py")),
                         ids=lambda path: path.name)
def test_no_module_imports_a_private_name_from_another(path):
    ours = set(PROJECT) | {p.stem for p in ROOT.glob("tests/*.py")}
    taken = [f"{module}.{name}" for module, names in imports(path) if module in ours
             for name in names if name.startswith("_")]
    assert taken == []


@pytest.mark.parametrize("module", PROJECT)
def test_every_module_opens_with_its_one_job(module):
    tree = ast.parse((ROOT / f"{module}.py").read_text(encoding="utf-8"))
    assert ast.get_docstring(tree), f"{module}.py has no docstring saying what it is for"


def test_the_readmes_map_names_every_module():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [module for module in PROJECT if f"`{module}.py`" not in readme]
    assert missing == []
