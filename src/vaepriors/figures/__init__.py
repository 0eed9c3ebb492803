"""Figure builders and the two studies of the figures stage (workflow/rules/figures.smk).

One module per figure family, each with plain-data builders (arrays / DataFrames in, PNG + PDF
out) so that tests can drive them with fake inputs:

| module | figures |
|---|---|
| ``style`` | the shared look: Agg backend, grayscale-safe palette, marker and dash per model |
| ``results`` | 1 test log-likelihood vs d; 2 clustering accuracy / NMI / ARI vs d |
| ``latents`` | 3 latent maps at d = 2 (Hammer equal-area map for the S-VAE's S^2) |
| ``images`` | 4 prior samples and test reconstructions |
| ``curves`` | 5 training curves |
| ``frechet`` | 6 sample quality: Fréchet distance in the features of a trained MLP classifier |
| ``density`` | 7 AE ex-post density study (GMM and KDE against the number of codes) |
| ``weights`` | 8 weight distributions (Normal / Laplace / Student-t, held-out fits) |
| ``summary`` | results/summary.md with generated paragraphs |
| ``targets`` | file names of the stage, used by the Snakefile |
"""
