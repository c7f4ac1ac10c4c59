import sys

from defection_warehouse.cli import main

sys.exit(main())
