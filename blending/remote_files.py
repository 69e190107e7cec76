"""Files on S3 or HTTP(S) read as a stream that survives throttling and broken connections.

`open_remote(uri, settings)` gives a binary file object that reads an s3:// (s3a://, s3n://) object or an
http(s):// URL from the start, or from an offset, with one streaming GET. When the request fails in a way
that passes (HTTP 5xx and 429, S3's SlowDown, a connection refused or reset, a timeout, a body that ends
before its Content-Length), the file waits (exponential backoff with jitter) and asks again from the first
byte it does not have yet (a Range request), at most `max_attempts` times in a row without a byte of
progress; then it raises RemoteReadError. Other errors (403, 404, a bad URI) are raised at once.
`retries` counts the requests made again. Memory stays bounded: nothing is read ahead of the caller.

S3 settings come from RemoteConfig where set, else from the standard AWS environment and files
(AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_REGION or AWS_DEFAULT_REGION,
AWS_PROFILE, ~/.aws/config and ~/.aws/credentials, an instance role): with those variables alone, any
S3-compatible server works. `anonymous` reads a public bucket without keys (Common Crawl asks for AWS
credentials on s3://commoncrawl/; its https://data.commoncrawl.org/ needs none).
"""

from __future__ import annotations

import functools
import http.client
import io
import os
import random
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from blending.typed_config import ConfigError

S3_SCHEMES = ("s3", "s3a", "s3n")
HTTP_SCHEMES = ("http", "https")
TRANSIENT_HTTP = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RemoteConfig:
    endpoint: str = ""  # S3 endpoint URL; "" -> AWS_ENDPOINT_URL, else AWS's own
    region: str = ""  # "" -> AWS_REGION, AWS_DEFAULT_REGION or ~/.aws/config
    anonymous: bool = False  # unsigned S3 requests, for public buckets
    max_attempts: int = 8  # requests in a row without progress before a file is given up
    base_delay_s: float = 0.5  # first backoff; doubles on each attempt, with jitter
    max_delay_s: float = 20.0
    timeout_s: float = 60.0  # connecting, and waiting for the next bytes of an answer

    def __post_init__(self):
        if self.max_attempts < 1:
            raise ConfigError(f"remote.max_attempts must be at least 1, not {self.max_attempts}")
        if min(self.base_delay_s, self.max_delay_s) < 0 or self.timeout_s <= 0:
            raise ConfigError("remote: delays must not be negative and timeout_s must be positive")


DEFAULT_REMOTE = RemoteConfig()


class RemoteReadError(OSError):
    """A remote file that still failed after the configured attempts (a transient error that did not pass)."""


class _Transient(Exception):
    """One failed request that asking again may fix."""


def is_remote(uri: str) -> bool:
    return scheme_of(uri) in S3_SCHEMES + HTTP_SCHEMES


def scheme_of(uri: str) -> str:
    return uri.split("://", 1)[0].lower() if "://" in uri else ""


def split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.split("://", 1)[1].partition("/")
    return bucket, key


@functools.lru_cache(maxsize=8)
def s3_client(settings: RemoteConfig):
    """A botocore S3 client for `settings` (one per process: clients are thread-safe and slow to make).
    botocore's own retries are off: this module retries, resuming where the body broke off, and counts."""
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    config = Config(retries={"total_max_attempts": 1}, connect_timeout=settings.timeout_s,
                    read_timeout=settings.timeout_s, signature_version=UNSIGNED if settings.anonymous else None)
    region = settings.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None
    return boto3.session.Session().client("s3", endpoint_url=settings.endpoint or None, region_name=region,
                                          config=config)


def _s3_get(uri: str, offset: int, settings: RemoteConfig):
    """(body stream, total size) of the object from `offset`."""
    from botocore.exceptions import ClientError, HTTPClientError
    from botocore.exceptions import ConnectionError as BotoConnectionError

    bucket, key = split_s3(uri)
    try:
        answer = s3_client(settings).get_object(Bucket=bucket, Key=key, Range=f"bytes={offset}-")
    except ClientError as e:
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = e.response.get("Error", {}).get("Code", "")
        if status in TRANSIENT_HTTP or code in ("SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable"):
            raise _Transient(f"{status} {code}") from e
        if status == 416 or code == "InvalidRange":
            return io.BytesIO(), offset  # at or past the end
        if status == 404 or code in ("NoSuchKey", "NoSuchBucket"):
            raise FileNotFoundError(f"{uri}: {code or status}") from e
        raise OSError(f"{uri}: {status} {code}: {e}") from e
    except (BotoConnectionError, HTTPClientError) as e:  # refused, reset, timed out
        raise _Transient(f"{type(e).__name__}: {e}") from e
    total = int(answer["ContentRange"].rsplit("/", 1)[1]) if answer.get("ContentRange") else answer["ContentLength"]
    return answer["Body"], total


