"""The pure core: parsing, classifying, cleaning, images and EPUB building.

Nothing in this package imports Dagster or touches a database; every function
is a plain transformation over the small typed values in ``message.py``.
"""
