"""`upserted_document`: the document an upsert inserts, for writers that insert it instead (the
integration test `test_a_submission_inserts_the_document_its_upsert_would_write` compares it with
what the database writes)."""

from __future__ import annotations

import pytest

from shared.runtime.mongo import upserted_document


def test_each_operator_gives_the_field_an_upsert_would() -> None:
    update = {
        "$set": {"status": "pending", "facts": {"a": 1}},
        "$setOnInsert": {"attempts": 0, "sent": []},
        "$inc": {"seq": 1},
        "$push": {"steps": {"id": "s1"}, "events": {"$each": ["e1", "e2"]}},
        "$addToSet": {"tags": {"$each": ["x", "y", "x"]}, "one": "z"},
    }
    assert upserted_document("D1", update) == {
        "_id": "D1",
        "status": "pending",
        "facts": {"a": 1},
        "attempts": 0,
        "sent": [],
        "seq": 1,
        "steps": [{"id": "s1"}],
        "events": ["e1", "e2"],
        "tags": ["x", "y"],
        "one": ["z"],
    }


@pytest.mark.parametrize(
    "update",
    [
        {"$set": {"a.b": 1}},  # a nested path
        {"$set": {"_id": "other"}},
        {"$unset": {"a": ""}},
        {"$mul": {"a": 2}},
    ],
)
def test_what_it_does_not_apply_is_refused(update: dict) -> None:
    with pytest.raises(ValueError):
        upserted_document("D1", update)
