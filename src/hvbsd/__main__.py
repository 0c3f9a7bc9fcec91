from hvbsd.cli import main

raise SystemExit(main())
