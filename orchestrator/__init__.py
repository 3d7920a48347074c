"""osless: source code to verified static Linux binaries and FROM-scratch images, for every architecture."""

__version__ = "0.1.0"
