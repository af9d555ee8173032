"""The intake's moving-window rate limits (a clock the test moves)."""

from __future__ import annotations

from services.intake.adapters.protection import MovingWindow


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_a_client_gets_the_limit_within_a_window_and_no_more() -> None:
    clock = Clock()
    window = MovingWindow(3, 60, clock=clock)
    assert [window.hit("198.51.100.1") for _ in range(4)] == [True, True, True, False]
    clock.now += 59.9
    assert not window.hit("198.51.100.1")
    assert window.hit("198.51.100.2")  # other clients have their own window


def test_hits_leave_the_window_one_by_one() -> None:
    clock = Clock()
    window = MovingWindow(2, 60, clock=clock)
    assert window.hit("a")
    clock.now += 30
    assert window.hit("a")
    clock.now += 30  # the first hit is 60 s old now: out of the window
    assert window.hit("a")
    assert not window.hit("a")
    clock.now += 29.9  # the second is still in it
    assert not window.hit("a")
    clock.now += 0.1
    assert window.hit("a")


def test_a_refused_hit_is_not_counted() -> None:
    clock = Clock()
    window = MovingWindow(1, 10, clock=clock)
    assert window.hit("a")
    for _ in range(5):
        clock.now += 1
        assert not window.hit("a")
    clock.now += 5  # 10 s after the only counted hit
    assert window.hit("a")


def test_test_tells_without_counting() -> None:
    clock = Clock()
    window = MovingWindow(2, 60, clock=clock)
    assert window.test("a") and window.test("a")
    window.hit("a")
    assert window.test("a")
    window.hit("a")
    assert not window.test("a")
    clock.now += 60
    assert window.test("a")


def test_clients_that_went_away_are_forgotten() -> None:
    clock = Clock()
    window = MovingWindow(5, 60, clock=clock)
    for n in range(1_000):
        window.hit(f"10.0.{n // 256}.{n % 256}")
    clock.now += 61
    window.hit("a")  # the first hit a window after the others sweeps them out
    assert len(window._hits) == 1
