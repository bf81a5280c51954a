import sys

from pytest_rollout.cli import main

sys.exit(main())
