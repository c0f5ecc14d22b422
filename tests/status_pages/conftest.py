"""Fixtures of the subscribers' tests: an aiosmtpd server on 127.0.0.1, and the API of a server
that mails through it (the same database and clock)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from control_plane.api.app import create_app
from control_plane.api.deps import Runtime
from control_plane.db import Database
from control_plane.settings import Settings
from tests.alert_receivers import SmtpReceiver, smtp_receiver
from tests.clock import MovableClock
from tests.status_pages.mailing import client_of, mail_settings


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    with smtp_receiver() as server:
        yield server


@pytest.fixture
def mailing(settings: Settings, smtp: SmtpReceiver) -> Settings:
    return mail_settings(settings.database_url, smtp.port)


@pytest.fixture
async def mailing_app(mailing: Settings, database: Database, clock: MovableClock) -> Any:
    return create_app(mailing, Runtime.build(mailing, database, clock=clock))


@pytest.fixture
async def visitor(mailing_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The API of a server that mails through `smtp`."""
    async with client_of(mailing_app) as client:
        yield client
