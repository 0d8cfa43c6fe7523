"""fgaug: grow a Cityscapes-format dataset with Full-Glow, a fully conditional Glow.

The package's folders are its layers, each importing only from those below it:
``flow`` (the model, standing alone), the small runtime helpers at the top level, ``data``
(Cityscapes trees, images, layouts), ``segmentation`` (the probe segmenter) and ``training`` (the
flow's), ``generate``, ``evaluation``, then :mod:`fgaug.api` and ``cli``.
"""

from fgaug import moved
from fgaug.threads import bound_openmp_spinning

bound_openmp_spinning()
moved.install()

__version__ = "0.1.0"
