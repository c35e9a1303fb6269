"""Running on UK Biobank's Research Analysis Platform (DNAnexus): the ``dx`` client (the only way the package talks
to the platform), the job's side of a sweep (mirror the project, run the stage, upload what it wrote), and the
time and cost estimates the launcher prints. The launcher itself is the Hydra plugin ``hydra/launcher=rap``."""
