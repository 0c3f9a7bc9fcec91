"""hvbsd.kvp: the KVP daemon ``hvbsd_kvpd`` (standard library only, Python >= 3.9).

Layers, each depending only on the ones before it: ``protocol`` (the
``hv_kvp_msg`` layout), ``simwire`` and ``channel`` (``/dev/hv_kvp_dev`` or a
simulator's socket), ``pool`` (the pool files), ``netinfo`` and ``rcconf``
(interfaces, addresses, hvbsd's managed rc.conf block), ``platform`` (the
commands and files they are read from), ``policy`` (one answer per
operation), ``daemon`` (options, status file, the poll loop). Shared with
hvbsd_vssd: ``hvbsd.vss.files``, ``hvbsd.vss.log``, ``hvbsd.vss.detach``.
"""
