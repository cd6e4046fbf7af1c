"""Storage in any S3-compatible service through boto3; downloads are presigned GET URLs."""
from __future__ import annotations

from pathlib import Path
from datetime import datetime
from typing import Any, BinaryIO, Iterator
from urllib.parse import urlparse

import boto3
from boto3.exceptions import S3UploadFailedError
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from face3d.shared.errors import ErrorCode, Face3dError, NotFound, StorageUnavailable
from face3d.shared.storage.base import content_type_for, sanitize_name, validate_key

_MISSING = {"404", "NoSuchKey", "NotFound"}
_MISSING_SOURCE = {"NoSuchKey", "404", "NoSuchBucket"}
_TRANSIENT = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeTooSkewed",
              "ServiceUnavailable", "InternalError"}


def make_s3_client(endpoint_url: str | None, region: str) -> Any:
    config = Config(
        region_name=region, signature_version="s3v4", connect_timeout=3, read_timeout=30,
        retries={"max_attempts": 3, "mode": "standard"},
        # Custom endpoints (MinIO, moto) rarely have wildcard DNS for virtual-hosted buckets.
        s3={"addressing_style": "path" if endpoint_url else "auto"},
    )
    return boto3.client("s3", endpoint_url=endpoint_url, config=config)


def s3_error_code(exc: Exception) -> str:
    """The S3 error code of a botocore error (``NoSuchKey``, ``AccessDenied``, ...), else the exception's name."""
    return getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)


def read_source(client: Any, url: str) -> bytes:
    """The bytes of an ``s3://bucket/key`` batch source, read with ``client`` (not the service's own Storage: the
    source may be any bucket BATCH_S3_BUCKETS allows). Missing: not_found; anything else: storage_unavailable."""
    parsed = urlparse(url)
    try:
        return client.get_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))["Body"].read()
    except Exception as exc:  # noqa: BLE001 - any failure to read the source fails this item only
        code = s3_error_code(exc)
        raise Face3dError(f"cannot read {url}: {code}", _source_error(exc, code)) from exc


def _source_error(exc: Exception, code: str) -> ErrorCode:
    """Missing: not_found. Refused for good (AccessDenied, a bad name, ...: the source's fault): fetch_failed.
    Unreachable, throttled or a 5xx: storage_unavailable, an outage the worker waits out."""
    if code in _MISSING_SOURCE:
        return ErrorCode.NOT_FOUND
    status = getattr(exc, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
    if isinstance(exc, ClientError) and status < 500 and code not in _TRANSIENT:
        return ErrorCode.FETCH_FAILED
    return ErrorCode.STORAGE_UNAVAILABLE


class S3Storage:
    def __init__(self, client: Any, bucket: str, prefix: str = "", presign_expiry_s: int = 3600,
                 presign_client: Any = None) -> None:
        self.client = client
        self.presign_client = presign_client or client   # signs URLs for the endpoint clients can reach
        self.bucket = bucket
        self.prefix = prefix
        self.presign_expiry_s = presign_expiry_s

    def _key(self, key: str) -> str:
        return self.prefix + validate_key(key)

    def _call(self, key: str, method: str, **kwargs: Any) -> Any:
        try:
            return getattr(self.client, method)(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                raise NotFound(f"no stored object {key}") from None
            raise StorageUnavailable(f"storage refused {method} {key}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageUnavailable(f"storage unreachable ({method} {key}): {exc}") from exc

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        self._call(key, "put_object", Key=self._key(key), Body=data,
                   ContentType=content_type or content_type_for(key))

    def put_file(self, key: str, path: Path, content_type: str | None = None) -> None:
        """Streamed from disk (multipart above boto3's threshold), never read whole into memory."""
        extra = {"ContentType": content_type or content_type_for(key)}
        try:
            self.client.upload_file(str(path), self.bucket, self._key(key), ExtraArgs=extra)
        except (ClientError, BotoCoreError, S3UploadFailedError) as exc:
            raise StorageUnavailable(f"storage refused the upload of {key}: {exc}") from exc

    def copy(self, source_key: str, target_key: str) -> None:
        """A server-side copy: either key may be deleted without breaking the other."""
        self._call(target_key, "copy_object", Key=self._key(target_key),
                   CopySource={"Bucket": self.bucket, "Key": self._key(source_key)})

    def get_bytes(self, key: str) -> bytes:
        return self.open_stream(key).read()

    def delete_prefix(self, prefix: str) -> int:
        removed = 0
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if keys:
                    self._call(prefix, "delete_objects", Delete={"Objects": keys, "Quiet": True})
                    removed += len(keys)
        except (ClientError, BotoCoreError) as exc:
            raise StorageUnavailable(f"cannot list {prefix}: {exc}") from exc
        return removed

    def list_objects(self, prefix: str = "") -> Iterator[tuple[str, datetime]]:
        """(key without the service's prefix, last modified) of every object under ``prefix``, page by page."""
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for item in page.get("Contents", []):
                    yield item["Key"][len(self.prefix):], item["LastModified"]
        except (ClientError, BotoCoreError) as exc:
            raise StorageUnavailable(f"cannot list {prefix}: {exc}") from exc

    def url_for(self, key: str, filename: str | None = None) -> str | None:
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(key)}
        if filename:
            params["ResponseContentDisposition"] = f'attachment; filename="{sanitize_name(filename)}"'
        return self.presign_client.generate_presigned_url("get_object", Params=params, ExpiresIn=self.presign_expiry_s)

    def open_stream(self, key: str) -> BinaryIO:
        return self._call(key, "get_object", Key=self._key(key))["Body"]

    def check(self) -> None:
        self._call("", "head_bucket")

    def __repr__(self) -> str:
        return f"S3Storage(bucket={self.bucket!r}, prefix={self.prefix!r})"
