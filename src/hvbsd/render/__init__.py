"""hvbsd.render."""
