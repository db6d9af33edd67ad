"""Files composekit ships into containers as they are (no composekit import inside them)."""
