"""Training Full-Glow: options, the training loop, checkpoints, the run log and the presets."""
