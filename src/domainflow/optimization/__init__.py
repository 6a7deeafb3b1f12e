"""Smaller, faster variants of a trained network (INT8, ONNX) and the choice of the one to serve."""

from domainflow.optimization.optimize import optimize_for_serving, optimize_network, save_variant
from domainflow.optimization.report import OptimizationResult, VariantReport, select_variant

__all__ = [
    "OptimizationResult",
    "VariantReport",
    "optimize_for_serving",
    "optimize_network",
    "save_variant",
    "select_variant",
]
