"""Adversarial losses (GANs, density-ratio discriminators)."""
__all__ = []
