"""The reliability and security suite: fault matrix, hostile inputs, PHI and secret scan.

``make reliability`` (``python -m tests.reliability``) runs all three and prints their tables;
``tests/reliability/test_*.py`` run the same scenarios under pytest.
"""
