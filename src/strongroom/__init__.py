"""Strongroom: a self-hosted secrets and configuration manager."""

from __future__ import annotations

__version__ = "0.1.0"
