"""hvbsd.lab."""
