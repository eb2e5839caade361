"""A real S3-compatible server for the recording-storage tests: moto's standalone
server (``moto_server``, from moto[server]) in a subprocess on a free port.

Import the fixture into a test module (``from s3_support import s3_server``);
it starts the server once per test session (per importing module: pytest
keeps one fixture definition per module), waits until it answers,
creates the bucket, sets throwaway AWS credentials in the environment for
boto3's usual credential chain, and stops the server at the end.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

BUCKET = "kefu-recordings"
REGION = "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "kefu-test", "AWS_SECRET_ACCESS_KEY": "kefu-test-secret"}


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    bucket: str

    def client(self) -> Any:
        return boto3.session.Session().client("s3", endpoint_url=self.endpoint_url, region_name=REGION)

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", ()))

    def get(self, key: str) -> bytes:
        return self.client().get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def put(self, key: str, body: bytes, content_type: str = "audio/ogg") -> None:
        self.client().put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=1).close()
    except urllib.error.HTTPError:
        return True  # an HTTP answer, even an error, means it is up
    except OSError:
        return False
    return True


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    log_path = tmp_path_factory.mktemp("moto") / "moto_server.log"
    executable = Path(sys.executable).parent / "moto_server"
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with pytest.MonkeyPatch.context() as env:
        for name, value in CREDENTIALS.items():
            env.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
            env.delenv(name, raising=False)
        log_file = log_path.open("wb")  # moto logs every request: a pipe nobody reads would fill up
        process = subprocess.Popen(
            [str(executable), "-H", "127.0.0.1", "-p", str(port)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ},
        )
        try:
            # A real external process: poll until it answers, with a deadline.
            deadline = time.monotonic() + 30
            while not _answers(endpoint):
                if process.poll() is not None:
                    raise RuntimeError(f"moto_server exited: {log_path.read_text(errors='replace')}")
                if time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not answer within 30 s")
                time.sleep(0.05)
            server = S3Server(endpoint, BUCKET)
            server.client().create_bucket(Bucket=BUCKET)
            yield server
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log_file.close()
