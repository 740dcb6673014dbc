import sys

from dreamvid.cli import main

sys.exit(main())
