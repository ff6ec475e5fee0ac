"""Verdicts -> responsibility: the search protocol and the built-in searches."""
