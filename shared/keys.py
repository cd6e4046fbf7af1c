"""API keys: creating, authenticating, listing and revoking them (the ApiKey row is in shared/models.py).

A key is a high-entropy random token with a recognisable prefix (``f3d_``, like Stripe's ``sk_live_``) so leaked keys
are easy to spot in logs and by secret scanners. Only its SHA-256 is stored: a random 256-bit token needs no slow
password hash, and the lookup by hash stays an index hit. The token and the key's webhook signing secret are shown
once, at creation; the secret is stored in clear because the workers sign with it.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass

import sqlalchemy as sa

from face3d.shared.db import SessionFactory, get_row, utcnow
from face3d.shared.errors import NotFound
from face3d.shared.models import ApiKey

TOKEN_PREFIX = "f3d_"
TOKEN_BYTES = 32
SHOWN_PREFIX_CHARS = len(TOKEN_PREFIX) + 8


@dataclass(frozen=True)
class CreatedKey:
    """What `create_key` hands back: the row and the two secrets that are never shown again."""

    key: ApiKey
    token: str
    webhook_secret: str


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_webhook_secret() -> str:
    """Standard Webhooks format: ``whsec_`` + base64 of the HMAC key bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def create_key(sf: SessionFactory, *, name: str = "", admin: bool = False) -> CreatedKey:
    token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    secret = new_webhook_secret()
    key = ApiKey(id=uuid.uuid4().hex, name=name[:100], prefix=token[:SHOWN_PREFIX_CHARS], token_hash=hash_token(token),
                 webhook_secret=secret, is_admin=admin, created_at=utcnow(), revoked_at=None)
    with sf.begin() as session:
        session.add(key)
    return CreatedKey(key, token, secret)


def authenticate(sf: SessionFactory, token: str) -> ApiKey | None:
    """The active key whose token this is, or None (unknown, malformed or revoked)."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    digest = hash_token(token)
    with sf() as session:
        key = session.scalars(sa.select(ApiKey).where(ApiKey.token_hash == digest)).one_or_none()
    # The index lookup already matched; compare again in constant time so no code path branches on a partial match.
    if key is None or not hmac.compare_digest(key.token_hash, digest) or not key.is_active:
        return None
    return key


def list_keys(sf: SessionFactory, *, include_revoked: bool = True) -> list[ApiKey]:
    query = sa.select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)
    if not include_revoked:
        query = query.where(ApiKey.revoked_at.is_(None))
    with sf() as session:
        return list(session.scalars(query))


def get_key(sf: SessionFactory, key_id: str) -> ApiKey:
    return get_row(sf, ApiKey, key_id, f"API key {key_id}")


def revoke_key(sf: SessionFactory, id_or_prefix: str) -> ApiKey:
    """Revoke by id or by the shown prefix (``f3d_abcd1234``); revoking twice keeps the first time."""
    with sf.begin() as session:
        matches = list(session.scalars(sa.select(ApiKey).where(
            sa.or_(ApiKey.id == id_or_prefix, ApiKey.prefix == id_or_prefix))))
        if len(matches) != 1:
            raise NotFound(f"no single API key has id or prefix {id_or_prefix!r}")
        key = matches[0]
        if key.revoked_at is None:
            key.revoked_at = utcnow()
        session.flush()
        session.expunge(key)
    return key


def count_active_keys(sf: SessionFactory) -> int:
    with sf() as session:
        return int(session.scalar(sa.select(sa.func.count()).select_from(ApiKey)
                                  .where(ApiKey.revoked_at.is_(None))) or 0)
