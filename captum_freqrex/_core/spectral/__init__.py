"""Waveform -> spectrum -> mutants: feature domains, band masks, the feature space and its synthesis."""
