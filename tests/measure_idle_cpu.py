"""Measure the CPU a logged-in GUI client uses while idle: python3 tests/measure_idle_cpu.py [S]

Starts Xvfb, a server and one `client.py --gui`, logs in through the window, then leaves it alone
for S seconds (default 60) and prints the client's user+system CPU time from /proc. Heartbeats
(one per 30 s) still run, as they would for a real user.
"""
import os
import sys
import tempfile
import tkinter
from pathlib import Path

# the test helpers, and the modules they import from the project's root
sys.path[:0] = [os.path.dirname(os.path.abspath(__file__)),
                os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]

from guiprocs import GuiProcess, VirtualDisplay, idle, login   # noqa: E402
from realprocs import ServerProcess                # noqa: E402


def main(seconds):
    with tempfile.TemporaryDirectory() as tmp:
        display = VirtualDisplay(tmp)
        server = ServerProcess(Path(tmp))
        tk = tkinter.Tk(screenName=display.name)
        tk.withdraw()
        gui = GuiProcess(tk, display, server.port, Path(tmp) / "gui.err")
        try:
            login(gui, "columbia")
            before = gui.cpu_s()
            idle(gui, seconds)
            used = gui.cpu_s() - before
            print(f"idle {seconds:g} s, logged in: {used:.3f} s CPU "
                  f"({100 * used / seconds:.3f}% of one core)")
            gui.close_window()
            gui.wait_exit()
        finally:
            gui.kill()
            tk.destroy()
            server.stop()
            display.stop()


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 60.0)
