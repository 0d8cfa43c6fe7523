"""Model presets (JSON)."""
