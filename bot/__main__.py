"""`python -m bot` runs the lien CLI."""

import sys

from bot.main import main

sys.exit(main())
