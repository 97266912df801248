"""The subscriber store: SQLAlchemy tables, Alembic migrations, enrollment and dispatch queries.

Open it with :func:`open_store` (it migrates the schema on first use); the
dispatcher talks to it through the narrow :class:`DeliveryQueue` protocol.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.exc import DatabaseError

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
from ._experiments import (
    Decision,
    KeyTally,
    StoredWinner,
    VariantTally,
    experiment_winners,
    judge_experiment,
    legacy_number,
    subject_key,
    variant_tallies,
)
from ._goals import (
    CampaignUnavailableError,
    EventBeforeEnrollmentError,
    EventIdConflictError,
    RecordedEvent,
    record_event,
)
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
from ._outcomes import AttemptVariant, Outcome, SettleResult
from ._profile import (
    InvalidFieldError,
    SubscriberProfile,
    set_subscriber_fields,
    subscriber_profile,
)
from ._queue import ClaimedDelivery, DeliveryQueue, DeliveryStateError, SqlDeliveryQueue
from ._ratelimit import DatabaseRateLimit
from ._reports import (
    CampaignStatus,
    NotSubscribedError,
    SentMessage,
    StepStatus,
    TimelineEntry,
    campaign_status,
    enrollment_outcome,
    subscriber_history,
    subscriber_timeline,
    unsubscribe,
)
from ._results_models import Click, ExperimentWinner, GoalEvent, Open, TrackedLink
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
from ._tracking import TrackedHit, link_positions, record_click, record_open
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
    "AttemptVariant",
    "BounceEvent",
    "BounceFigures",
    "BounceNotFoundError",
    "BouncePolicy",
    "BounceRecord",
    "BounceReport",
    "CampaignRevision",
    "CampaignStatus",
    "CampaignUnavailableError",
    "ClaimedDelivery",
    "Click",
    "ConfirmedSignup",
    "Consent",
    "CsvReadResult",
    "DatabaseRateLimit",
    "Decision",
    "Delivery",
    "DeliveryQueue",
    "DeliveryStateError",
    "EnrollResult",
    "Enrollment",
    "EventBeforeEnrollmentError",
    "EventIdConflictError",
    "ExperimentWinner",
    "ExpiredLeases",
    "GoalEvent",
    "InvalidFieldError",
    "InvalidSubscriberError",
    "KeyTally",
    "NewSubscriber",
    "NormalizedEmail",
    "NotSubscribedError",
    "Open",
    "Outcome",
    "RecordedBounce",
    "RecordedEvent",
    "RowProblem",
    "SentMessage",
    "SettleResult",
    "SignupForm",
    "SignupRequest",
    "SignupTicket",
    "SqlDeliveryQueue",
    "StepStatus",
    "StoreError",
    "StoredWinner",
    "Subscriber",
    "SubscriberCsvError",
    "SubscriberProfile",
    "SuppressedError",
    "Suppression",
    "SuppressionEntry",
    "TimelineEntry",
    "TrackedHit",
    "TrackedLink",
    "VariantTally",
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
    "enrollment_outcome",
    "experiment_winners",
    "expire_leases",
    "export_suppressions",
    "forget_unconfirmed",
    "get_bounce",
    "head_revision",
    "import_suppressions",
    "judge_experiment",
    "legacy_number",
    "link_positions",
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
    "record_click",
    "record_event",
    "record_open",
    "remove_suppression",
    "request_signup",
    "requeue_ambiguous",
    "set_subscriber_fields",
    "subject_key",
    "subscribe",
    "subscriber_history",
    "subscriber_profile",
    "subscriber_timeline",
    "suppression_for",
    "undo_bounce",
    "unsubscribe",
    "unsubscribe_by_key",
    "upgrade",
    "variant_tallies",
    "write_transaction",
    "zone_warning",
]


def open_store(
    url: str,
    *,
    migrate: bool = True,
    campaigns_dir: Path | None = None,
    lease_seconds: float | None = None,
    existing: bool = False,
) -> Engine:
    """An engine on ``url`` with the schema brought up to date (unless ``migrate`` is off).

    ``campaigns_dir`` (the project's ``campaigns/``) is read by migrations that map
    existing rows onto the campaign files. ``lease_seconds`` is the worker lease the
    PostgreSQL sessions' stall limits follow (see :func:`make_engine`). With ``existing``
    (commands that only read, or change what is there) a database without dripline's
    schema is refused instead of being set up. Raises :class:`StoreError` for a SQLite
    file that is not a database (or not dripline's, with ``existing``), naming the file.
    """
    engine = make_engine(url, lease_seconds=lease_seconds)
    try:
        if existing and current_revision(engine) is None:
            raise StoreError(
                f"{_where(engine)} is not a dripline database (it holds no dripline tables): "
                "use --db FILE for the right one"
            )
        if migrate:
            upgrade(engine, campaigns_dir)
    except DatabaseError as err:
        # SQLite's words for a file that is not a database (a CSV, a text file, ...).
        if engine.dialect.name != "sqlite" or "not a database" not in str(err.orig):
            raise
        engine.dispose()
        raise StoreError(
            f"{_where(engine)} is not a dripline database (SQLite cannot read it: {err.orig}): "
            "use --db FILE for the right one"
        ) from None
    except StoreError:
        engine.dispose()
        raise
    return engine


def _where(engine: Engine) -> str:
    """The SQLite file of ``engine``, or its URL with the password masked."""
    if engine.dialect.name == "sqlite" and engine.url.database:
        return engine.url.database
    return engine.url.render_as_string(hide_password=True)
