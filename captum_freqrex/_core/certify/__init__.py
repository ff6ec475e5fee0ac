"""Ranking -> sets -> certificate: ranking, prefix extraction, shrink and the trust checks."""
