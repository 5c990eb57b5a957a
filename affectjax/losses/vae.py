"""Variational losses: KL divergences, likelihoods."""
__all__ = []
