"""Presets and the bundled demo model of fgaug, installed as the package ``fgaug.bundled``."""
