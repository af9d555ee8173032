"""Submissions read a procedure from memory for a few seconds instead of once per dossier; a
change made through the same store is seen at once."""

from __future__ import annotations

from services.intake.adapters.shipped_catalogue import load_catalogue
from services.intake.adapters.store import IntakeStore


async def test_a_procedure_is_read_once_within_the_cache_time(watched_db) -> None:
    db, commands = watched_db
    store = IntakeStore(db, procedure_cache_seconds=60)
    procedure = load_catalogue()[1][0]
    await store.save_procedures([procedure])

    commands.sent.clear()
    for _ in range(3):
        assert await store.cached_procedure(procedure.code) == procedure
    assert await store.cached_procedure("NO-SUCH-CODE") is None
    assert await store.cached_procedure("NO-SUCH-CODE") is None

    assert commands.sent == [("find", "procedures")] * 3  # unknown codes are read every time


async def test_a_change_through_the_store_is_seen_at_once(watched_db) -> None:
    db, _ = watched_db
    store = IntakeStore(db, procedure_cache_seconds=60)
    procedure = load_catalogue()[1][0]
    await store.save_procedures([procedure])
    assert await store.cached_procedure(procedure.code) == procedure
    _, version = await store.procedure_version(procedure.code) or (None, "")

    changed = procedure.model_copy(update={"name": procedure.name + " (sửa)"})
    assert await store.replace_procedure(changed, version) is not None
    assert await store.cached_procedure(procedure.code) == changed

    again = changed.model_copy(update={"name": procedure.name})
    await store.save_procedures([again])  # the catalogue shipped with a new release
    assert await store.cached_procedure(procedure.code) == again


async def test_without_a_cache_time_every_submission_reads_the_catalogue(watched_db) -> None:
    db, commands = watched_db
    store = IntakeStore(db)
    procedure = load_catalogue()[1][0]
    await store.save_procedures([procedure])
    commands.sent.clear()
    await store.cached_procedure(procedure.code)
    await store.cached_procedure(procedure.code)
    assert commands.sent == [("find", "procedures")] * 2