def _http_get(uri: str, offset: int, settings: RemoteConfig):
    request = urllib.request.Request(uri, headers={"Range": f"bytes={offset}-", "Accept-Encoding": "identity"})
    try:
        answer = _opener().open(request, timeout=settings.timeout_s)
    except urllib.error.HTTPError as e:
        e.close()
        if e.code in TRANSIENT_HTTP:
            raise _Transient(f"HTTP {e.code}") from e
        if e.code == 416:
            return io.BytesIO(), offset
        if e.code == 404:
            raise FileNotFoundError(f"{uri}: HTTP 404") from e
        raise OSError(f"{uri}: HTTP {e.code} {e.reason}") from e
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        raise _Transient(f"{type(e).__name__}: {e}") from e
    content_range = answer.headers.get("Content-Range")
    if answer.status == 206 and content_range:
        return answer, int(content_range.rsplit("/", 1)[1])
    length = answer.headers.get("Content-Length")
    if offset:  # the server ignored the Range: it cannot resume
        answer.close()
        raise OSError(f"{uri}: the server does not answer Range requests (HTTP {answer.status})")
    return answer, int(length) if length is not None else None


@functools.cache
def _opener():
    return urllib.request.build_opener()


class RemoteFile(io.RawIOBase):
    """A remote file read forward from `offset` (see the module's docstring)."""

    def __init__(self, uri: str, settings: RemoteConfig = DEFAULT_REMOTE, offset: int = 0):
        scheme = scheme_of(uri)
        if scheme not in S3_SCHEMES + HTTP_SCHEMES:
            raise ValueError(f"{uri}: not an s3:// or http(s):// location")
        self.uri, self.settings, self.position = uri, settings, offset
        self.size: int | None = None  # known after the first answer
        self.retries = 0
        self._get = _s3_get if scheme in S3_SCHEMES else _http_get
        self._body = None
        self._random = random.Random()  # jitter only: never shapes what is read

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        failures, last = 0, ""
        while True:
            if self.size is not None and self.position >= self.size:
                return 0
            try:
                if self._body is None:
                    self._body, self.size = self._get(self.uri, self.position, self.settings)
                n = self._read_body(buffer)
                if n == 0 and self.size is not None and self.position < self.size:
                    raise _Transient(f"the answer ended at byte {self.position} of {self.size}")
                self.position += n
                return n
            except _Transient as e:
                self._drop_body()
                failures, last = failures + 1, str(e)
                if failures >= self.settings.max_attempts:
                    raise RemoteReadError(f"{self.uri}: still failing after {failures} attempts at byte "
                                          f"{self.position}: {last}") from None
                self.retries += 1
                delay = min(self.settings.max_delay_s, self.settings.base_delay_s * 2 ** (failures - 1))
                time.sleep(delay * self._random.uniform(0.5, 1.0))

    def _read_body(self, buffer) -> int:
        try:
            data = self._body.read(len(buffer))
            buffer[: len(data)] = data
            return len(data)
        except (OSError, http.client.HTTPException) as e:  # timeouts and resets are OSErrors
            raise _Transient(f"{type(e).__name__}: {e}") from e
        except Exception as e:
            if type(e).__module__.startswith(("urllib3", "botocore")):  # ProtocolError, IncompleteRead, timeouts
                raise _Transient(f"{type(e).__name__}: {e}") from e
            raise

    def _drop_body(self) -> None:
        if self._body is not None:
            try:
                self._body.close()
            except Exception:  # noqa: BLE001 - a broken connection may fail to close; it is dropped anyway
                pass
            self._body = None

    def close(self) -> None:
        self._drop_body()
        super().close()


def open_remote(uri: str, settings: RemoteConfig = DEFAULT_REMOTE, offset: int = 0) -> io.BufferedReader:
    """A buffered binary stream of the remote file from `offset`; `.raw` is the RemoteFile (its retries)."""
    return io.BufferedReader(RemoteFile(uri, settings, offset), buffer_size=1 << 20)
