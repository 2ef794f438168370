"""The timer queue: a binary heap of TimerHandles ordered by (when, seq).

Cancelled timers stay in the heap until they reach its head, as in asyncio,
but once they are both numerous and the majority the heap is rebuilt
without them, so a program that cancels most of its timeouts (the usual
case: ``wait_for`` and ``asyncio.timeout`` cancel on success) keeps a heap
the size of its live timers.

Push and pop are written here rather than taken from ``heapq``: heapq
compares through ``TimerHandle.__lt__`` (a rich comparison call per step),
where compiled code here reads the two C fields. The heap has heapq's shape,
so ``heapq`` functions applied to ``loop._scheduled`` keep working.
"""

from __future__ import annotations

import heapq
from typing import Final

from mypy_extensions import i64

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
        heap = self.heap
        heap.append(timer)
        _sift_toward_root(heap, len(heap) - 1)

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
            _pop_first(heap)._scheduled = False

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
            _pop_first(heap)
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


def _sift_toward_root(heap: list[TimerHandle], pos: i64) -> None:
    """Move ``heap[pos]`` up past every parent due after it (heapq's _siftdown)."""
    timer = heap[pos]
    when = timer._when
    seq = timer._seq
    while pos > 0:
        parent_pos = (pos - 1) >> 1
        parent = heap[parent_pos]
        if when < parent._when or (when == parent._when and seq < parent._seq):
            heap[pos] = parent
            pos = parent_pos
        else:
            break
    heap[pos] = timer


def _pop_first(heap: list[TimerHandle]) -> TimerHandle:
    """Remove and return the earliest timer (heapq.heappop); the heap must not be empty.

    As heapq does: the hole left at the root moves down along the earlier
    child to a leaf, the last timer fills it and moves back up, which takes
    fewer comparisons than sifting the last timer down from the root.
    """
    last = heap.pop()
    size: i64 = len(heap)
    if size == 0:
        return last
    first = heap[0]
    pos: i64 = 0
    child: i64 = 1
    while child < size:
        earlier = heap[child]
        if child + 1 < size:
            other = heap[child + 1]
            # The heap order written out again, as in _sift_toward_root: a helper
            # function for it cost ~160 instructions per timer (a call per step).
            if other._when < earlier._when or (
                other._when == earlier._when and other._seq < earlier._seq
            ):
                earlier = other
                child += 1
        heap[pos] = earlier
        pos = child
        child = 2 * pos + 1
    heap[pos] = last
    _sift_toward_root(heap, pos)
    return first
