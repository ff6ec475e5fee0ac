"""Mutants -> model -> verdicts: the one caller of the model, decisions and targets."""
