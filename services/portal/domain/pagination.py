"""Pagination of the catalogue (pure). Intake pages with a cursor (the code the next page starts
after); the portal adds page numbers so that a citizen knows where they are."""

from __future__ import annotations

from dataclasses import dataclass

PAGE_SIZE = 20
MAX_PAGE = 1000


def page_number(raw: str | None) -> int:
    """A page number from the query string: 1 when missing or nonsense, at most `MAX_PAGE`."""
    try:
        number = int(raw or "1")
    except ValueError:
        return 1
    return min(max(number, 1), MAX_PAGE)


@dataclass(frozen=True)
class PageWindow:
    """Which results a page shows: `page` (from 1) of `size` results, `shown` of them here."""

    page: int
    size: int
    shown: int
    has_next: bool

    @property
    def first(self) -> int:
        return (self.page - 1) * self.size + 1 if self.shown else 0

    @property
    def last(self) -> int:
        return self.first + self.shown - 1 if self.shown else 0

    @property
    def has_previous(self) -> bool:
        return self.page > 1

    @property
    def summary(self) -> str:
        """`Kết quả 21–40` (or "Không có kết quả")."""
        if not self.shown:
            return "Không có kết quả"
        if self.shown == 1:
            return f"Kết quả {self.first}"
        return f"Kết quả {self.first}–{self.last}"

    @property
    def label(self) -> str:
        return f"Trang {self.page}"
