"""hvbsd.sim."""
