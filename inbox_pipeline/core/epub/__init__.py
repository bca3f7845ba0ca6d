"""EPUB 3 books for Kindle: one chapter per newsletter, a generated cover, nav + NCX.

``book`` holds the model, ``chapter`` the chapter documents, ``writer`` the EPUB
bytes; chapter bodies are sanitised by ``core.xhtml``.
"""

from inbox_pipeline.core.epub.book import Book, Chapter, format_date, identifier_for
from inbox_pipeline.core.epub.chapter import chapter_xhtml
from inbox_pipeline.core.epub.writer import build_epub
from inbox_pipeline.core.language import language_tag

__all__ = ["Book", "Chapter", "build_epub", "chapter_xhtml", "format_date", "identifier_for", "language_tag"]
