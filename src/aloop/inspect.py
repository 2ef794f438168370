"""See every task of an aloop loop: state, parent, children, what it awaits, where.

tracker = aloop.inspect.track(loop)        # before the tasks of interest start
rows = aloop.inspect.snapshot(loop)        # list of TaskInfo
print(aloop.inspect.format_tree(rows))
aloop.inspect.untrack(loop)                # hooks off again
"""

from aloop._core.taskinfo import task_outcome
from aloop.tooling.tasks import (
    TaskInfo,
    TaskRecord,
    TaskTracker,
    format_tree,
    snapshot,
    track,
    untrack,
)

__all__ = [
    "TaskInfo",
    "TaskRecord",
    "TaskTracker",
    "format_tree",
    "snapshot",
    "task_outcome",
    "track",
    "untrack",
]
