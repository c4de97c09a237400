"""Build glue: map the top-level ``core/`` and ``dissectors/`` folders into the ``gbp_lab``
namespace (``gbp_lab.core``, ``gbp_lab.dissectors``) for wheel and editable installs alike.
Metadata lives in pyproject.toml."""
from setuptools import find_packages, setup

ROOTS = {"gbp_lab": "gbp_lab", "gbp_lab.core": "core", "gbp_lab.dissectors": "dissectors"}


def _packages():
    out = []
    for name, folder in ROOTS.items():
        out.append(name)
        out += [f"{name}.{sub}" for sub in find_packages(folder)]
    return out


setup(packages=_packages(), package_dir=ROOTS)
