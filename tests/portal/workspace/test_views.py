"""The workspace's pure logic: worklist filters, deadline badges, counts, the actions offered
and their input; and the server-side session store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.portal.workspace.sessions import SessionStore, StaffProfile, Tokens
from services.portal.workspace.views import (
    ACTIONS_BY_PATH,
    Deadline,
    WorklistFilters,
    deadline_badge,
    offered_actions,
    read_action,
    state_counts,
)

NOW = datetime(2026, 12, 10, 3, 0, tzinfo=UTC)


def item(state: int = 4, used: float = 0.0, **fields: object) -> dict[str, object]:
    received = NOW - timedelta(days=10 * used)
    return {
        "state": state,
        "received_at": received.isoformat(),
        "due_at": (received + timedelta(days=10)).isoformat(),
        "overdue": False,
        **fields,
    }


def test_filters_keep_only_known_values() -> None:
    filters = WorklistFilters.parse(["4", "1", "4", "3", "x", "99"], "9", "1.004940", "")
    assert filters.states == (1, 4)  # 3 is not on the worklist
    assert filters.channel is None and filters.procedure == "1.004940" and filters.cursor is None
    assert WorklistFilters.parse([], "2", "bad code!", "c" * 501).procedure is None
    assert filters.query(cursor="abc") == [
        ("trang-thai", "1"),
        ("trang-thai", "4"),
        ("thu-tuc", "1.004940"),
        ("sau", "abc"),
    ]


def test_deadline_badges() -> None:
    assert deadline_badge(item(used=0.2), NOW) is None
    assert deadline_badge(item(used=0.55), NOW) is Deadline.WARNING_50
    assert deadline_badge(item(used=0.85), NOW) is Deadline.WARNING_80
    assert deadline_badge(item(used=0.1, overdue=True), NOW) is Deadline.OVERDUE
    # Processing's own warnings win over the estimate (it counts working time).
    emitted = item(used=0.1, warnings_emitted=["deadline_warning_50", "deadline_warning_80"])
    assert deadline_badge(emitted, NOW) is Deadline.WARNING_80
    # No clock: awaiting intake (1) or a supplement (5), or already processed (9).
    for state in (1, 5, 9):
        assert deadline_badge(item(state=state, used=0.9), NOW) is None
    assert deadline_badge({"state": 4, "due_at": None, "overdue": False}, NOW) is None


def test_counts_per_state_in_the_lifecycles_order() -> None:
    counts = state_counts([item(4), item(1), item(4)])
    assert [(c.state, c.count) for c in counts] == [(1, 1), (4, 2)]
    assert counts[1].label == "Đang xử lý"


def test_an_officer_is_offered_the_lifecycles_actions_without_the_unit_heads() -> None:
    allowed = ["receive", "assign", "approve", "issue_result", "extend", "request_supplement"]
    officer = [form.action for form in offered_actions(allowed, ["officer"])]
    assert officer == ["receive", "request_supplement"]
    head = [form.action for form in offered_actions(allowed, ["officer", "unit_head"])]
    assert head == ["receive", "request_supplement", "assign", "approve", "extend"]
    assert offered_actions(allowed, ["counter_officer"]) == []


def test_action_input_is_checked_and_shaped_for_processing() -> None:
    supplement = read_action(
        ACTIONS_BY_PATH["request-supplement"],
        {"documents": "Tờ khai có chữ ký\n\n Mẫu nhãn \n", "reason": "Thiếu chữ ký"},
    )
    assert supplement.errors == {}
    assert supplement.body == {
        "documents": ["Tờ khai có chữ ký", "Mẫu nhãn"],
        "reason": "Thiếu chữ ký",
    }
    payment = read_action(ACTIONS_BY_PATH["request-payment"], {"amount_vnd": "150.000"})
    assert payment.body == {"amount_vnd": 150000, "note": None}
    assert (
        "amount_vnd" in read_action(ACTIONS_BY_PATH["request-payment"], {"amount_vnd": "-5"}).errors
    )
    extend = read_action(ACTIONS_BY_PATH["extend"], {"new_due_date": "10/12/2026", "reason": "x"})
    assert "new_due_date" in extend.errors
    returned = read_action(ACTIONS_BY_PATH["return-result"], {"method": "fax"})
    assert "method" in returned.errors
    assert read_action(ACTIONS_BY_PATH["receive"], {}).body == {"note": None}


def test_sessions_expire_when_idle_or_old_and_are_bounded() -> None:
    now = [1000.0]
    store = SessionStore(idle_seconds=60, max_seconds=300, capacity=2, clock=lambda: now[0])
    first = store.create()
    now[0] += 50
    assert store.get(first.id) is first  # the idle time restarts
    now[0] += 50
    assert store.get(first.id) is first
    now[0] += 61
    assert store.get(first.id) is None
    old = store.create()
    for _ in range(6):
        now[0] += 55
        assert store.get(old.id) is (old if now[0] - old.created_at <= 300 else None)
    a, b, c = store.create(), store.create(), store.create()
    assert len(store) == 2 and store.get(a.id) is None and store.get(c.id) is c
    assert store.get(b.id) is b


def test_signing_in_changes_the_session_id() -> None:
    store = SessionStore(idle_seconds=60, max_seconds=300, capacity=10)
    before = store.create()
    before.next_path = "/can-bo/ho-so/X"
    profile = StaffProfile.from_claims(
        {"sub": "u1", "preferred_username": "cv.shtt", "unit": "SHTT", "roles": ["officer"]}
    )
    tokens = Tokens.from_response({"access_token": "a", "expires_in": 300}, 0.0)
    after = store.signed_in(before, tokens, profile)
    assert after.id != before.id and store.get(before.id) is None
    assert after.signed_in and after.next_path == "/can-bo/ho-so/X"
    assert profile.name == "cv.shtt" and profile.roles == frozenset({"officer"})
