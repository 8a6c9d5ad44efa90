"""A dependency-free progress bar: env steps, steps/s, recent return, ETA.

On a terminal it redraws one line with ``\\r``; otherwise (a log file, CI) it prints a plain line at
most every ``interval`` seconds, so logs stay readable. ``enabled=False`` is quiet mode.
"""

from __future__ import annotations

import math
import sys
import time
from typing import TextIO


def fmt_duration(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def fmt_count(x: float) -> str:
    """``1234567 -> '1.23M'``, ``52000 -> '52.0k'``."""
    x = float(x)
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= div:
            return f"{x / div:.3g}{unit}" if abs(x) / div < 100 else f"{x / div:.0f}{unit}"
    return f"{x:.0f}"


class Progress:
    """``update(iteration, env_steps, recent_return)`` after every chunk; ``close()`` at the end."""

    def __init__(
        self,
        total_iterations: int,
        total_env_steps: int | None = None,
        *,
        enabled: bool = True,
        stream: TextIO | None = None,
        width: int = 24,
        interval: float = 10.0,
        start_iteration: int = 0,
        value_name: str = "return",
    ):
        self.total = max(1, int(total_iterations))
        self.total_steps = total_env_steps
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.width = width
        self.interval = interval
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._t0: float | None = None
        self._it0 = start_iteration
        self._steps0: float | None = None
        self._last_print = -math.inf
        self._drawn = False
        self.value_name = value_name

    def message(self, text: str) -> None:
        """A line of its own (e.g. "compiling..."), not overwritten by the bar."""
        if not self.enabled:
            return
        if self._drawn and self.tty:
            self.stream.write("\n")
            self._drawn = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def start(self, env_steps: float = 0.0, *, iteration: int | None = None) -> None:
        """Start the clock (after compilation, so rates and ETA describe training); ``iteration``: the
        iterations already done, when restarting it after a first chunk that compiled."""
        self._t0 = time.perf_counter()
        self._steps0 = env_steps
        if iteration is not None:
            self._it0 = iteration

    def line(self, iteration: int, env_steps: float, recent_return: float | None) -> str:
        if self._t0 is None:
            self.start()
        elapsed = time.perf_counter() - (self._t0 or 0.0)
        frac = min(1.0, iteration / self.total)
        done_here = iteration - self._it0
        rate_it = done_here / elapsed if elapsed > 0 else 0.0
        eta = (self.total - iteration) / rate_it if rate_it > 0 and done_here > 0 else math.inf
        sps = (env_steps - (self._steps0 or 0.0)) / elapsed if elapsed > 0 else 0.0
        filled = int(round(frac * self.width))
        bar = "#" * filled + "." * (self.width - filled)
        steps = fmt_count(env_steps) + (f"/{fmt_count(self.total_steps)}" if self.total_steps else "")
        ret = "   -" if recent_return is None or not math.isfinite(recent_return) else f"{recent_return:8.2f}"
        return (
            f"[{bar}] {100 * frac:3.0f}%  steps {steps}  {fmt_count(sps)}/s  {self.value_name} {ret}  "
            f"elapsed {fmt_duration(elapsed)}  ETA {fmt_duration(eta)}"
        )

    def update(
        self, iteration: int, env_steps: float, recent_return: float | None = None, *, force: bool = False
    ) -> None:
        if not self.enabled:
            return
        text = self.line(iteration, env_steps, recent_return)
        now = time.perf_counter()
        if self.tty:
            self.stream.write("\r" + text + "\033[K")
            self._drawn = True
        elif force or now - self._last_print >= self.interval or iteration >= self.total:
            self.stream.write(text + "\n")
            self._last_print = now
        else:
            return
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self._drawn and self.tty:
            self.stream.write("\n")
            self.stream.flush()
        self._drawn = False
