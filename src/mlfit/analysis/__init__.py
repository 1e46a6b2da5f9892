"""Static facts about a model (no runtime), host calibration and projection."""
