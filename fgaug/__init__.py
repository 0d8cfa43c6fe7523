"""fgaug: grow a Cityscapes-format dataset with Full-Glow, a fully conditional Glow."""

from fgaug.threads import bound_openmp_spinning

bound_openmp_spinning()

__version__ = "0.1.0"
