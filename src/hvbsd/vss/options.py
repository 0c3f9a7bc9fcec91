"""Option types shared by hvbsd_vssd and the simulator's host commands."""

from __future__ import annotations

import argparse
from typing import Callable


def seconds_up_to(maximum: int) -> Callable[[str], float]:
    """An argparse type: a number of seconds, more than 0 and at most `maximum`."""

    def seconds(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
        if not 0 < value <= maximum:
            raise argparse.ArgumentTypeError(
                f"{text!r} must be more than 0 and at most {maximum}")
        return value

    return seconds
