"""Retraining: when a domain is retrained, and on which window of newly labelled data."""
