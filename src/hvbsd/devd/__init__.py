"""hvbsd.devd."""
