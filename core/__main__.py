"""``python -m core``: configure the process for computing, then run the command line."""

from core.settings import configure_process

configure_process()

import sys  # noqa: E402

from core.cli import main  # noqa: E402

sys.exit(main())
