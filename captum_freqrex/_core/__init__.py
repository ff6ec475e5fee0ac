"""The FreqReX algorithm: domains, the mask mechanism, search, extraction and the attribution."""
