import sys

from execbench.cli import main

sys.exit(main())
