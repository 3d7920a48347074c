"""Push a service's OCI image layout to a registry byte for byte (OCI distribution API v2).

`docker push` re-encodes an image (new manifest and layer digests, one platform per tag), so osless
talks to the registry itself and sends the layout's files unchanged: the digest the registry gives the
tag is the local index digest, `sha256` of `index.json`.

Order: every blob the manifests reference (configs, layers) is uploaded unless the registry already
has it (`HEAD`, then `POST` + monolithic `PUT`); then each platform manifest by digest (children of
nested indexes first); then the index under the tag. Every upload is checked against the digest the
registry reports (`Docker-Content-Digest`).

Transport: plain http for 127.0.0.1, localhost and [::1] (or any registry with `insecure`), https
otherwise. Authentication: none, HTTP basic, or a Bearer token from the registry's `WWW-Authenticate`
challenge; credentials come from the docker config's inline `auths` (`docker login` without a
credential helper). Credential helpers (`credsStore`, `credHelpers`) and identity tokens are not
supported.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urljoin

import requests

from orchestrator.errors import RegistryError, UsageError
from orchestrator.image import oci
from orchestrator.platforms import platform_name

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
DEFAULT_TIMEOUT = 60.0  # seconds without a byte from the registry before giving up

# https://github.com/distribution/reference/blob/main/reference.go
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_HOSTNAME = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
)
_PORT = re.compile(r"[0-9]{1,5}")
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
_REFERENCE_HINT = "e.g. --to 127.0.0.1:5000/team/hello-go:v1 (REGISTRY/REPO[:TAG], REGISTRY a host[:port])"

# Docker Hub's name, its API host, and the key `docker login` stores its credentials under.
_DOCKER_HUB = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
_DOCKER_HUB_API = "registry-1.docker.io"
_DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"


@dataclass(frozen=True, kw_only=True)
class Reference:
    """Where to push: `registry/repository[:tag]`, the registry as written (host[:port])."""

    registry: str
    repository: str
    tag: str | None = None

    @property
    def host(self) -> str:
        """The host name or address alone, without port or IPv6 brackets."""
        if self.registry.startswith("["):
            return self.registry[1 : self.registry.index("]")]
        return self.registry.split(":")[0]

    @property
    def api_host(self) -> str:
        """The host[:port] the API lives on (Docker Hub's differs from its name)."""
        return _DOCKER_HUB_API if self.registry in _DOCKER_HUB else self.registry

    def with_tag(self, tag: str) -> Reference:
        return Reference(registry=self.registry, repository=self.repository, tag=tag)

    def __str__(self) -> str:
        return f"{self.registry}/{self.repository}" + (f":{self.tag}" if self.tag else "")


def parse_reference(text: str) -> Reference:
    """`REGISTRY/REPO[:TAG]` checked as Docker would; anything else is a usage error with an example."""
    if "@" in text:
        raise UsageError(f"cannot push to a digest reference {text!r}: give a tag", hint=_REFERENCE_HINT)
    registry, slash, rest = text.partition("/")
    if not slash or not rest:
        raise UsageError(f"{text!r} names no registry and repository", hint=_REFERENCE_HINT)
    if not is_registry(registry):
        raise UsageError(
            f"{registry!r} in {text!r} is not a registry host",
            hint="the first part must be a host: it needs a '.' or a ':port', or be localhost; "
            + _REFERENCE_HINT,
        )
    repository, tag = rest, None
    last = rest.rsplit("/", 1)[-1]
    if ":" in last:
        repository, tag = rest.rsplit(":", 1)
        if not _TAG.fullmatch(tag):
            raise UsageError(
                f"{tag!r} is not a valid tag",
                hint="letters, digits, '_', '.' and '-', at most 128, not starting with '.' or '-'",
            )
    if not _REPOSITORY.fullmatch(repository):
        raise UsageError(
            f"{repository!r} is not a valid repository name",
            hint="lowercase letters and digits, separated by '.', '_', '__', '-' or '/', e.g. team/hello-go",
        )
    return Reference(registry=registry, repository=repository, tag=tag)


def is_registry(text: str) -> bool:
    """A Docker-style registry part: a host with a '.' or a port, an IPv6 literal, or localhost."""
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](?::([0-9]+))?|([^:]+)(?::([^:]+))?", text)
    if not match:
        return False
    ipv6, ipv6_port, host, port = match.groups()
    chosen_port = ipv6_port if ipv6 else port
    if chosen_port is not None and not (_PORT.fullmatch(chosen_port) and 0 < int(chosen_port) < 65536):
        return False
    if ipv6:
        return ":" in ipv6
    return bool(_HOSTNAME.fullmatch(host)) and ("." in host or port is not None or host == "localhost")


