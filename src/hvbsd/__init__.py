"""hvbsd: FreeBSD guests on Hyper-V and Azure."""

__version__ = "0.1.0"
