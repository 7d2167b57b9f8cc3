"""Unsupervised speech enhancement: VAE speech prior + NMF noise model + EM algorithms."""
