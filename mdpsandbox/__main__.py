"""``python -m mdpsandbox`` = the ``mdpsandbox`` command."""
import sys

from .cli import main

sys.exit(main())
