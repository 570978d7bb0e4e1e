"""Pipelines as plain functions of a config: train, evaluate, generate."""
