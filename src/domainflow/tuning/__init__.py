"""Hyperparameter search with Optuna: studies, trials pruned from Lightning's validation metric."""
