"""Images for the EPUB: embed cid:/data: images, fetch remote ones safely, convert for Kindle.

    from inbox_pipeline.core.images import ImagePolicy, process_images, EpubImage
"""

from inbox_pipeline.core.images.cache import clear_memory_cache
from inbox_pipeline.core.images.convert import ConvertedImage, ImageRejected, convert_image
from inbox_pipeline.core.images.fetch import FetchedImage, FetchFailure, HttpImageFetcher, ImageFetcher
from inbox_pipeline.core.images.policy import ImagePolicy
from inbox_pipeline.core.images.process import EpubImage, ImagesResult, process_images
from inbox_pipeline.core.images.ssrf import AddressRefused, forbidden_reason, resolve_checked
from inbox_pipeline.core.images.trackers import is_tracker_url

__all__ = [
    "AddressRefused",
    "ConvertedImage",
    "EpubImage",
    "FetchFailure",
    "FetchedImage",
    "HttpImageFetcher",
    "ImageFetcher",
    "ImagePolicy",
    "ImageRejected",
    "ImagesResult",
    "clear_memory_cache",
    "convert_image",
    "forbidden_reason",
    "is_tracker_url",
    "process_images",
    "resolve_checked",
]
