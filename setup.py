"""Which packages the build installs; everything else about the project is in pyproject.toml.

Every package under src/ is found by setuptools' discovery, so a new one cannot be left out of
the wheel or the image. flows/ and tasks/ are top-level folders (prefect.yaml's entrypoints read
`flows/training.py:...`) installed as domainflow.flows and domainflow.tasks (package-dir in
pyproject.toml); pyproject's `packages` takes a list or a `find` directive, not both, hence this file.
"""

from setuptools import find_packages, setup

setup(packages=[*find_packages("src"), "domainflow.flows", "domainflow.tasks"])
