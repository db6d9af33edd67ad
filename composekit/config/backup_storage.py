"""backups/s3: the S3-compatible bucket every verified backup is copied to (docs/backups.md). The secret key stays in
a file beside the config (secret_access_key_file, read on the deploying machine and handed to the upload helper
as a file: never a rendered file, an environment variable or a command line)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, Strict

from .fields import Expected

__all__ = ["BackupS3"]

_ENDPOINT_RE = re.compile(
    r"^https?://[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?(/[A-Za-z0-9._~-]+)*/?$(?!\n)"
)
# S3's bucket names (3-63 lowercase letters, digits, dots and hyphens), used path-style: https://ENDPOINT/BUCKET/KEY
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$(?!\n)")
_PREFIX_RE = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$(?!\n)")
_REGION_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$(?!\n)")
_KEY_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$(?!\n)")


class BackupS3(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, regex_engine="python-re")

    endpoint: Annotated[
        str,
        Strict(),
        Field(pattern=_ENDPOINT_RE.pattern, examples=["https://s3.eu-central-1.amazonaws.com"]),
        Expected('the S3 endpoint\'s URL, such as "https://s3.eu-central-1.amazonaws.com" (no bucket, no query)'),
    ]
    bucket: Annotated[
        str,
        Strict(),
        Field(pattern=_BUCKET_RE.pattern),
        Expected("a bucket name: 3 to 63 lowercase letters, digits, dots and hyphens"),
    ]
    region: Annotated[
        str, Strict(), Field(pattern=_REGION_RE.pattern), Expected('a region such as "eu-central-1" (or "auto")')
    ] = "us-east-1"
    # Keys are <prefix>/<backup id>/<file>; None: the stack's name.
    prefix: (
        Annotated[
            str,
            Strict(),
            Field(pattern=_PREFIX_RE.pattern),
            Expected('a key prefix such as "backups/notes": letters, digits and "._-" between "/"'),
        ]
        | None
    ) = None
    access_key_id: Annotated[
        str, Strict(), Field(pattern=_KEY_ID_RE.pattern), Expected("the access key's id (letters and digits)")
    ]
    secret_access_key_file: Annotated[
        str,
        Strict(),
        Field(pattern=r"\S"),
        Expected("the path of a file that holds the secret access key, such as secrets/s3_secret_access_key"),
    ]
