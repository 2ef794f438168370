"""The timer queue: a binary heap of TimerHandles ordered by (when, seq).

Cancelled timers stay in the heap until they reach its head, as in asyncio,
but once they are both numerous and the majority the heap is rebuilt
without them, so a program that cancels most of its timeouts (the usual
case: ``wait_for`` and ``asyncio.timeout`` cancel on success) keeps a heap
the size of its live timers.
"""

from __future__ import annotations

import heapq
from typing import Final

from aloop._core.handles import Handle, TimerHandle

# Rebuild only when there are this many timers and more than this fraction is cancelled.
_MIN_TIMERS_TO_COMPACT: Final = 100
_CANCELLED_FRACTION_TO_COMPACT: Final = 0.5


class TimerQueue:
    """Heap of pending timers with lazy removal of cancelled ones."""

    def __init__(self) -> None:
        # The loop exposes this very list as ``loop._scheduled``, like asyncio.
        self.heap: list[TimerHandle] = []
        self.cancelled_count = 0
        self._seq = 0

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def push(self, timer: TimerHandle) -> None:
        timer._scheduled = True
        heapq.heappush(self.heap, timer)

    def cancelled_one(self) -> None:
        """Account for a scheduled timer that was just cancelled."""
        self.cancelled_count += 1

    def prune(self) -> None:
        """Drop cancelled timers: all of them if they dominate, else those at the head."""
        heap = self.heap
        count = len(heap)
        if (
            count > _MIN_TIMERS_TO_COMPACT
            and self.cancelled_count > count * _CANCELLED_FRACTION_TO_COMPACT
        ):
            live: list[TimerHandle] = []
            for timer in heap:
                if timer._cancelled:
                    timer._scheduled = False
                else:
                    live.append(timer)
            heapq.heapify(live)
            heap[:] = live
            self.cancelled_count = 0
            return
        while heap and heap[0]._cancelled:
            self.cancelled_count -= 1
            heapq.heappop(heap)._scheduled = False

    def first_when(self) -> float:
        """Deadline of the earliest timer; the heap must not be empty."""
        return self.heap[0]._when

    def pop_due(self, end: float, ready: list[Handle | None]) -> None:
        """Move every live timer due before ``end`` to the ready queue."""
        heap = self.heap
        while heap:
            timer = heap[0]
            if timer._when >= end:
                break
            heapq.heappop(heap)
            timer._scheduled = False
            if timer._cancelled:
                self.cancelled_count -= 1
            else:
                ready.append(timer)

    def clear(self) -> None:
        for timer in self.heap:
            timer._scheduled = False
        self.heap.clear()
        self.cancelled_count = 0
