import sys

from verigrad.checks.cli import main

sys.exit(main())
