"""Progress bar: carriage-return redraws on a terminal, plain lines in logs, nothing when quiet."""

import io

from jaxrl.runtime.progress import Progress, fmt_count, fmt_duration


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_formatting():
    assert fmt_count(524288) == "524k" and fmt_count(1_500_000) == "1.5M" and fmt_count(999) == "999"
    assert (
        fmt_duration(75) == "1:15" and fmt_duration(3725) == "1:02:05" and fmt_duration(float("inf")) == "?"
    )


def test_terminal_redraws_one_line():
    s = Tty()
    p = Progress(10, 1000, stream=s)
    p.start()
    p.update(5, 500, 12.5)
    p.update(10, 1000, 20.0)
    p.close()
    out = s.getvalue()
    assert out.count("\r") == 2 and out.endswith("\n") and out.count("\n") == 1
    assert "100%" in out and "steps 1k/1k" in out and "return    20.00" in out and "ETA" in out


def test_log_file_gets_plain_lines_at_most_every_interval():
    s = io.StringIO()
    p = Progress(100, stream=s, interval=3600)
    p.start()
    for i in range(1, 101):
        p.update(i, 10 * i, None)
    lines = s.getvalue().splitlines()
    assert "\r" not in s.getvalue()
    assert len(lines) == 2  # the first update, then the final one
    assert lines[-1].startswith("[" + "#" * 24 + "] 100%") and "return    -" in lines[-1]


def test_quiet_prints_nothing():
    s = Tty()
    p = Progress(10, stream=s, enabled=False)
    p.message("compiling")
    p.update(10, 100, 1.0)
    p.close()
    assert s.getvalue() == ""
