"""Core scheduler: handles, timers, fd table, instrument hooks and the run loop."""
