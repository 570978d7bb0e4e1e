"""Human review: people judge realism (HYPE) and curate a synthetic dataset; verdicts in review.sqlite."""
