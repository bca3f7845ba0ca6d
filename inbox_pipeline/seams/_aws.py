"""boto3 clients configured only by boto3's own environment (AWS_ENDPOINT_URL, ...)."""

from __future__ import annotations

import os
import threading
from typing import Any

_lock = threading.Lock()


def aws_client(service: str, **config: Any) -> Any:
    """A new client for ``service``.

    Endpoint, credentials and retries come from boto3's own variables and files
    (boto3 >= 1.28 reads ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_<SERVICE>``), so a
    local S3 API server needs no code of ours. ``AWS_REGION`` is honoured as well as
    ``AWS_DEFAULT_REGION`` because botocore alone reads only the latter.
    """
    # Lazy: boto3 (about 0.2-1 s to import) stays off Dagster's load path, which imports the seams.
    import boto3
    from botocore.config import Config

    # Sessions are not thread-safe to create clients from; a fresh one per client is.
    with _lock:
        session = boto3.session.Session()
        region = session.region_name or os.environ.get("AWS_REGION") or None
        return session.client(
            service,
            region_name=region,
            config=Config(connect_timeout=10, read_timeout=60, **config),
        )


def error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def http_status(exc: Exception) -> int:
    response = getattr(exc, "response", None) or {}
    return int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def is_not_found(exc: Exception) -> bool:
    return error_code(exc) in {"404", "NoSuchKey", "NotFound"} or http_status(exc) == 404
