"""``hydra/launcher=rap``: each job of a multirun becomes one DNAnexus job on UK Biobank's Research Analysis Platform
(discovered by Hydra through the ``hydra_plugins`` namespace package, as hydra-submitit-launcher is)."""
