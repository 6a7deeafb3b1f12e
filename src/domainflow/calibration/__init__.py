"""Calibration: a map from a model's scores to probabilities, fitted on labelled rows the model did not train on."""
