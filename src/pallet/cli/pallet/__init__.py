"""`pallet`: the docker-like command line. Image verbs work on a local root for now."""
