"""The progress bar: the time left from the rate so far (on a fake clock), redrawn in place
on a terminal and never wider than it, one line left when the work ends or stops, and
nothing at all in logs or with --quiet."""

from __future__ import annotations

import io

import pytest

from otmetka.daemon.core import progress
from otmetka.daemon.core.progress import Reporter


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def at(self, seconds: float) -> None:
        """`seconds` after the bar started."""
        self.now = 1000.0 + seconds


def _frames(stream: io.StringIO) -> list[str]:
    return [frame.rstrip() for frame in stream.getvalue().split("\r")[1:]]


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "120")


def test_the_time_left_comes_from_the_rate_so_far() -> None:
    assert progress.time_left(0, 500, 0.0) == "estimating time left"
    assert progress.time_left(0, 500, 30.0) == "estimating time left"
    assert progress.time_left(100, 500, 20.0) == "1:20 left"  # 5 a second, 400 to go
    assert progress.time_left(1, 3, 60.0) == "2:00 left"
    assert progress.time_left(10, 4764, 30.0) == "3:57:42 left"
    assert progress.time_left(499, 500, 99.8) == "0:01 left"  # never "0:00" while running
    assert progress.time_left(500, 500, 100.0) == "done"


def test_a_duration_reads_like_a_clock() -> None:
    assert [progress.clock_text(s) for s in (0, 7, 59.2, 171, 3600, 3771)] == [
        "0:00",
        "0:07",
        "1:00",
        "2:51",
        "1:00:00",
        "1:02:51",
    ]


def test_a_terminal_sees_the_bar_with_the_time_left_then_one_line() -> None:
    clock, stream = FakeClock(), Terminal()
    reporter = Reporter(stream=stream, clock=clock)
    with reporter.bar("deriving page keys", 500) as advance:
        assert _frames(stream)[-1].endswith("0/500   0%  estimating time left")
        clock.at(20)
        advance(100)
        assert _frames(stream)[-1] == (
            "deriving page keys [#####-------------------] 100/500  20%  1:20 left"
        )
        clock.at(50)
        advance(150)
        assert _frames(stream)[-1].endswith("250/500  50%  0:50 left")
        clock.at(100)
        advance(250)
        assert _frames(stream)[-1].endswith("[########################] 500/500 100%  done")
        clock.at(101)
    output = stream.getvalue()
    assert output.count("\n") == 1 and output.endswith("\n")
    assert _frames(stream)[-1] == "deriving page keys: 500 in 1:41"
    last_bar, end = output.split("\r")[-2:]
    assert len(end.rstrip("\n")) >= len(last_bar)  # the end line covers the whole bar


def test_a_fast_loop_is_not_redrawn_on_every_step() -> None:
    clock, stream = FakeClock(), Terminal()
    with Reporter(stream=stream, clock=clock).bar("import", 100) as advance:
        for _ in range(50):
            advance(1)
        assert len(_frames(stream)) == 1  # the first frame only: no time has passed
        clock.at(2 * progress.REDRAW_S)
        advance(1)
        assert len(_frames(stream)) == 2 and "51/100" in _frames(stream)[-1]


def test_work_that_fails_leaves_where_it_stopped() -> None:
    clock, stream = FakeClock(), Terminal()
    bar = Reporter(stream=stream, clock=clock).bar("build", 10)
    with pytest.raises(RuntimeError, match="disk full"), bar as advance:
        clock.at(5)
        advance(3)
        raise RuntimeError("disk full")
    assert _frames(stream)[-1] == "build: stopped at 3 of 10 after 0:05"
    assert stream.getvalue().count("\n") == 1


def test_the_bar_never_wraps_on_a_narrow_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "40")
    clock, stream = FakeClock(), Terminal()
    with Reporter(stream=stream, clock=clock).bar("copy to a rather long target", 4764) as advance:
        clock.at(30)
        advance(10)
    assert all(len(frame) <= 39 for frame in stream.getvalue().rstrip("\n").split("\r"))


def test_nothing_is_drawn_in_a_log_or_with_quiet() -> None:
    log, quiet_terminal = io.StringIO(), Terminal()
    for reporter in (Reporter(stream=log), Reporter(quiet=True, stream=quiet_terminal)):
        assert not reporter.interactive
        with reporter.bar("deriving page keys", 3) as advance:
            advance(3)
    assert log.getvalue() == quiet_terminal.getvalue() == ""


def test_an_empty_job_still_ends_with_one_line() -> None:
    stream = Terminal()
    with Reporter(stream=stream, clock=FakeClock()).bar("build", 0):
        pass
    assert _frames(stream)[-1] == "build: 0 in 0:00" and stream.getvalue().count("\n") == 1
