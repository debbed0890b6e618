"""Measuring Vignette: metrics, scripted conversations, FairytaleQA, benchmarks."""
