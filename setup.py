"""Packages: everything under phi3v_data/ and phi3v_train/, plus the top-level ``converters/`` folder of dataset
specs, installed as ``phi3v_data.specs`` (pyproject.toml cannot map one folder to a subpackage while it finds
the others). The rest of the configuration is in pyproject.toml."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["phi3v_data*", "phi3v_train*"]), "phi3v_data.specs"],
    package_dir={"phi3v_data.specs": "converters"},
)
