import sys

from liverec.cli import main

sys.exit(main())
