"""One seam per outside thing, chosen by configuration strings (see ``config.Settings``).

- ``inbox_from_uri(settings.inbox)``: where raw emails arrive (S3 prefix or folder).
- ``storage_from_uri(settings.storage)``: where EPUBs are kept.
- ``mailer_from_uri(settings.mailer, settings.sender)``: how email leaves (SES, SMTP, outbox).
"""

from inbox_pipeline.seams._common import ObjectNotFound, ObjectTooLarge
from inbox_pipeline.seams.inbox import FolderInbox, Inbox, InboxObject, S3Inbox, inbox_from_uri
from inbox_pipeline.seams.mailer import (
    SES_MAX_MESSAGE_BYTES,
    Mailer,
    MailError,
    OutboxMailer,
    PermanentMailError,
    SendResult,
    SesMailer,
    SmtpMailer,
    TransientMailError,
    build_epub_email,
    build_forward_email,
    build_link_email,
    build_notification_email,
    mailer_from_uri,
    message_size_after_base64,
    safe_file_name,
)
from inbox_pipeline.seams.storage import FolderStorage, S3Storage, Storage, storage_from_uri

__all__ = [
    "SES_MAX_MESSAGE_BYTES",
    "FolderInbox",
    "FolderStorage",
    "Inbox",
    "InboxObject",
    "MailError",
    "Mailer",
    "ObjectNotFound",
    "ObjectTooLarge",
    "OutboxMailer",
    "PermanentMailError",
    "S3Inbox",
    "S3Storage",
    "SendResult",
    "SesMailer",
    "SmtpMailer",
    "Storage",
    "TransientMailError",
    "build_epub_email",
    "build_forward_email",
    "build_link_email",
    "build_notification_email",
    "inbox_from_uri",
    "mailer_from_uri",
    "message_size_after_base64",
    "safe_file_name",
    "storage_from_uri",
]
