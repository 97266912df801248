"""The subscriber store: SQLAlchemy tables, Alembic migrations, enrollment and dispatch queries.

Open it with :func:`open_store` (it migrates the schema on first use); the
dispatcher talks to it through the narrow :class:`DeliveryQueue` protocol.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from ._bounce_models import BOUNCE_KINDS, COMPLAINT, HARD, SOFT, BounceEvent, Suppression
from ._bounce_reports import BOUNCE_RATE_LIMIT, COMPLAINT_RATE_LIMIT, BounceFigures, bounce_figures
from ._bounces import (
    BounceNotFoundError,
    BouncePolicy,
    BounceRecord,
    BounceReport,
    RecordedBounce,
    get_bounce,
    list_bounces,
    record_bounce,
    undo_bounce,
)
from ._consent import (
    ConfirmedSignup,
    SignupForm,
    SignupTicket,
    confirm_signup,
    enrolled_campaigns,
    forget_unconfirmed,
    pending_signup_campaign,
    request_signup,
    unsubscribe_by_key,
)
from ._consent_models import Consent, SignupRequest
from ._csv import CsvReadResult, RowProblem, SubscriberCsvError, read_subscriber_csv
from ._engine import StoreError, make_engine, read_transaction, write_transaction
from ._enroll import EnrollResult, NewSubscriber, subscribe
from ._enroll_bulk import enroll_many
from ._leases import DEFAULT_LEASE_SECONDS, ExpiredLeases
from ._maintenance import expire_leases, requeue_ambiguous
from ._migrate import current_revision, head_revision, upgrade
from ._models import (
    DELIVERY_STATUSES,
    SUBSCRIBER_STATUSES,
    CampaignRevision,
    Delivery,
    Enrollment,
    Subscriber,
)
from ._outcomes import Outcome, SettleResult
from ._profile import SubscriberProfile, set_subscriber_fields, subscriber_profile
from ._queue import ClaimedDelivery, DeliveryQueue, DeliveryStateError, SqlDeliveryQueue
from ._ratelimit import DatabaseRateLimit
from ._reports import (
    CampaignStatus,
    NotSubscribedError,
    SentMessage,
    StepStatus,
    TimelineEntry,
    campaign_status,
    subscriber_history,
    subscriber_timeline,
    unsubscribe,
)
from ._suppress import (
    SuppressedError,
    SuppressionEntry,
    add_suppression,
    export_suppressions,
    import_suppressions,
    list_suppressions,
    remove_suppression,
    suppression_for,
)
from ._values import (
    InvalidSubscriberError,
    NormalizedEmail,
    check_country,
    check_name,
    check_value,
    check_zone,
    country_of,
    derive_first_name,
    normalize_email,
    parse_moment,
    zone_warning,
)

__all__ = [
    "BOUNCE_KINDS",
    "BOUNCE_RATE_LIMIT",
    "COMPLAINT",
    "COMPLAINT_RATE_LIMIT",
    "DEFAULT_LEASE_SECONDS",
    "DELIVERY_STATUSES",
    "HARD",
    "SOFT",
    "SUBSCRIBER_STATUSES",
    "BounceEvent",
    "BounceFigures",
    "BounceNotFoundError",
    "BouncePolicy",
    "BounceRecord",
    "BounceReport",
    "CampaignRevision",
    "CampaignStatus",
    "ClaimedDelivery",
    "ConfirmedSignup",
    "Consent",
    "CsvReadResult",
    "DatabaseRateLimit",
    "Delivery",
    "DeliveryQueue",
    "DeliveryStateError",
    "EnrollResult",
    "Enrollment",
    "ExpiredLeases",
    "InvalidSubscriberError",
    "NewSubscriber",
    "NormalizedEmail",
    "NotSubscribedError",
    "Outcome",
    "RecordedBounce",
    "RowProblem",
    "SentMessage",
    "SettleResult",
    "SignupForm",
    "SignupRequest",
    "SignupTicket",
    "SqlDeliveryQueue",
    "StepStatus",
    "StoreError",
    "Subscriber",
    "SubscriberCsvError",
    "SubscriberProfile",
    "SuppressedError",
    "Suppression",
    "SuppressionEntry",
    "TimelineEntry",
    "add_suppression",
    "bounce_figures",
    "campaign_status",
    "check_country",
    "check_name",
    "check_value",
    "check_zone",
    "confirm_signup",
    "country_of",
    "current_revision",
    "derive_first_name",
    "enroll_many",
    "enrolled_campaigns",
    "expire_leases",
    "export_suppressions",
    "forget_unconfirmed",
    "get_bounce",
    "head_revision",
    "import_suppressions",
    "list_bounces",
    "list_suppressions",
    "make_engine",
    "normalize_email",
    "open_store",
    "parse_moment",
    "pending_signup_campaign",
    "read_subscriber_csv",
    "read_transaction",
    "record_bounce",
    "remove_suppression",
    "request_signup",
    "requeue_ambiguous",
    "set_subscriber_fields",
    "subscribe",
    "subscriber_history",
    "subscriber_profile",
    "subscriber_timeline",
    "suppression_for",
    "undo_bounce",
    "unsubscribe",
    "unsubscribe_by_key",
    "upgrade",
    "write_transaction",
    "zone_warning",
]


def open_store(url: str, *, migrate: bool = True, campaigns_dir: Path | None = None) -> Engine:
    """An engine on ``url`` with the schema brought up to date (unless ``migrate`` is off).

    ``campaigns_dir`` (the project's ``campaigns/``) is read by migrations that map
    existing rows onto the campaign files.
    """
    engine = make_engine(url)
    if migrate:
        upgrade(engine, campaigns_dir)
    return engine
