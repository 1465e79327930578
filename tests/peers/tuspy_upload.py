"""Uploads a file with tuspy (PyPI), resumable through its URL storage.

Usage: python3 tuspy_upload.py ENDPOINT FILE CHUNK_SIZE STORAGE_FILE AUTH_HEADER [--checksum]

Prints one JSON line per acknowledged chunk ({"offset": N}), then
{"url": ..., "resumed_from": N} at the end, where resumed_from is the offset
the upload started at (non-zero when a stored URL was resumed).
"""
import json
import sys

from tusclient import client
from tusclient.storage import filestorage


def main() -> int:
    endpoint, path, chunk_size, storage_path, auth = sys.argv[1:6]
    checksum = "--checksum" in sys.argv[6:]
    tus = client.TusClient(endpoint, headers={"Authorization": auth})
    storage = filestorage.FileStorage(storage_path)
    uploader = tus.uploader(
        path,
        chunk_size=int(chunk_size),
        store_url=True,
        url_storage=storage,
        upload_checksum=checksum,
        retries=3,
        retry_delay=1,
    )
    start = uploader.offset
    while uploader.offset < uploader.get_file_size():
        uploader.upload_chunk()
        print(json.dumps({"offset": uploader.offset}), flush=True)
    print(json.dumps({"url": uploader.url, "resumed_from": start}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
