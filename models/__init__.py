"""Speech models (A-VAE, AV-VAEs), fusion modules, visual front-ends, training and the
unsupervised enhancement algorithms. Nothing here imports the harness (runner, report)."""
