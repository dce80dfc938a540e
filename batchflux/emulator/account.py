"""The account's credit balance: charged at submit, refunded when a job FAILs (pure).

A job's failure time is known when it is submitted (see schedule.py), so a refund is booked then
and lands when the clock passes that time; failed jobs are never billed.
"""

from __future__ import annotations

import heapq


class Account:
    __slots__ = ("_balance", "_refunds")

    def __init__(self, credits: float) -> None:
        self._balance = credits
        self._refunds: list[tuple[float, float]] = []  # (due, amount)

    def balance(self, now: float) -> float:
        while self._refunds and self._refunds[0][0] <= now:
            _, amount = heapq.heappop(self._refunds)
            self._balance += amount
        return self._balance

    def can_pay(self, price: float, now: float) -> bool:
        return self.balance(now) >= price

    def charge(self, price: float) -> None:
        self._balance -= price

    def refund_at(self, due: float, amount: float) -> None:
        heapq.heappush(self._refunds, (due, amount))

    def reset(self, credits: float, now: float) -> None:
        """Set the balance; refunds still pending keep landing on top of it."""
        self.balance(now)
        self._balance = credits
