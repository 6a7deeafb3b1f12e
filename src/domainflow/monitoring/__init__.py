"""Monitoring of served models: drift against the training data, live quality, forecasts and health."""
