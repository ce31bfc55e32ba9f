"""Helpers for testing code built on Strongroom, such as the storage conformance suite.

Nothing here is imported by Strongroom itself; these modules may need pytest.
"""
