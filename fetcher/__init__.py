"""Model fetcher: the init container that puts a model service's files in place at pod start."""
