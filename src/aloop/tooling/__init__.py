"""Observability built on the scheduler's instrument hooks (interpreted, never compiled)."""
