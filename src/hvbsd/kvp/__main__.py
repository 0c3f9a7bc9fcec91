"""``python3 -m hvbsd.kvp``: run the daemon."""

from __future__ import annotations

import sys

sys.dont_write_bytecode = True

from hvbsd.kvp.daemon import main  # noqa: E402

raise SystemExit(main())
