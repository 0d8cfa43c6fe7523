"""The augmentation protocol (probes trained on real data alone and with synthetic data, paired
by seed), the strategies that make synthetic data, and ``fgaug evaluate augment``'s study.
"""
