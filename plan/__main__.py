"""``python -m plan --stack home``: the offline plan (see :mod:`plan.report`)."""

import sys

from plan.report import main

sys.exit(main())