@dataclass(frozen=True, kw_only=True)
class Credentials:
    username: str
    password: str


def docker_config_path() -> Path:
    """`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`, where `docker login` writes."""
    directory = os.environ.get("DOCKER_CONFIG")
    return Path(directory) / "config.json" if directory else Path.home() / ".docker" / "config.json"


def _docker_config(path: Path) -> dict[str, Any]:
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _auth_key(key: str) -> str:
    """`https://host:port/v1/` and `host:port` name the same registry in a docker config."""
    return re.sub(r"^[a-z]+://", "", key).split("/")[0]


def docker_credentials(reference: Reference, config_path: Path | None = None) -> Credentials | None:
    """The inline credentials `docker login` stored for this registry, if any."""
    config = _docker_config(config_path or docker_config_path())
    auths = config.get("auths")
    if not isinstance(auths, dict):
        return None
    wanted = {_auth_key(_DOCKER_HUB_AUTH_KEY)} | _DOCKER_HUB if reference.registry in _DOCKER_HUB else set()
    wanted.add(reference.registry)
    for key, entry in auths.items():
        if _auth_key(key) not in wanted or not isinstance(entry, dict):
            continue
        if isinstance(entry.get("auth"), str) and entry["auth"]:
            try:
                username, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                continue
            return Credentials(username=username, password=password)
        if isinstance(entry.get("username"), str) and isinstance(entry.get("password"), str):
            return Credentials(username=entry["username"], password=entry["password"])
    return None


def _credential_helper(reference: Reference, config_path: Path | None) -> str | None:
    """The credential helper the docker config names for this registry (which osless cannot use)."""
    config = _docker_config(config_path or docker_config_path())
    helpers = config.get("credHelpers")
    if isinstance(helpers, dict):
        for key, helper in helpers.items():
            if _auth_key(key) == reference.registry and isinstance(helper, str):
                return helper
    store = config.get("credsStore")
    return store if isinstance(store, str) and store else None


@dataclass(frozen=True, kw_only=True)
class _Item:
    """One thing to push: a blob or a manifest, and where its bytes are in the layout."""

    digest: str
    media_type: str
    size: int
    path: Path
    what: str  # "config linux/amd64", "layer linux/amd64", "manifest linux/amd64", ...


@dataclass(frozen=True, kw_only=True)
class _Plan:
    blobs: list[_Item]  # configs and layers, each digest once
    manifests: list[_Item]  # in push order: what a manifest refers to comes before it
    index: bytes
    index_media_type: str

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.index).hexdigest()


