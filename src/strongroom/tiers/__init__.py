"""Tiers: where values are pushed (Kubernetes Secrets, GitHub Actions secrets).

Each tier plans first (what would change, never values) and then applies; a tier
never calls back into the service: the service opens the environment and hands the
tier the projected values.
"""
