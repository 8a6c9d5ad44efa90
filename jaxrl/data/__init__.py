"""Datasets for training from data rather than environments (preference pairs, ...)."""
