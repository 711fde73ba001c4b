"""Reporters: pure renderers from findings (and the check catalog) to text."""
