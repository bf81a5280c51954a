"""Project-wide pytest configuration.

Being a rootdir conftest, this file puts the repository root on ``sys.path`` so tests import
``staging`` and ``examples`` as packages. It also applies to ``pytest gates``: keep fixtures for
the plugin's own tests in tests/conftest.py, not here. The plugin under test is loaded through
its installed entry point (``pytest11: rollout``), exactly as users get it.
"""