def _plan(layout: Path) -> _Plan:
    """What the layout holds, in push order; refuses a layout that `oci.verify_layout` rejects."""
    if not (layout / "index.json").is_file():
        raise UsageError(f"{layout} holds no OCI image layout (no index.json)")
    problems = oci.verify_layout(layout)
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise RegistryError(
            f"refusing to push the broken layout {layout}: {shown}",
            hint="rebuild it with `osless build --rebuild SERVICE`",
        )
    index = (layout / "index.json").read_bytes()
    document = json.loads(index)
    blobs: dict[str, _Item] = {}
    manifests: dict[str, _Item] = {}

    def item(descriptor: dict[str, Any], what: str) -> _Item:
        digest = str(descriptor["digest"])
        return _Item(
            digest=digest,
            media_type=str(descriptor["mediaType"]),
            size=int(descriptor["size"]),
            path=layout / oci.BLOBS_DIR / digest.removeprefix("sha256:"),
            what=what,
        )

    def walk(index_document: dict[str, Any]) -> None:
        for descriptor in index_document.get("manifests") or []:
            platform = platform_name(descriptor.get("platform") or {})
            entry = item(descriptor, f"{platform or 'nested'} manifest")
            child = json.loads(entry.path.read_bytes())
            if entry.media_type == oci.MEDIA_TYPE_INDEX:
                walk(child)
            else:
                config = item(child["config"], f"{platform} config")
                blobs.setdefault(config.digest, config)
                for layer in child.get("layers") or []:
                    blob = item(layer, f"{platform} layer")
                    blobs.setdefault(blob.digest, blob)
            manifests.setdefault(entry.digest, entry)

    walk(document)
    # Blobs the index names by annotation (the SBOM) travel with the image too.
    annotations = document.get("annotations") or {}
    for digest_key, media_type_key in oci.ANNOTATED_BLOBS.items():
        if digest_key in annotations:
            digest = str(annotations[digest_key])
            path = layout / oci.BLOBS_DIR / digest.removeprefix("sha256:")
            descriptor = {
                "digest": digest,
                "mediaType": annotations[media_type_key],
                "size": path.stat().st_size,
            }
            blobs.setdefault(digest, item(descriptor, "SBOM"))
    return _Plan(
        blobs=list(blobs.values()),
        manifests=list(manifests.values()),
        index=index,
        index_media_type=str(document.get("mediaType") or oci.MEDIA_TYPE_INDEX),
    )


@dataclass(frozen=True, kw_only=True)
class Transfer:
    """One blob or manifest, uploaded or already present in the registry (for progress lines)."""

    kind: Literal["blob", "manifest"]
    what: str
    digest: str
    size: int
    uploaded: bool


@dataclass(frozen=True, kw_only=True)
class PushResult:
    """What a push did; `digest` is the tag's digest in the registry, equal to the local index digest."""

    reference: Reference
    digest: str
    platforms: int
    transfers: tuple[Transfer, ...]

    def _count(self, kind: str, uploaded: bool) -> list[Transfer]:
        return [t for t in self.transfers if t.kind == kind and t.uploaded == uploaded]

    @property
    def blobs_uploaded(self) -> int:
        return len(self._count("blob", True))

    @property
    def bytes_uploaded(self) -> int:
        return sum(t.size for t in self._count("blob", True))

    @property
    def blobs_skipped(self) -> int:
        return len(self._count("blob", False))

    @property
    def bytes_skipped(self) -> int:
        return sum(t.size for t in self._count("blob", False))

    @property
    def manifests_uploaded(self) -> int:
        return len(self._count("manifest", True))

    @property
    def manifests_skipped(self) -> int:
        return len(self._count("manifest", False))


