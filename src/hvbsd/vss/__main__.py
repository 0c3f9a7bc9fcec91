"""``python3 -m hvbsd.vss``: run the daemon."""

from __future__ import annotations

import sys

# before anything else is imported: a .pyc write could land on a frozen filesystem
sys.dont_write_bytecode = True

from hvbsd.vss.daemon import main  # noqa: E402

raise SystemExit(main())
