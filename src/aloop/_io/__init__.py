"""I/O backend: readiness polling and the loop's wakeup fd. Imports nothing from aloop."""