class _Client:
    """HTTP to one repository of one registry, with the authentication it asks for."""

    def __init__(
        self,
        reference: Reference,
        *,
        insecure: bool,
        credentials: Credentials | None,
        credential_helper: str | None,
        timeout: float,
    ) -> None:
        self.reference = reference
        scheme = "http" if insecure or reference.host in LOOPBACK_HOSTS else "https"
        self.base = f"{scheme}://{reference.api_host}"
        self.credentials = credentials
        self.credential_helper = credential_helper
        self.timeout = timeout
        self.authenticated = False
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "osless"

    def close(self) -> None:
        self.session.close()

    def repo_url(self, path: str) -> str:
        return f"{self.base}/v2/{self.reference.repository}/{path}"

    def send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """One request, authenticated as the registry's first 401 challenge asks, then sent again."""
        response = self._request(method, url, **kwargs)
        if response.status_code == 401 and not self.authenticated:
            self.authenticate(response.headers.get("WWW-Authenticate", ""))
            body = kwargs.get("data")
            if isinstance(body, io.IOBase):
                body.seek(0)
            response = self._request(method, url, **kwargs)
        return response

    def _request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """One request; a connection problem becomes a RegistryError that says what to check."""
        try:
            return self.session.request(method, url, timeout=self.timeout, allow_redirects=True, **kwargs)
        except requests.exceptions.SSLError as error:
            raise RegistryError(
                f"TLS with {self.reference.registry} failed: {_reason(error)}",
                hint="if the registry speaks plain http, pass --insecure",
            ) from error
        except requests.exceptions.ConnectionError as error:
            raise RegistryError(
                f"cannot reach the registry at {self.base}: {_reason(error)}",
                hint="is the registry running and is REGISTRY in --to right (host[:port])?"
                + ("" if self.base.startswith("http:") else " For a plain-http registry pass --insecure."),
            ) from error
        except requests.exceptions.Timeout as error:
            raise RegistryError(
                f"the registry at {self.base} did not answer within {self.timeout:g} s",
                hint="check the registry and the network",
            ) from error
        except requests.exceptions.RequestException as error:
            raise RegistryError(f"{method} {url} failed: {_reason(error)}") from error

    def login(self) -> None:
        """`GET /v2/`: checks that it is a registry, and authenticates when it asks."""
        response = self.send("GET", f"{self.base}/v2/")
        if response.status_code == 401:
            raise self.failure(response, "check the credentials (`docker login`)")
        if response.status_code != 200:
            raise self.failure(response, "is this an OCI distribution (v2) registry?")

    def authenticate(self, challenge: str) -> None:
        """HTTP basic or a Bearer token, as the `WWW-Authenticate` challenge asks; others are refused."""
        self.authenticated = True
        scheme = challenge.split(" ", 1)[0].lower()
        if scheme == "basic":
            credentials = self.need_credentials()
            self.session.auth = (credentials.username, credentials.password)
        elif scheme == "bearer":
            self.session.headers["Authorization"] = f"Bearer {self.token(challenge)}"
        else:
            raise RegistryError(
                f"{self.reference.registry} asks for {scheme or 'an unnamed'} authentication "
                f"({challenge or 'no WWW-Authenticate header'})",
                hint="osless supports no authentication, HTTP basic and Bearer tokens",
            )

    def need_credentials(self) -> Credentials:
        if self.credentials is not None:
            return self.credentials
        helper = (
            f"; the docker config names the credential helper {self.credential_helper!r}, "
            "which osless does not support"
            if self.credential_helper
            else ""
        )
        raise RegistryError(
            f"{self.reference.registry} requires a login and no credentials were found{helper}",
            hint=f"store inline credentials in {docker_config_path()} "
            f'("auths": {{"{self.reference.registry}": {{"auth": base64 of user:password}}}}), '
            "e.g. `docker login` without a credsStore",
        )

    def token(self, challenge: str) -> str:
        """A Bearer token for pull and push on the repository, from the challenge's realm."""
        params = dict(_CHALLENGE_PARAM.findall(challenge))
        realm = params.get("realm")
        if not realm:
            raise RegistryError(f"{self.reference.registry} sent a Bearer challenge without a realm")
        query = {"scope": f"repository:{self.reference.repository}:pull,push"}
        if "service" in params:
            query["service"] = params["service"]
        auth = (self.credentials.username, self.credentials.password) if self.credentials else None
        try:
            response = requests.get(realm, params=query, auth=auth, timeout=self.timeout)
        except requests.exceptions.RequestException as error:
            raise RegistryError(f"cannot get a token from {realm}: {_reason(error)}") from error
        if response.status_code != 200:
            if auth is None:
                self.need_credentials()
            raise RegistryError(
                f"the token service {realm} refused: HTTP {response.status_code}",
                hint="check the credentials with `docker login`",
            )
        try:
            body = response.json()
            token = body.get("token") or body.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"the token service {realm} answered without a token")
        return token

    def failure(self, response: requests.Response, hint: str | None = None) -> RegistryError:
        """The registry's own error codes and messages, on one line."""
        request = response.request
        path = (request.path_url or "").split("?")[0] if request else ""
        detail = _registry_errors(response)
        message = f"{request.method if request else ''} {path}: HTTP {response.status_code}"
        message += f" {detail}" if detail else f" {response.reason}"
        if response.status_code == 401 and hint is None:
            hint = "the registry wants credentials: `docker login` (inline auths) or check them"
        elif response.status_code == 403 and hint is None:
            hint = f"the credentials may not push to {self.reference.repository}"
        return RegistryError(f"{self.reference.registry} refused {message.strip()}", hint=hint)

    def has_blob(self, digest: str) -> bool:
        response = self.send("HEAD", self.repo_url(f"blobs/{digest}"))
        if response.status_code in (200, 404):
            return response.status_code == 200
        raise self.failure(response)

    def upload_blob(self, blob: _Item) -> None:
        """`POST` an upload session, then one `PUT` with all the bytes (a monolithic upload)."""
        started = self.send("POST", self.repo_url("blobs/uploads/"))
        location = started.headers.get("Location")
        if started.status_code != 202 or not location:
            raise self.failure(started)
        with blob.path.open("rb") as body:
            finished = self.send(
                "PUT",
                urljoin(started.url, location),
                params={"digest": blob.digest},
                data=body,
                headers={"Content-Type": "application/octet-stream"},
            )
        if finished.status_code != 201:
            raise self.failure(finished)
        self.check_digest(finished.headers.get("Docker-Content-Digest"), blob.digest, f"blob {blob.what}")

    def has_manifest(self, digest: str, media_type: str) -> bool:
        response = self.send("HEAD", self.repo_url(f"manifests/{digest}"), headers={"Accept": media_type})
        if response.status_code in (200, 404):
            return response.status_code == 200
        raise self.failure(response)

    def put_manifest(self, reference: str, data: bytes, media_type: str, digest: str, what: str) -> None:
        response = self.send(
            "PUT", self.repo_url(f"manifests/{reference}"), data=data, headers={"Content-Type": media_type}
        )
        if response.status_code not in (200, 201):
            raise self.failure(response)
        got = response.headers.get("Docker-Content-Digest")
        if got is None:  # not every registry says; then ask for what it stored
            stored = self.send("GET", self.repo_url(f"manifests/{reference}"), headers={"Accept": media_type})
            if stored.status_code != 200:
                raise self.failure(stored)
            got = stored.headers.get("Docker-Content-Digest")
            got = got or "sha256:" + hashlib.sha256(stored.content).hexdigest()
        self.check_digest(got, digest, what)

    def check_digest(self, got: str | None, expected: str, what: str) -> None:
        if got is not None and got != expected:
            raise RegistryError(
                f"{self.reference.registry} stored {what} as {got}, but its local digest is {expected}",
                hint="the registry (or a proxy) changed the bytes; the pushed image is not the built one",
            )


