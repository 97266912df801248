"""One subscriber's stored fields: read them, change them (``dripline subscriber set/show``).

Values are checked with the rules the CSV import applies (:mod:`._values`), so a value
set here cannot fail at send time for its data either. Conditional steps (``when``)
read the attributes when a step is due, so a change applies to every step not yet sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select, update

from ._attribute_names import STORED_FIELDS, attribute_key, attribute_name_problem
from ._csv import field_of
from ._engine import read_transaction, write_transaction
from ._models import Enrollment, Subscriber
from ._reports import NotSubscribedError
from ._values import (
    InvalidSubscriberError,
    check_country,
    check_name,
    check_value,
    derive_first_name,
    from_db_time,
    normalize_email,
)

__all__ = [
    "InvalidFieldError",
    "SubscriberProfile",
    "set_subscriber_fields",
    "subscriber_profile",
]

_S = Subscriber.__table__
_E = Enrollment.__table__
# Fields that are not attributes and cannot change here: the address is the identity,
# subscribed_at is consent evidence, and pending deliveries were timed in the zone.
_FIXED = {
    "email": "the address is the subscriber's identity (unsubscribe and subscribe anew)",
    "subscribed_at": "the subscription moment is consent evidence",
    "timezone": "pending deliveries were timed in the old zone",
    # Names `subscriber show --json` and the API answer use for what is not an attribute
    # (the one list the CSV import refuses as column names too).
    **STORED_FIELDS,
}


class InvalidFieldError(InvalidSubscriberError):
    """A value given for one field is refused; ``field`` is the key as it was given."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class SubscriberProfile:
    """A subscriber as stored: fields, custom attributes and the campaigns they are in."""

    email: str
    name: str
    first_name: str
    timezone: str | None
    status: str
    created_at: datetime | None  # aware UTC
    attributes: dict[str, Any] = field(default_factory=dict)
    campaigns: dict[str, str] = field(default_factory=dict)  # slug -> enrollment status

    def as_json(self) -> dict[str, object]:
        return {
            "email": self.email,
            "name": self.name,
            "first_name": self.first_name,
            "timezone": self.timezone,
            "status": self.status,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "attributes": dict(self.attributes),
            "campaigns": dict(self.campaigns),
        }


def subscriber_profile(engine: Engine, email: str) -> SubscriberProfile:
    """The stored subscriber ``email``. Raises :class:`NotSubscribedError` if unknown."""
    key = normalize_email(email).key
    with read_transaction(engine) as conn:
        row = conn.execute(select(_S).where(_S.c.email_key == key)).first()
        if row is None:
            raise NotSubscribedError(f"{email} is not a subscriber")
        campaigns = dict(
            conn.execute(
                select(_E.c.campaign, _E.c.status)
                .where(_E.c.subscriber_id == row.id)
                .order_by(_E.c.campaign)
            ).all()
        )
    return SubscriberProfile(
        email=row.email,
        name=row.name or "",
        first_name=row.first_name or "",
        timezone=row.timezone,
        status=row.status,
        created_at=from_db_time(row.created_at),
        attributes=dict(sorted((row.attributes or {}).items())),
        campaigns=campaigns,
    )


def _changes(
    values: Mapping[str, str],
) -> tuple[dict[str, str], dict[str, str | None], dict[str, str]]:
    """(standard fields, attributes; None removes one, how each attribute's key was
    written) from ``key=value`` pairs. Keys follow the CSV import's rule
    (:mod:`._attribute_names`): ``Plan Type=solo`` sets ``plan_type``. Two keys for one
    field or attribute (``plan`` and ``Plan``) are refused, naming both."""
    fields: dict[str, str] = {}
    attributes: dict[str, str | None] = {}
    written: dict[str, str] = {}
    given_as: dict[str, str] = {}
    for raw_key, value in values.items():
        try:
            key = field_of(raw_key) or attribute_key(raw_key)
            if key in given_as:
                raise InvalidSubscriberError(
                    f"{given_as[key]!r} and {raw_key!r} both name {key!r}; give it once"
                )
            given_as[key] = raw_key
            if key in _FIXED:
                raise InvalidSubscriberError(f"{key} cannot be changed: {_FIXED[key]}")
            if key in ("name", "first_name", "last_name"):
                fields[key] = check_name(value, key)
                continue
            if attribute_name_problem(key):
                # Perhaps a key stored before names were normalised: looked up in the
                # transaction (_stored_key), refused there if the subscriber has none.
                key = raw_key.strip()
            if key == "country":
                attributes[key] = check_country(value)
            else:
                attributes[key] = check_value(value, key) or None
            written[key] = raw_key
        except InvalidSubscriberError as err:
            # The API names the field in its answer (PATCH /api/subscribers/EMAIL).
            raise InvalidFieldError(err.message, field=raw_key) from err
    return fields, attributes, written


def _stored_key(key: str, raw_key: str, stored: Mapping[str, Any]) -> str:
    """The key to change: an odd one stored by an older import (``plan type``) as
    written, else ``key``. Raises InvalidFieldError for a name no rule can make."""
    for spelling in (raw_key.strip(), raw_key.strip().lower()):
        if spelling in stored:
            return spelling
    problem = attribute_name_problem(attribute_key(key))
    if problem:
        raise InvalidFieldError(f"{raw_key!r} {problem}", field=raw_key)
    return key


def set_subscriber_fields(
    engine: Engine, email: str, values: Mapping[str, str]
) -> SubscriberProfile:
    """Change ``email``'s name, first_name or attributes (an empty value removes one).

    One transaction; every value is checked first, so a bad one changes nothing.
    Raises :class:`NotSubscribedError` (unknown address) or :class:`InvalidFieldError`
    (an :class:`~._values.InvalidSubscriberError`: a value the CSV import would refuse).
    """
    key = normalize_email(email).key
    fields, attributes, written = _changes(values)
    with write_transaction(engine) as conn:
        # FOR UPDATE (PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises): two
        # changes at once (a CRM sync and the API) each merge into the other's result.
        row = conn.execute(
            select(_S.c.id, _S.c.name, _S.c.first_name, _S.c.attributes)
            .where(_S.c.email_key == key)
            .with_for_update()
        ).first()
        if row is None:
            raise NotSubscribedError(f"{email} is not a subscriber")
        stored = dict(row.attributes or {})
        for key, value in attributes.items():
            name = _stored_key(key, written[key], stored)
            if value is None:
                stored.pop(name, None)
            else:
                stored[name] = value
        new: dict[str, Any] = {"attributes": stored}
        if "last_name" in fields:
            last_name = fields.pop("last_name")
            if last_name:
                stored["last_name"] = last_name
            else:  # empty or null removes it, as for any attribute
                stored.pop("last_name", None)
        if "name" in fields:
            new["name"] = fields["name"]
            if "first_name" not in fields and not row.first_name:
                new["first_name"] = derive_first_name(fields["name"])
        if "first_name" in fields:
            new["first_name"] = fields["first_name"]
        conn.execute(update(_S).where(_S.c.id == row.id).values(**new))
    return subscriber_profile(engine, email)
