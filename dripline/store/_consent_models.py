"""Tables for double opt-in: sign-up requests waiting for confirmation, and recorded consents.

A sign-up request is written when the form is posted (its random ``key`` is what the
confirmation link names); counting an address's recent requests is the per-address
rate limit, so it holds across processes. A consent row is the proof a regulator
asks for: when, from where, with which browser, on which form, to which words.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ._models import Base

__all__ = ["Consent", "SignupRequest"]


class SignupRequest(Base):
    __tablename__ = "signup_requests"
    __table_args__ = (Index("ix_signup_requests_email_created", "email_key", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(32), unique=True, index=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    campaign: Mapped[str] = mapped_column(String(100))
    email_key: Mapped[str] = mapped_column(String(320))
    first_name: Mapped[str] = mapped_column(String(100))
    timezone: Mapped[str | None] = mapped_column(String(64), nullable=True)
    country: Mapped[str | None] = mapped_column(String(2), nullable=True)  # ISO 3166-1 alpha-2
    form: Mapped[str] = mapped_column(String(300))  # the form's URL path
    consent_text: Mapped[str] = mapped_column(Text)
    ip: Mapped[str] = mapped_column(String(64))
    user_agent: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    email_sent: Mapped[bool] = mapped_column(default=False)  # counts toward the hourly limit
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class Consent(Base):
    __tablename__ = "consents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True
    )
    signup_request_id: Mapped[int] = mapped_column(
        ForeignKey("signup_requests.id", ondelete="CASCADE")
    )
    campaign: Mapped[str] = mapped_column(String(100))
    given_at: Mapped[datetime] = mapped_column(DateTime)  # the confirming click
    ip: Mapped[str] = mapped_column(String(64))
    user_agent: Mapped[str] = mapped_column(String(500))
    form: Mapped[str] = mapped_column(String(300))
    consent_text: Mapped[str] = mapped_column(Text)
