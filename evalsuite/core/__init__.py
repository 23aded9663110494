"""Shared core: records and errors used by every stage."""
