"""API keys for the adapter service: hashed at rest, with roles and intersection scopes.

A keys file is JSON: ``[{"name": "cab-17", "role": "adapter", "key_sha256": "...",
"intersections": ["A*", "B12"]}, ...]``. Only the sha256 of each key is stored; ``new_key``
makes a random key and its record. ``intersections`` are fnmatch patterns (a region);
ingest and engineer keys default to every intersection.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

from fastapi import HTTPException
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from signalopt.errors import InputError

Role = Literal["adapter", "ingest", "engineer"]


class ApiKey(BaseModel):
    """One API key as stored: a name for the audit log, the key's sha256, role and scope."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    role: Role
    key_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    intersections: tuple[str, ...] = ("*",)


def hash_key(raw: str) -> str:
    """sha256 hex digest of a raw key (what the keys file stores)."""
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def new_key(name: str, role: Role, intersections: Sequence[str] = ("*",)) -> tuple[str, ApiKey]:
    """A fresh random key (shown once) and the hashed record to store."""
    raw = f"so_{role[:3]}_{secrets.token_urlsafe(24)}"
    return raw, ApiKey(name=name, role=role, key_sha256=hash_key(raw),
                       intersections=tuple(intersections))


def load_keys(path: Path) -> list[ApiKey]:
    """Read a keys file; the error names the file and the bad entry."""
    try:
        data = json.loads(Path(path).read_text())
        return TypeAdapter(list[ApiKey]).validate_python(data)
    except (OSError, json.JSONDecodeError, ValidationError) as exc:
        msg = f"keys file {path}: {exc}"
        raise InputError(msg) from exc


def write_keys(path: Path, keys: Iterable[ApiKey]) -> None:
    """Write hashed key records as JSON (never raw keys)."""
    Path(path).write_text(json.dumps([k.model_dump(mode="json") for k in keys], indent=2))


def _expand(patterns: Sequence[str], ids: set[str]) -> set[str]:
    """Intersection ids matched by fnmatch ``patterns`` (plain ids skip the pattern scan)."""
    out: set[str] = set()
    for pat in patterns:
        if any(ch in pat for ch in "*?["):
            out.update(i for i in ids if fnmatch.fnmatchcase(i, pat))
        elif pat in ids:
            out.add(pat)
    return out


class Authenticator:
    """Resolves a raw key to its record and checks role and intersection scope.

    Scopes are expanded once against the network's intersection ids, so a request costs a
    hash and two set lookups.
    """

    def __init__(self, keys: Sequence[ApiKey], intersection_ids: Sequence[str]) -> None:
        self._by_hash = {k.key_sha256: k for k in keys}
        ids = set(intersection_ids)
        self._scope = {k.key_sha256: _expand(k.intersections, ids) for k in keys}

    def authenticate(self, raw: str | None) -> ApiKey:
        """The key's record, or 401 (missing or unknown key)."""
        if not raw:
            raise HTTPException(401, "missing API key: send it in the X-API-Key header",
                                headers={"WWW-Authenticate": "ApiKey"})
        digest = hash_key(raw)
        key = self._by_hash.get(digest)
        if key is None or not hmac.compare_digest(key.key_sha256, digest):
            raise HTTPException(401, "unknown API key", headers={"WWW-Authenticate": "ApiKey"})
        return key

    def authorize(self, key: ApiKey, roles: Iterable[str], intersection: str | None) -> None:
        """403 unless ``key`` has one of ``roles`` and (adapters) covers ``intersection``."""
        roles = tuple(roles)
        if key.role not in roles:
            raise HTTPException(403, f"key {key.name!r} has role {key.role!r}; this needs "
                                     f"{' or '.join(roles)}")
        if key.role == "adapter" and intersection is not None \
                and intersection not in self._scope[key.key_sha256]:
            raise HTTPException(403, f"key {key.name!r} may not access intersection "
                                     f"{intersection!r} (outside its region)")
