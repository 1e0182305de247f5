"""Capped exponential backoff with full jitter, so a returning fleet does not reconnect in step."""

import random
from dataclasses import dataclass


@dataclass(slots=True)
class Backoff:
    initial: float = 0.5
    cap: float = 30.0
    attempts: int = 0

    def next_delay(self) -> float:
        """Seconds to wait before the next attempt.

        >>> b = Backoff(initial=1, cap=4)
        >>> all(0 <= b.next_delay() <= 4 for _ in range(10))
        True
        """
        ceiling = min(self.cap, self.initial * 2**self.attempts)
        self.attempts = min(self.attempts + 1, 32)
        return random.uniform(0, ceiling)  # noqa: S311 - jitter, not a secret

    def reset(self) -> None:
        self.attempts = 0
