"""The storage seam against a real folder and a real S3 API (moto server)."""

from __future__ import annotations

import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from inbox_pipeline.seams import FolderStorage, ObjectNotFound, S3Storage, Storage, storage_from_uri

EPUB = b"PK\x03\x04mimetypeapplication/epub+zip" + bytes(range(256)) * 40


@pytest.fixture
def storage(place) -> Storage:
    return storage_from_uri(place("epubs"))


def test_put_get_exists_delete(storage: Storage) -> None:
    key = "users/7/2024-05-01-the-weekly.epub"
    assert not storage.exists(key)

    uri = storage.put(key, EPUB, "application/epub+zip")

    assert uri == storage.object_uri(key) and uri.endswith(key)
    assert storage.exists(key)
    assert storage.get(key) == EPUB

    storage.put(key, b"replaced", "application/epub+zip")
    assert storage.get(key) == b"replaced"

    storage.delete(key)
    storage.delete(key)  # cleanup may run twice
    assert not storage.exists(key)
    with pytest.raises(ObjectNotFound):
        storage.get(key)


def test_download_link_gives_the_bytes(storage: Storage) -> None:
    storage.put("big/book.epub", EPUB, "application/epub+zip")

    link = storage.download_link("big/book.epub", 3600, file_name="The Big Book.epub")

    with urllib.request.urlopen(link, timeout=10) as response:
        assert response.read() == EPUB
        if isinstance(storage, S3Storage):
            assert response.headers["Content-Type"] == "application/epub+zip"
            assert response.headers["Content-Disposition"] == 'attachment; filename="The Big Book.epub"'


def test_s3_download_link_is_presigned_for_the_requested_time(s3_bucket: str, aws_env: str) -> None:
    storage = S3Storage(s3_bucket, "epubs/")
    storage.put("a.epub", EPUB, "application/epub+zip")

    link = storage.download_link("a.epub", 600)

    parts = urlsplit(link)
    query = parse_qs(parts.query)
    assert link.startswith(aws_env)  # the endpoint came from AWS_ENDPOINT_URL
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Expires"] == ["600"]
    assert parts.path.endswith("/epubs/a.epub")
    with pytest.raises(ValueError, match="7 days"):
        storage.download_link("a.epub", 8 * 24 * 3600)


def test_folder_link_is_a_file_uri(tmp_path: Path) -> None:
    storage = FolderStorage(tmp_path)
    storage.put("x.epub", EPUB, "application/epub+zip")

    assert storage.download_link("x.epub") == (tmp_path / "x.epub").as_uri()
    with pytest.raises(ObjectNotFound):
        storage.download_link("missing.epub")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.epub"]  # no temp files left


def test_keys_that_could_escape_are_refused(storage: Storage) -> None:
    for bad in ["../etc/passwd", "/abs", "a//b", "a/./b", ""]:
        with pytest.raises(ValueError):
            storage.put(bad, b"x", "text/plain")


@pytest.mark.parametrize(
    "uri, message",
    [
        ("", "empty"),
        ("s3://", "no bucket"),
        ("gs://bucket/x", "unsupported scheme"),
        ("s3://b/x?acl=public", "no \\?options"),
        ("file://host/x", "local path"),
    ],
)
def test_bad_storage_uris_say_what_is_wrong(uri: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        storage_from_uri(uri)


def test_storage_uri_forms(tmp_path: Path) -> None:
    assert storage_from_uri(str(tmp_path)).uri == str(tmp_path)
    assert storage_from_uri(tmp_path.as_uri()).uri == str(tmp_path)
    s3 = storage_from_uri("s3://bucket/epubs")
    assert isinstance(s3, S3Storage) and s3.object_uri("a.epub") == "s3://bucket/epubs/a.epub"


def test_check_passes_when_usable_and_names_a_missing_bucket_or_a_file_in_the_way(
    storage: Storage, tmp_path: Path, aws_env
) -> None:
    from botocore.exceptions import ClientError

    storage.check()  # usable (an absent folder is created on first write)
    with pytest.raises(ClientError, match="404|Not Found|NoSuchBucket"):
        S3Storage("no-such-bucket-here").check()
    (tmp_path / "in-the-way").write_text("a file")
    with pytest.raises(NotADirectoryError):
        FolderStorage(tmp_path / "in-the-way").check()
