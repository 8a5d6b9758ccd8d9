"""Helpers of the integration suite: services, the store matrix, scenarios and fault tools.

``tests-integration/conftest.py`` puts this directory on ``sys.path`` so test modules import
``pinnacle_it`` (the directory name has a hyphen, so it is not a package itself).
"""
