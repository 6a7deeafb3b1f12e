"""Smaller, faster variants of a trained network (INT8, ONNX) and the choice of the one to serve."""
