"""Analyses of a finished run folder that run models again (not stages of the pipeline: they
read the run's checkpoints and mixtures and write under ``<run>/analysis/``, never changing its
results); the report shows what they wrote."""
