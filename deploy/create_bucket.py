"""Create the configured artifact storage location (an S3 bucket) if it is missing.

It reads the configuration the workers read (luigi.cfg ``[artifact_store]``, the
``LINEA_LUIGI_*`` variables) and uses their credentials, so a success also
shows that the workers can reach the store. Safe to run again. ::

    LUIGI_CONFIG_PATH=luigi.cfg python deploy/create_bucket.py

For ``s3://bucket/prefix`` it creates the bucket; for a local folder, the folder.
It touches storage only, never the database.
"""

from __future__ import annotations

import sys

from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

import linea_luigi as ll


def main() -> int:
    settings = ll.resolve_settings()
    fs, path = url_to_fs(settings.storage_dir, **settings.storage_options)
    local = isinstance(fs, LocalFileSystem)
    target = path if local else path.split("/", 1)[0]  # an object store's bucket
    kind = "folder" if local else "bucket"
    try:
        existed = fs.exists(target)
        fs.makedirs(path, exist_ok=True)
    except Exception as exc:  # s3fs/botocore name the cause (endpoint, credentials, ...)
        print(f"cannot create {kind} {target} of {settings.storage_dir}: {exc}", file=sys.stderr)
        return 1
    print(f"{kind} {target} of {settings.storage_dir}: {'already there' if existed else 'created'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
