"""fgaug: grow a Cityscapes-format dataset with Full-Glow, a fully conditional Glow."""

__version__ = "0.1.0"
