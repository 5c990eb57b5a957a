"""Where examples come from. Every source yields the canonical example dict (see example.py)."""
