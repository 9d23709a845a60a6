"""Suite-wide settings. Hypothesis runs without its per-example deadline: on a loaded 2-core CI
machine a slow example is noise, not a failure; what the properties assert is unchanged."""

from hypothesis import settings

settings.register_profile("gse", deadline=None)
settings.load_profile("gse")
