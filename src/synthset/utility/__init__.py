"""Downstream utility: train the reference classifier on real / synthetic / mixed data, test on real."""
