"""Measuring what fgaug makes: sample quality (likelihood, label consistency, diversity), its
reports, and ``augment``: whether synthetic data makes a segmenter better.
"""
