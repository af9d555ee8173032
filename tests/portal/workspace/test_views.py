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
    due_reason_label,
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


def test_deadline_badges_are_processings_warnings_in_working_time() -> None:
    assert deadline_badge(item(used=0.2)) is None
    fifty = item(used=0.3, warnings_emitted=["deadline_warning_50"])
    assert deadline_badge(fifty) is Deadline.WARNING_50
    both = item(used=0.1, warnings_emitted=["deadline_warning_50", "deadline_warning_80"])
    assert deadline_badge(both) is Deadline.WARNING_80
    assert deadline_badge(item(used=0.1, overdue=True)) is Deadline.OVERDUE
    # No wall-clock estimate: 90% of the calendar time gone over a holiday, yet processing (which
    # counts working days) has emitted no warning, so the worklist shows none.
    assert deadline_badge(item(used=0.9)) is None
    assert deadline_badge(item(used=1.5)) is None
    # No clock: awaiting intake (1) or a supplement (5), or already processed (9).
    for state in (1, 5, 9):
        assert deadline_badge(item(state=state, warnings_emitted=["deadline_warning_80"])) is None
    assert deadline_badge({"state": 4, "due_at": None, "overdue": False}) is None


def test_counts_per_state_in_the_lifecycles_order() -> None:
    answer = {"total": 3, "states": [{"state": 4, "count": 2}, {"state": 1, "count": 1}]}
    counts = state_counts(answer | {"states": [*answer["states"], {"state": 5, "count": 0}]})
    assert [(c.state, c.count) for c in counts] == [(1, 1), (4, 2)]
    assert counts[1].label == "Đang xử lý"
    assert state_counts({"total": 0, "states": []}) == []


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


def test_the_form_data_is_flattened_into_rows() -> None:
    from services.portal.workspace.views import form_rows

    dossier = {"form": {"mark": {"name": "Sao Mai", "classes": [9, 35]}, "note": None}}
    assert form_rows(dossier) == [("mark.name", "Sao Mai"), ("mark.classes", "9, 35"), ("note", "")]
    assert form_rows(None) == [] and form_rows({"form": {}}) == []


def test_a_download_is_always_an_attachment() -> None:
    from services.portal.workspace.views import as_attachment, valid_storage_id

    assert as_attachment('inline; filename="a.pdf"') == 'attachment; filename="a.pdf"'
    assert as_attachment(None) == "attachment" and as_attachment("inline") == "attachment"
    assert valid_storage_id("65f0a1b2c3d4e5f6a7b8c9d0")
    assert not valid_storage_id("../x") and not valid_storage_id("a/b")


def test_the_report_chart_and_quarters() -> None:
    from services.portal.workspace.report import (
        SCALE_WIDTH,
        Quarter,
        count_rows,
        indicator_bars,
        unit_section,
    )

    assert Quarter.current(datetime(2026, 12, 31, 18, tzinfo=UTC)) == Quarter(2027, 1)  # VN time
    assert Quarter.chosen(None, 2, NOW) == Quarter(2026, 4)
    assert [q.label for q in Quarter(2026, 2).recent(3)] == [
        "Quý 2 năm 2026",
        "Quý 1 năm 2026",
        "Quý 4 năm 2025",
    ]
    section = {
        "counts": {"received": 3},
        "indicators": [
            {"name": "A", "percent": 150.0, "numerator": 3, "denominator": 2},
            {"name": "B", "percent": None, "target_percent": 50.0},
        ],
    }
    bars = indicator_bars(section)
    assert bars[0].width == SCALE_WIDTH and bars[0].detail == "3/2"  # capped at 100 %
    assert bars[1].width == 0 and bars[1].target_x is not None and bars[1].y > bars[0].y
    assert count_rows(section)[0] == ("Hồ sơ tiếp nhận", 3)
    report = {"ministry": {"unit_code": None}, "units": [{"unit_code": "A"}, {"unit_code": "B"}]}
    assert unit_section(report, "B") == {"unit_code": "B"}
    assert unit_section({"ministry": {"x": 1}, "units": []}, "B") == {"x": 1}


def test_why_a_due_date_was_set_is_said_in_vietnamese() -> None:
    # The reasons processing's workflow writes in `due_history` (domain/workflow.py).
    for reason in ("receipt", "payment", "supplement", "extension"):
        assert due_reason_label(reason) != reason
    assert due_reason_label("receipt") == "Tiếp nhận hồ sơ"
    assert due_reason_label("something new") == "something new"
