"""The dashboard's pages, one module each; every module has its own ``router``."""
