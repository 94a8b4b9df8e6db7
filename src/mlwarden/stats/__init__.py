"""Statistics of data and predictions shared by the detectors and the monitor: mergeable
profiles and their sketches, reference profiles of a model's sample, and performance metrics
with their confidence intervals."""
