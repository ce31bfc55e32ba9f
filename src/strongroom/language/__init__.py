"""The environment language: paths now; parse, evaluate and project as it grows."""
