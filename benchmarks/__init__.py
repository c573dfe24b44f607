"""The side-by-side benchmark: the model alone, the service, and a naive server, in one run."""
