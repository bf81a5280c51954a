"""Project-wide pytest configuration.

Being a rootdir conftest, this file puts the repository root on ``sys.path`` so tests import
``staging`` and ``examples`` as packages. The plugin under test is loaded through its installed
entry point (``pytest11: rollout``), exactly as users get it.
"""
