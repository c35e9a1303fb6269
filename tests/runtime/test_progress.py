"""Progress in logs: a line every so often when the output is not a terminal; log lines above the bar in one."""

from __future__ import annotations

import io
import logging

from ukbb_pipeline.runtime.progress import Progress, progress, progress_line


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_line_says_done_failed_rate_and_time_left():
    assert progress_line("unzip_mri", done=1200, failed=3, total=100000, elapsed=300) == (
        "unzip_mri: 1200/100000 done (3 failed), 4 inputs/s, about 6 h 51 min left")
    assert progress_line("unzip_mri", done=2, failed=0, total=4, elapsed=10) == (
        "unzip_mri: 2/4 done, 5 s/input, about 10 s left")
    assert progress_line("x", done=0, failed=0, total=4, elapsed=1) == "x: 0/4 done"


def test_not_a_terminal_logs_every_interval_and_every_step(caplog):
    clock = Clock()
    logger = logging.getLogger("test-progress")
    with caplog.at_level(logging.INFO, logger="test-progress"), \
            Progress(1000, name="unzip_dxa", stream=io.StringIO(), clock=clock, logger=logger) as counter:
        assert not counter.terminal
        for _ in range(10):  # 1 % done in 9 s: nothing yet
            clock.now += 0.9
            counter.update()
        assert caplog.messages == []
        for _ in range(40):  # 5 % done, 36 s in: the interval has passed
            clock.now += 0.9
            counter.update(failed=True)
        assert len(caplog.messages) == 1
        assert caplog.messages[0].startswith("unzip_dxa: 34/1000 done (24 failed)")
        for _ in range(100):  # fast now: another 5 % after min_gap_s logs again before the interval
            clock.now += 0.06
            counter.update()
        assert len(caplog.messages) == 2 and "/1000 done" in caplog.messages[1]


def test_a_terminal_shows_a_bar_and_log_lines_go_above_it():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    handler = logging.StreamHandler(screen)  # stands for the console handler Hydra puts on the root logger
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        import sys

        saved, sys.stderr = sys.stderr, screen  # logging_redirect_tqdm replaces handlers on stdout/stderr
        handler.setStream(sys.stderr)
        with progress(3, name="unzip_mri", stream=screen) as counter:
            assert counter.terminal
            counter.update()
            logging.getLogger("ukbb_pipeline.test").warning("a log line")
            counter.update()
    finally:
        sys.stderr = saved
        root.removeHandler(handler)
    text = screen.getvalue()
    assert "unzip_mri" in text and "2/3" in text
    assert "\na log line\n" in text.replace("\r", "\n"), "the line is on its own line, not glued onto the bar"
