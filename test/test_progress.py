"""Progress bars in log files: whole lines, throttled."""

from __future__ import annotations

import io

from slimseg_ros.progress import progress_bar


def test_off_a_terminal_the_bar_writes_few_whole_lines() -> None:
    log = io.StringIO()
    for _ in progress_bar(range(5000), total=5000, desc="replay", file=log):
        pass
    text = log.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert 1 <= len(lines) <= 3  # not one redraw per item
    assert lines[-1].startswith("replay: 100%") and "5000/5000" in lines[-1]


def test_on_a_terminal_tqdm_redraws_in_place() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    bar = progress_bar(total=3, desc="eval", file=screen, mininterval=0)
    for _ in range(3):
        bar.update()
    bar.close()
    assert "\r" in screen.getvalue()


def test_a_postfix_set_every_step_does_not_redraw_every_step() -> None:
    log = io.StringIO()
    bar = progress_bar(total=300, desc="train", file=log)
    for step in range(300):  # what the training loop does per step
        bar.set_postfix(loss=f"{1 / (step + 1):.3f}", refresh=False)
        bar.update(1)
    bar.close()
    lines = log.getvalue().splitlines()
    assert 1 <= len(lines) <= 3 and "300/300" in lines[-1] and "loss=" in lines[-1]