def _reason(error: Exception) -> str:
    """The innermost reason of a requests error, without urllib3's object addresses."""
    text = str(error.args[0]) if error.args else str(error)
    match = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)|(Connection refused|Name or service not known)", text)
    if match:
        return next(group for group in match.groups() if group)
    return re.sub(r"<[^>]*object at 0x[0-9a-f]+>:?\s*", "", text)


def _registry_errors(response: requests.Response) -> str:
    """`CODE: message` for each error in an OCI distribution error body."""
    try:
        errors = response.json().get("errors") or []
    except (ValueError, AttributeError):
        return ""
    parts = [
        f"{error.get('code', '?')}: {error.get('message', '')}".rstrip(": ")
        for error in errors
        if isinstance(error, dict)
    ]
    return "; ".join(parts)


def push(
    layout: Path,
    target: Reference,
    *,
    insecure: bool = False,
    credentials: Credentials | None = None,
    config_path: Path | None = None,
    progress: Callable[[Transfer], None] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> PushResult:
    """Push the OCI layout at `layout` to `target` (which must have a tag) exactly as it is.

    Credentials default to those in the docker config. Raises RegistryError on any failure, UsageError
    when there is no layout.
    """
    if not target.tag:
        raise UsageError(f"{target} has no tag", hint=_REFERENCE_HINT)
    plan = _plan(layout)
    client = _Client(
        target,
        insecure=insecure,
        credentials=credentials or docker_credentials(target, config_path),
        credential_helper=_credential_helper(target, config_path),
        timeout=timeout,
    )
    transfers: list[Transfer] = []

    def report(kind: Literal["blob", "manifest"], item: _Item, uploaded: bool) -> None:
        transfer = Transfer(kind=kind, what=item.what, digest=item.digest, size=item.size, uploaded=uploaded)
        transfers.append(transfer)
        if progress:
            progress(transfer)

    try:
        client.login()
        for blob in plan.blobs:
            present = client.has_blob(blob.digest)
            if not present:
                client.upload_blob(blob)
            report("blob", blob, uploaded=not present)
        for manifest in plan.manifests:
            present = client.has_manifest(manifest.digest, manifest.media_type)
            if not present:
                data = manifest.path.read_bytes()
                client.put_manifest(
                    manifest.digest, data, manifest.media_type, manifest.digest, manifest.what
                )
            report("manifest", manifest, uploaded=not present)
        client.put_manifest(target.tag, plan.index, plan.index_media_type, plan.digest, f"index {target}")
    finally:
        client.close()
    platforms = sum(1 for item in plan.manifests if item.media_type == oci.MEDIA_TYPE_MANIFEST)
    return PushResult(reference=target, digest=plan.digest, platforms=platforms, transfers=tuple(transfers))


# The pull side and small artifacts: what the shared result cache (pipeline/remote_cache.py) needs.
# Nothing read is trusted: every blob is streamed to a file with its size capped and its sha256 checked
# against the digest that names it, and a manifest is read only up to MANIFEST_LIMIT bytes.

MANIFEST_LIMIT = 4 * 1024**2  # bytes: no manifest osless writes comes near this
_CHUNK = 1 << 20


@dataclass(frozen=True, kw_only=True)
class ArtifactFile:
    """One blob of an artifact: a file sent as it is, its descriptor's media type and annotations."""

    path: Path
    media_type: str
    annotations: dict[str, str]


class Repository:
    """One repository of a registry: manifests read by tag, blobs read into files, artifacts pushed.

    One HTTP session per object, closed by `close` (or the with-block): a thread opens its own.
    Credentials come from the docker config, as for `push`.
    """

    def __init__(
        self,
        reference: Reference,
        *,
        insecure: bool = False,
        config_path: Path | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.reference = reference
        self._client = _Client(
            reference,
            insecure=insecure,
            credentials=docker_credentials(reference, config_path),
            credential_helper=_credential_helper(reference, config_path),
            timeout=timeout,
        )

    def __enter__(self) -> Repository:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def login(self) -> None:
        """Checks that the registry answers as one, authenticating when it asks (RegistryError if not)."""
        self._client.login()

    def has_manifest(self, tag: str) -> bool:
        return self._client.has_manifest(tag, oci.MEDIA_TYPE_MANIFEST)

    def manifest(self, tag: str, limit: int = MANIFEST_LIMIT) -> tuple[bytes, str] | None:
        """The manifest under `tag` and its digest (sha256 of the bytes read), or None when the
        repository has no such tag. A body over `limit` bytes, or a registry that names it by another
        digest, is a RegistryError."""
        url = self._client.repo_url(f"manifests/{tag}")
        response = self._client.send("GET", url, headers={"Accept": oci.MEDIA_TYPE_MANIFEST}, stream=True)
        with response:
            if response.status_code == 404:
                return None
            if response.status_code != 200:
                raise self._client.failure(response)
            data = self._read_capped(response, limit, f"the manifest {tag}")
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self._client.check_digest(response.headers.get("Docker-Content-Digest"), digest, f"manifest {tag}")
        return data, digest

    def blob(self, digest: str, size: int, into: Path) -> None:
        """The blob `digest` written to the new file `into`, streamed; more or fewer bytes than `size`,
        or bytes that do not hash to `digest`, are a RegistryError (and the file is removed)."""
        if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
            raise RegistryError(f"{self.reference} names a blob by {digest!r}, not a sha256 digest")
        response = self._client.send("GET", self._client.repo_url(f"blobs/{digest}"), stream=True)
        with response:
            if response.status_code != 200:
                raise self._client.failure(response)
            hashed, written = hashlib.sha256(), 0
            try:
                with into.open("xb") as stream:
                    for chunk in response.iter_content(_CHUNK):
                        written += len(chunk)
                        if written > size:
                            raise RegistryError(
                                f"{self.reference}: blob {digest} is bigger than {size} bytes"
                            )
                        hashed.update(chunk)
                        stream.write(chunk)
                if written != size:
                    raise RegistryError(f"{self.reference}: blob {digest} has {written} bytes, not {size}")
                if "sha256:" + hashed.hexdigest() != digest:
                    raise RegistryError(f"{self.reference}: blob {digest} holds other bytes (sha256 differs)")
            except requests.exceptions.RequestException as error:
                into.unlink(missing_ok=True)
                raise RegistryError(
                    f"reading blob {digest} from {self.reference} failed: {_reason(error)}"
                ) from error
            except BaseException:
                into.unlink(missing_ok=True)
                raise

    def push_artifact(
        self, tag: str, *, artifact_type: str, config: ArtifactFile, layers: list[ArtifactFile]
    ) -> str:
        """An OCI manifest over `config` and `layers` (blobs the registry lacks uploaded first) put under
        `tag`; returns the manifest's digest. The manifest names `artifact_type` and is also a plain
        image manifest with a custom config media type, which registries without artifact support
        store as well."""
        descriptors = []
        for index, file in enumerate([config, *layers]):
            digest, size = oci.file_digest(file.path)
            what = "config" if index == 0 else f"file {index}"
            item = _Item(digest=digest, media_type=file.media_type, size=size, path=file.path, what=what)
            if not self._client.has_blob(digest):
                self._client.upload_blob(item)
            descriptor: dict[str, Any] = {"mediaType": file.media_type, "digest": digest, "size": size}
            if file.annotations:
                descriptor["annotations"] = file.annotations
            descriptors.append(descriptor)
        manifest = oci.canonical_json(
            {
                "schemaVersion": 2,
                "mediaType": oci.MEDIA_TYPE_MANIFEST,
                "artifactType": artifact_type,
                "config": descriptors[0],
                "layers": descriptors[1:],
            }
        )
        digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        self._client.put_manifest(tag, manifest, oci.MEDIA_TYPE_MANIFEST, digest, f"manifest {tag}")
        return digest

    def _read_capped(self, response: requests.Response, limit: int, what: str) -> bytes:
        data = bytearray()
        try:
            for chunk in response.iter_content(_CHUNK):
                data += chunk
                if len(data) > limit:
                    raise RegistryError(f"{self.reference}: {what} is bigger than {limit} bytes")
        except requests.exceptions.RequestException as error:
            raise RegistryError(f"reading {what} from {self.reference} failed: {_reason(error)}") from error
        return bytes(data)
