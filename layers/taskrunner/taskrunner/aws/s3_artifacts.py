"""Artifact store on S3: streamed multipart uploads with SHA-256 computed on the way."""

from __future__ import annotations

import hashlib
from typing import Any, BinaryIO, cast

from botocore.exceptions import ClientError

from taskrunner.engine.ports import StoredObject
from taskrunner.errors import NotFound
from taskrunner.keys import check_key
from taskrunner.streams import CHUNK_SIZE, HashingReader

_PART_SIZE = 8 * CHUNK_SIZE  # S3 multipart parts must be >= 5 MiB (except the last)


class S3ArtifactStore:
    """Objects under ``bucket``; every key is re-checked (:func:`~taskrunner.keys.check_key`) before use."""

    def __init__(self, s3: Any, bucket: str) -> None:
        self._s3 = s3
        self.bucket = bucket

    def put_bytes(self, key: str, data: bytes, media_type: str) -> StoredObject:
        check_key(key)
        self._s3.put_object(
            Bucket=self.bucket, Key=key, Body=data, ContentType=media_type, ChecksumAlgorithm="SHA256"
        )
        return StoredObject(key, hashlib.sha256(data).hexdigest(), len(data))

    def put_stream(self, key: str, stream: BinaryIO, media_type: str) -> StoredObject:
        check_key(key)
        reader = HashingReader(stream)
        first = reader.read(_PART_SIZE)
        if len(first) < _PART_SIZE:  # small object: one request
            self._s3.put_object(Bucket=self.bucket, Key=key, Body=first, ContentType=media_type)
            return StoredObject(key, reader.hexdigest(), reader.size)
        upload = self._s3.create_multipart_upload(Bucket=self.bucket, Key=key, ContentType=media_type)
        parts, number, chunk = [], 1, first
        try:
            while chunk:
                part = self._s3.upload_part(
                    Bucket=self.bucket, Key=key, UploadId=upload["UploadId"], PartNumber=number, Body=chunk
                )
                parts.append({"ETag": part["ETag"], "PartNumber": number})
                number, chunk = number + 1, reader.read(_PART_SIZE)
            self._s3.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
            )
        except Exception:
            self._s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload["UploadId"])
            raise
        return StoredObject(key, reader.hexdigest(), reader.size)

    def open(self, key: str) -> BinaryIO:
        check_key(key)
        try:
            return cast(BinaryIO, self._s3.get_object(Bucket=self.bucket, Key=key)["Body"])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise NotFound(f"no object {self.location(key)}") from exc
            raise

    def presign(self, key: str, expires_seconds: int = 900) -> str:
        return cast(
            str,
            self._s3.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": check_key(key)}, ExpiresIn=expires_seconds
            ),
        )

    def location(self, key: str) -> str:
        return f"s3://{self.bucket}/{check_key(key)}"
