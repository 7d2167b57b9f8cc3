"""Test conditions: exact-SNR mixing, visual corruptions, and the condition grid (pure, seeded)."""
