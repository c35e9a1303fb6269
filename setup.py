"""Packaging beyond pyproject.toml: the top-level conf/ ships inside the package as ``ukbb_pipeline/conf``.

The repository keeps ``conf/`` at its top level (``python main.py`` composes from it); a built wheel maps the same
folder to ``ukbb_pipeline/conf``, where the installed ``ukbb-pipeline`` command finds it. There is one copy in the
repository, so the two cannot drift (tests/test_installed.py compares an installed copy with the checkout's).
The platform launcher ships the same way: ``hydra_plugins/ukbb_rap_launcher`` (found by Hydra as
hydra-submitit-launcher is) and the applet's folder ``launchers/rap/ukbb-pipeline`` as ``ukbb_pipeline/rap/applet``.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["ukbb_pipeline", "ukbb_pipeline.*"]), "ukbb_pipeline.conf",
              "ukbb_pipeline.rap.applet", "hydra_plugins.ukbb_rap_launcher"],  # hydra_plugins: a namespace package
    package_dir={"ukbb_pipeline.conf": "conf", "ukbb_pipeline.rap.applet": "launchers/rap/ukbb-pipeline"},
    package_data={"ukbb_pipeline": ["py.typed"], "ukbb_pipeline.conf": ["*.yaml", "**/*.yaml"],
                  "ukbb_pipeline.rap.applet": ["dxapp.json", "src/*.sh"]},
    exclude_package_data={"ukbb_pipeline.conf": ["local/*"]},  # conf/local/ is this machine's, never shipped
)
