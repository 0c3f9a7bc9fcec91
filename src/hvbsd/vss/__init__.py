"""hvbsd.vss: the VSS daemon ``hvbsd_vssd`` (standard library only, Python >= 3.9).

Layers, each depending only on the ones before it: ``protocol`` (the 64-byte
message, ioctl numbers), ``channel`` (device or simulator socket),
``platform`` (mount table and UFS suspension; ``mounts`` and ``simwire`` are
its data and wire format), ``policy`` (CHECK / FREEZE / THAW), ``hooks``
(application quiesce), ``daemon`` (options, state, the poll loop).
"""
