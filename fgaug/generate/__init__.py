"""Generating photos for masks: the engine behind ``fgaug generate``, the seeded draws,
allocation of samples to masks, content transfer, ignore maps and latent walks.
"""
