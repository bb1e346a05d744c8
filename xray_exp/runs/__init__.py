"""One run lifecycle (set up -> fit -> post-training -> finish) for every engine."""
