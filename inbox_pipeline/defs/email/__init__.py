"""The per-email job: ops from parse to delivery, the asset specs they report, the EPUB check."""
