"""inbox-pipeline: email newsletters in, clean Kindle EPUBs out."""

__version__ = "0.1.0"
