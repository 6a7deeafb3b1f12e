"""A run's candidates once trained: scored on the validation and test rows, and gated against the champion."""
