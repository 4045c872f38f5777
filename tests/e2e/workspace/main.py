"""Small helpers for the Ghostline end-to-end test."""


def add(a, b):
    """Return the sum of a and b."""
    return a + b


def is_even(n):
    """Return True when n is even."""
