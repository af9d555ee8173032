"""Citizen messages from versioned Jinja2 templates: Vietnamese first, English as the fallback.

`templates/<locale>/<kind>.<version>.j2` defines three blocks: `title`, `sms` and `body` (the text
of the e-mail and the portal inbox). E-mails wrap the body in `email_layout.v1.j2` (greeting with
the applicant's name, tracking link). A template missing in the citizen's locale is taken from
the fallback locale. Undefined variables are errors (`StrictUndefined`): a typo in a template
fails its unit test instead of sending a half-empty message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template, TemplateNotFound

from services.notification.citizens.domain import sms_text

# `services/notification/templates/` (package data of `services.notification`, see pyproject).
TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "templates"
VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")
EMAIL_LAYOUT = "email_layout.v1"


@dataclass(frozen=True)
class RenderedMessage:
    template: str  # e.g. receipt.v1
    locale: str  # the locale actually used (the fallback when the citizen's is missing)
    title: str
    body: str  # inbox text (no contact details)
    email_body: str
    sms: sms_text.SmsText


def _local(value: datetime) -> datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=VIETNAM)
    return value.astimezone(VIETNAM)


def format_date(value: datetime | None) -> str:
    return _local(value).strftime("%d/%m/%Y") if value else ""


def format_datetime(value: datetime | None) -> str:
    return _local(value).strftime("%H:%M %d/%m/%Y") if value else ""


def format_vnd(amount: int | None) -> str:
    """300000 -> 300.000 (Vietnamese thousands separator)."""
    return f"{amount or 0:,}".replace(",", ".")


class TemplateRenderer:
    def __init__(
        self,
        directory: Path = TEMPLATE_DIR,
        *,
        fallback_locale: str = "en",
        sms_max_segments: int = 3,
        sms_strip_diacritics: bool = True,
    ) -> None:
        self.fallback_locale = fallback_locale
        self.sms_max_segments = sms_max_segments
        self.sms_strip_diacritics = sms_strip_diacritics
        self._env = Environment(
            loader=FileSystemLoader(directory),
            undefined=StrictUndefined,
            autoescape=False,  # plain text: SMS, text/plain e-mail, inbox text
            keep_trailing_newline=False,
        )
        self._env.filters.update(date=format_date, datetime=format_datetime, vnd=format_vnd)

    def _template(self, name: str, locale: str) -> tuple[Template, str]:
        for candidate in dict.fromkeys((locale, self.fallback_locale)):
            try:
                return self._env.get_template(f"{candidate}/{name}.j2"), candidate
            except TemplateNotFound:
                continue
        raise TemplateNotFound(f"{name} (locales {locale}, {self.fallback_locale})")

    def render(self, name: str, context: Mapping[str, Any], locale: str = "vi") -> RenderedMessage:
        template, used = self._template(name, locale)
        blocks = {
            block: "".join(template.blocks[block](template.new_context(dict(context)))).strip()
            for block in ("title", "sms", "body")
        }
        layout, _ = self._template(EMAIL_LAYOUT, used)
        email_body = layout.render({**context, "body": blocks["body"]})
        sms = sms_text.fit(
            blocks["sms"],
            max_segments=self.sms_max_segments,
            strip=self.sms_strip_diacritics,
        )
        return RenderedMessage(name, used, blocks["title"], blocks["body"], email_body, sms)
