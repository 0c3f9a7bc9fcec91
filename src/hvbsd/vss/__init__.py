"""hvbsd.vss."""
