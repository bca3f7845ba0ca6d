"""The Dagster shell: resources, the inbox sensor, the per-email job, asset specs and checks.

Modules here import only Dagster and our light modules at load time; the core
(lxml, ebooklib, Pillow), boto3 and SQLAlchemy are imported inside ops,
sensors and resource methods, so the code location loads fast.
"""
