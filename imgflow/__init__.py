"""imgflow: download large sets of images from the web into storage you own."""

__version__ = "0.1.0"
