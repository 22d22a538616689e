"""Helpers for fault tests: a TCP proxy that can be cut, and moto's S3 server on loopback.

The proxy stands between a client (psycopg2, s3fs) and a real server. Cutting
it closes every relayed connection and refuses new ones, which is what a
client sees when the server dies or the network drops; starting it again on
the same port is the server coming back. Traps cut it at a chosen moment: after
so many bytes (mid-upload, mid-download), or right after a given message went
out with its reply swallowed (a commit whose answer never arrives).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

UP, DOWN = "up", "down"


class TcpProxy:
    """Relay ``127.0.0.1:port`` to ``upstream``; ``cut()`` it, ``start()`` it again."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.relayed = {UP: 0, DOWN: 0}
        self.cut_done = threading.Event()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._trap: tuple[str, Callable[[int, bytes], bool], bool, float] | None = None
        self._swallow_replies = False
        self.start()

    # -- control ----------------------------------------------------------------------

    def start(self) -> None:
        """Listen (again) on the same port and relay new connections."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        with self._lock:
            self._listener = listener
            self._swallow_replies = False
            self.cut_done.clear()
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Close the listener and every relayed connection, as if the server died."""
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._sockets = self._sockets, set()
            self._trap = None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
            listener.close()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self.cut_done.set()

    def cut_after(self, direction: str, nbytes: int) -> None:
        """Cut once ``nbytes`` in all went ``direction`` (``UP`` to the server, ``DOWN`` back)."""
        start = self.relayed[direction]
        self._arm(direction, lambda total, _: total - start >= nbytes, swallow=False, delay=0.0)

    def cut_after_message(self, marker: bytes, delay: float = 0.3) -> None:
        """Forward the request holding ``marker``, swallow every reply, cut after ``delay`` s.

        The server does receive and execute the request; the client never
        learns its outcome.
        """
        self._arm(UP, lambda _, data: marker in data, swallow=True, delay=delay)

    def _arm(
        self, direction: str, when: Callable[[int, bytes], bool], *, swallow: bool, delay: float
    ) -> None:
        with self._lock:
            self._trap = (direction, when, swallow, delay)

    # -- relaying ---------------------------------------------------------------------

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                server = socket.create_connection(self.upstream, timeout=10)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    server.close()
                    return
                self._sockets |= {client, server}
            for src, dst, direction in ((client, server, UP), (server, client, DOWN)):
                threading.Thread(target=self._pump, args=(src, dst, direction), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, direction: str) -> None:
        try:
            while True:
                data = src.recv(1 << 16)
                if not data:
                    break
                if direction == DOWN and self._swallow_replies:
                    continue  # the answer is lost on the way back
                fire = self._check_trap(direction, data)
                dst.sendall(data)
                if fire is not None:
                    threading.Thread(target=self._cut_later, args=(fire,), daemon=True).start()
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def _check_trap(self, direction: str, data: bytes) -> float | None:
        with self._lock:
            self.relayed[direction] += len(data)
            trap = self._trap
            if trap is None or trap[0] != direction or not trap[1](self.relayed[direction], data):
                return None
            self._trap = None
            self._swallow_replies = trap[2]
            return trap[3]

    def _cut_later(self, delay: float) -> None:
        time.sleep(delay)
        self.cut()


@contextmanager
def moto_s3() -> Iterator[str]:
    """moto's S3 server in this process on a free loopback port; yields its endpoint URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def s3_client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=S3_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=S3_ENV["AWS_SECRET_ACCESS_KEY"],
        region_name=S3_ENV["AWS_DEFAULT_REGION"],
    )


def keys(client: Any, bucket: str) -> list[str]:
    """Every object key in ``bucket`` (paginated)."""
    found: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        found.extend(o["Key"] for o in page.get("Contents", []))
    return sorted(found)


def pending_uploads(client: Any, bucket: str) -> list[str]:
    """Keys of multipart uploads started and neither completed nor aborted."""
    return sorted(u["Key"] for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []))


def empty_bucket(client: Any, bucket: str) -> None:
    for key in keys(client, bucket):
        client.delete_object(Bucket=bucket, Key=key)
    for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])


@contextmanager
def fresh_bucket(endpoint: str, prefix: str) -> Iterator[str]:
    """A new, uniquely named bucket; emptied (uploads aborted) and removed afterwards."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    client = s3_client(endpoint)
    client.create_bucket(Bucket=name)
    try:
        yield name
    finally:
        with contextlib.suppress(Exception):  # a test may have removed it on purpose
            empty_bucket(client, name)
            client.delete_bucket(Bucket=name)


#: fail fast where a test provokes a connection failure: retries only delay the same error
ONE_ATTEMPT = {"retries": {"max_attempts": 1}}


def wait_until(ready: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.01)
