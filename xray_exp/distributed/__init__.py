"""Ray: the cluster connection (the one module that starts or joins Ray), Ray Train, Ray Tune."""
