import sys

from inbox_pipeline.cli import main

sys.exit(main())
