"""Ghostline language server: local fill-in-the-middle completion over LSP."""
__version__ = "0.1.0"
