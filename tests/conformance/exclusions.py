"""Tests that pass on the stdlib loop but cannot apply to a third-party loop.

Maps a test id as written by ``harness.py`` (``<module>.<Class>.<method>``,
e.g. ``test_tasks.CTask_CFuture_Tests.test_foo``) to the reason it is excluded.

Rules for adding an entry:

* only after running it against the real aloop and reading the failing test;
* only if the test checks a CPython implementation detail (a mocked
  ``BaseEventLoop``, private attributes of the stdlib loop, a patched
  ``asyncio.base_events`` global, ...) rather than observable asyncio behaviour;
* with a specific reason naming the internal detail.

Failures that are aloop bugs are never excluded: they are regressions.
"""

from __future__ import annotations

EXCLUSIONS: dict[str, str] = {}
