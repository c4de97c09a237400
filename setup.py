"""Build glue. The top-level ``core/`` and ``dissectors/`` folders are the project's shape; inside
``gbp_lab/`` the symbolic links ``core``, ``dissectors`` and ``notebooks`` point at them, so the
checkout itself is the package (``import gbp_lab.core`` works from the checkout root, with or without
an install, and type checkers resolve it). Wheels hold real files: setuptools follows the links.
Metadata lives in pyproject.toml."""
from setuptools import find_packages, setup

setup(packages=find_packages(include=["gbp_lab", "gbp_lab.*"]))
