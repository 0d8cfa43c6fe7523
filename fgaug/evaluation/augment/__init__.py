"""The augmentation protocol (probes trained on real data alone and with synthetic data, paired
by seed), the registry of arms that make synthetic data (``strategies``), how an arm's data is
made (``synthesis``) from what its runner supplies (``supplies``), and ``fgaug evaluate
augment``'s study.
"""
