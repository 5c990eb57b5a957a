"""Pure label-space math (no networks): ellipses, mixed labels, conditional spaces, triplets."""
