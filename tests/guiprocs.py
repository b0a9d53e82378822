"""A virtual display and real GUI clients on it, for the GUI end-to-end tests.

`VirtualDisplay` runs Xvfb on a free display number (Xvfb picks it and reports it on a pipe
with -displayfd) and keeps its screen in a file (-fbdir), which `screenshot` turns into a PNG
with no other tool. `GuiProcess` runs `python3 client.py --gui` on it and drives the window the
way Tk lets one application drive another: `send`, which runs a Tcl command in the client, so
the test fills entries and invokes buttons by their widget names and reads them back.
Every wait is bounded; nothing sleeps for a fixed time.
"""
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib

from realprocs import ACCOUNTS, ROOT, WAIT_S

SCREEN = (1840, 640)     # room for two windows side by side
XWD_HEADER_FIELDS = 25      # CARD32 fields before the window name
XWD_COLOR_BYTES = 12


class NoDisplay(Exception):
    """No virtual display can be had here; the message says why."""


class VirtualDisplay:
    """Xvfb on a free display number, `size` pixels wide and high; .name is like ':3'."""

    def __init__(self, tmp_dir, size=SCREEN):
        xvfb = shutil.which("Xvfb")
        if xvfb is None:
            raise NoDisplay("Xvfb is not installed (tests/setup_display.sh installs it as root)")
        self.size = size
        self.fb_dir = os.path.join(tmp_dir, "fb")
        os.makedirs(self.fb_dir, exist_ok=True)
        reader, writer = os.pipe()
        self.proc = subprocess.Popen(
            [xvfb, "-displayfd", str(writer), "-screen", "0", f"{size[0]}x{size[1]}x24",
             "-fbdir", self.fb_dir, "-nolisten", "tcp"],
            pass_fds=(writer,), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        os.close(writer)
        try:
            number = _read_line(reader, WAIT_S)
        finally:
            os.close(reader)
        if not number:
            self.stop()
            raise NoDisplay("Xvfb did not start")
        self.name = ":" + number

    @property
    def frame_buffer(self):
        return os.path.join(self.fb_dir, "Xvfb_screen0")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(WAIT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Screens:
    """Virtual displays by size, each with a Tk of the test's on it (to drive the windows with
    `send`), for a whole test session. Tk keeps its connection to a display until the process
    ends, and dies of an X I/O error at the next event once that display is gone: so none is
    stopped before the end of the session."""

    def __init__(self, tmp_dir):
        self.tmp_dir = tmp_dir
        self._screens = {}          # size -> (VirtualDisplay, tkinter.Tk), or the NoDisplay

    def get(self, size=SCREEN):
        """(VirtualDisplay, Tk) of `size`, started at the first call; or NoDisplay."""
        if size not in self._screens:
            try:
                display = VirtualDisplay(os.path.join(self.tmp_dir, f"{size[0]}x{size[1]}"),
                                         size)
            except NoDisplay as why:
                self._screens[size] = why
            else:
                import tkinter      # only the GUI tests need it, and only with a display
                tk = tkinter.Tk(screenName=display.name)
                tk.withdraw()
                self._screens[size] = (display, tk)
        found = self._screens[size]
        if isinstance(found, NoDisplay):
            raise found
        return found

    def stop(self):
        for found in self._screens.values():
            if not isinstance(found, NoDisplay):
                found[1].destroy()
        for found in self._screens.values():
            if not isinstance(found, NoDisplay):
                found[0].stop()


def _read_line(fd, timeout_s):
    """Bytes from `fd` up to a newline (or EOF, or the time-out), as text."""
    end = time.monotonic() + timeout_s
    data = b""
    while not data.endswith(b"\n") and time.monotonic() < end:
        ready, _, _ = select.select([fd], [], [], end - time.monotonic())
        chunk = os.read(fd, 64) if ready else b""
        if not chunk:
            break
        data += chunk
    return data.decode().strip()


class GuiProcess:
    """`python3 client.py --gui 127.0.0.1 PORT` on `display`, driven through Tk's send."""

    def __init__(self, tk, display, port, stderr_path, *args):
        self.tk = tk                    # a Tk of the test, on the same display
        before = set(self.interps())
        self._err = open(stderr_path, "wb")
        self.stderr_path = stderr_path
        env = {**os.environ, "DISPLAY": display.name}
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "client.py"), "127.0.0.1", str(port), "--gui",
             *args],
            stdin=subprocess.DEVNULL, stdout=self._err, stderr=self._err, env=env, cwd=ROOT)
        self.app = None
        self.app = self.wait(lambda: _one(set(self.interps()) - before), "the window to open")
        # the window is up; wait until the loop runs (and signals are caught) before driving it
        self.wait(lambda: self.call("winfo", "ismapped", ".") == "1", "the window to be mapped")

    def interps(self):
        return [str(name) for name in self.tk.call("winfo", "interps")]

    def call(self, *words):
        """Run one Tcl command in the client; returns its result as text."""
        return str(self._send(*words))

    def _send(self, *words):
        # send joins its words like concat: quote them as one list so spaces survive
        return self.tk.call("send", self.app, self.tk.call("list", *words))

    def wait(self, condition, what, timeout_s=WAIT_S):
        """Poll `condition` until it gives something true; returns it."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError(f"client exited {self.proc.returncode} waiting for {what}:\n"
                                     + self.errors())
            found = condition()
            if found:
                return found
            # the pause between polls of a wait for an event, bounded by its deadline
            select.select([], [], [], 0.02)
        raise AssertionError(f"timed out waiting for {what}:\n" + self.errors())

    def errors(self):
        with open(self.stderr_path, "rb") as err:
            return err.read().decode(errors="replace")

    # -- the widgets ------------------------------------------------------------------------

    def type_into(self, path, text):
        self.call(path, "delete", "0", "end")
        self.call(path, "insert", "0", text)

    def press_enter(self, path):
        self.press_key(path, "<Return>")

    def press_key(self, path, key):
        self.call("focus", "-force", path)
        self.call("event", "generate", path, key)

    def invoke(self, path):
        self.call(path, "invoke")

    def press(self, path):
        """Click a button once it takes clicks (a consent dialog's wait a moment)."""
        self.wait(lambda: self.call(path, "instate", "disabled") == "0", f"{path} to take a click")
        self.invoke(path)

    def text(self, path):
        """What a Text widget holds."""
        return self.call(path, "get", "1.0", "end")

    def label(self, path):
        return self.call(path, "cget", "-text")

    def list_items(self, path):
        return list(self.tk.splitlist(self._send(path, "get", "0", "end")))

    def select_item(self, path, item):
        items = self.list_items(path)
        self.call(path, "selection", "clear", "0", "end")
        self.call(path, "selection", "set", str(items.index(item)))
        self.call("event", "generate", path, "<<ListboxSelect>>")    # as a click tells it

    def settle(self):
        """Let the client draw everything pending (before a screenshot)."""
        self.call("update", "idletasks")

    def exists(self, path):
        return self.call("winfo", "exists", path) == "1"

    def place(self, x, y):
        self.call("wm", "geometry", ".", f"+{x}+{y}")

    def close_window(self):
        """What the window manager's close button does: run the WM_DELETE_WINDOW handler."""
        handler = self.call("wm", "protocol", ".", "WM_DELETE_WINDOW")
        try:
            self.call(handler)
        except Exception:       # the client may exit before `send` hears back
            pass

    def cpu_s(self):
        """User plus system CPU seconds the client has used."""
        with open(f"/proc/{self.proc.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def wait_exit(self, timeout_s=WAIT_S):
        try:
            return self.proc.wait(timeout_s)
        finally:
            self._err.close()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self._err.close()


def login(gui, name, password=None):
    """Log a GuiProcess in as `name` through its login form."""
    gui.type_into(".login.username", name)
    gui.type_into(".login.password", password or ACCOUNTS[name])
    gui.press_enter(".login.password")
    gui.wait(lambda: gui.exists(".chat") and gui.call("winfo", "ismapped", ".chat") == "1",
             f"{name} to be logged in")


def idle(gui, seconds):
    """Let the client sit with nothing to do, without talking to it."""
    try:
        gui.proc.wait(seconds)
    except subprocess.TimeoutExpired:
        return
    raise AssertionError("the client exited while idle:\n" + gui.errors())


def _one(names):
    return next(iter(names)) if len(names) == 1 else None


# -- screenshots --------------------------------------------------------------------------------

def screenshot(frame_buffer, png_path):
    """Xvfb's screen file (XWD format) -> a PNG file; returns (width, height)."""
    with open(frame_buffer, "rb") as fb:
        data = fb.read()
    width, height, rows = xwd_rows(data)
    with open(png_path, "wb") as out:
        out.write(png(width, height, rows))
    return width, height


def xwd_rows(data):
    """An XWD image of a 24-bit TrueColor screen -> (width, height, RGB rows as bytes)."""
    fields = struct.unpack(">25I", data[:XWD_HEADER_FIELDS * 4])
    header_size, depth, width, height = fields[0], fields[3], fields[4], fields[5]
    byte_order, bits_per_pixel, bytes_per_line = fields[7], fields[11], fields[12]
    ncolors = fields[19]
    if depth != 24 or bits_per_pixel != 32:
        raise ValueError(f"only 24-bit screens in 32-bit pixels, not {depth}/{bits_per_pixel}")
    start = header_size + ncolors * XWD_COLOR_BYTES
    # a pixel is 0x00RRGGBB; byte order 0 (LSBFirst) stores it as B, G, R, 0
    red, green, blue = (2, 1, 0) if byte_order == 0 else (1, 2, 3)
    rows = []
    for y in range(height):
        line = data[start + y * bytes_per_line: start + y * bytes_per_line + width * 4]
        rgb = bytearray(width * 3)
        rgb[0::3], rgb[1::3], rgb[2::3] = line[red::4], line[green::4], line[blue::4]
        rows.append(bytes(rgb))
    return width, height, rows


def png(width, height, rows):
    """RGB rows -> the bytes of a PNG file."""
    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)    # 8-bit RGB
    pixels = zlib.compress(b"".join(b"\x00" + row for row in rows), 6)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels)
            + chunk(b"IEND", b""))
