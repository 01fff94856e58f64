"""A blob store on S3 or any S3-compatible server (boto3).

Keys: ``<prefix>/objects/ab/cd/<digest>``. A put spools the stream to a local temporary file while
hashing (the key is the digest, known only at the end), then uploads it; objects above the multipart
threshold go up in parts, which S3 makes visible only when the upload completes, so readers never see
a partial object. Interrupted multipart uploads are aborted by ``remove_partial`` (``store gc``).
Reads stream the body through a verifying reader. A put of existing content copies the object onto
itself to refresh its modification time when it is older than an hour, for the same gc reason as the
local store.
"""

from __future__ import annotations

import datetime as dt
import io
import tempfile
import time
from collections.abc import Iterator
from typing import Any, BinaryIO

from llmops.blobs.base import BlobInfo, VerifyingReader
from llmops.blobs.digest import CHUNK_SIZE, check_digest, new_hasher
from llmops.errors import NotFound, Unavailable

REFRESH_AFTER_SECONDS = 3600
SPOOL_IN_MEMORY = 8 * 1024 * 1024


class S3BlobStore:
    def __init__(self, client: Any, bucket: str, prefix: str = "", *, multipart_threshold: int = 64 << 20) -> None:
        from boto3.s3.transfer import TransferConfig

        self._client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self._objects = f"{self.prefix}/objects/" if self.prefix else "objects/"
        self._transfer = TransferConfig(
            multipart_threshold=multipart_threshold, multipart_chunksize=max(multipart_threshold // 2, 8 << 20)
        )

    def key(self, digest: str) -> str:
        check_digest(digest)
        return f"{self._objects}{digest[:2]}/{digest[2:4]}/{digest}"

    def put(self, source: BinaryIO) -> BlobInfo:
        hasher = new_hasher()
        size = 0
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
            while chunk := source.read(CHUNK_SIZE):
                hasher.update(chunk)
                spool.write(chunk)
                size += len(chunk)
            digest = hasher.hexdigest()
            key = self.key(digest)
            existing = self._head(key)
            if existing is not None:
                if time.time() - existing["LastModified"].timestamp() > REFRESH_AFTER_SECONDS:
                    self._client.copy_object(
                        Bucket=self.bucket,
                        Key=key,
                        CopySource={"Bucket": self.bucket, "Key": key},
                        MetadataDirective="REPLACE",
                        Metadata={"blake3": digest},
                    )
                return BlobInfo(digest=digest, size=size, modified=time.time())
            spool.seek(0)
            self._client.upload_fileobj(
                spool, self.bucket, key, ExtraArgs={"Metadata": {"blake3": digest}}, Config=self._transfer
            )
        return BlobInfo(digest=digest, size=size, modified=time.time())

    def open(self, digest: str) -> BinaryIO:
        try:
            obj = self._client.get_object(Bucket=self.bucket, Key=self.key(digest))
        except self._client.exceptions.NoSuchKey:
            raise NotFound(f"blob {digest} is missing from {self.url}") from None
        reader = VerifyingReader(obj["Body"], digest, obj["ContentLength"])
        return io.BufferedReader(reader, CHUNK_SIZE)

    def stat(self, digest: str) -> BlobInfo | None:
        head = self._head(self.key(digest))
        if head is None:
            return None
        return BlobInfo(digest=digest, size=head["ContentLength"], modified=head["LastModified"].timestamp())

    def delete(self, digest: str) -> None:
        self._client.delete_object(Bucket=self.bucket, Key=self.key(digest))

    def iter_blobs(self) -> Iterator[BlobInfo]:
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._objects):
            for obj in page.get("Contents", []):
                digest = obj["Key"].rsplit("/", 1)[-1]
                yield BlobInfo(digest=digest, size=obj["Size"], modified=obj["LastModified"].timestamp())

    def remove_partial(self, older_than: float) -> int:
        removed = 0
        cutoff = dt.datetime.fromtimestamp(older_than, dt.UTC)
        paginator = self._client.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._objects):
            for upload in page.get("Uploads", []):
                if upload["Initiated"] < cutoff:
                    self._client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                    removed += 1
        return removed

    def ping(self) -> None:
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            raise Unavailable(
                f"blob store {self.url} unreachable or bucket missing ({type(exc).__name__}: {exc}); "
                "check LLMOPS_S3_ENDPOINT_URL and credentials, and create the bucket"
            ) from exc

    def _head(self, key: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            head: dict[str, Any] = self._client.head_object(Bucket=self.bucket, Key=key)
            return head
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
