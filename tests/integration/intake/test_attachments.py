"""A request's files are written in two commands, in GridFS's own layout: GridFS reads them back
byte for byte, and deletes them, as if it had written them."""

from __future__ import annotations

import pytest
from bson import ObjectId
from gridfs.errors import NoFile

from services.intake.adapters.store import CHUNK_SIZE, IntakeStore, NewAttachment
from tests.mongo_helpers import Commands


@pytest.fixture
def watched(watched_db) -> tuple[IntakeStore, Commands]:
    db, commands = watched_db
    return IntakeStore(db), commands


async def test_files_stored_together_are_read_back_and_deleted_by_gridfs(watched) -> None:
    store, commands = watched
    large = bytes(range(256)) * (CHUNK_SIZE // 128 + 7)  # three chunks, the last one partial
    files = [
        NewAttachment(
            b"%PDF-1.4 to khai", "to_khai.pdf", "application/pdf", {"document_type": "a"}
        ),
        NewAttachment(large, "ban_ve.png", "image/png", {"document_type": "b"}),
        NewAttachment(b"", "trong.txt", "text/plain", {"document_type": "c"}),
    ]

    commands.sent.clear()
    storage_ids = await store.store_attachments(files)

    assert commands.sent == [
        ("insert", "attachments.chunks"),
        ("insert", "attachments.files"),
    ]
    for file, storage_id in zip(files, storage_ids, strict=True):
        stream = await store.attachments.open_download_stream(ObjectId(storage_id))
        assert await stream.read() == file.data
        assert stream.filename == file.file_name
        assert stream.metadata == {"content_type": file.content_type, **file.metadata}
    assert await store.attachments_chunks.count_documents({}) == 4

    await store.delete_attachments(storage_ids)
    with pytest.raises(NoFile):
        await store.attachments.open_download_stream(ObjectId(storage_ids[1]))
    assert await store.attachments_chunks.count_documents({}) == 0


async def test_nothing_to_store_sends_nothing(watched) -> None:
    store, commands = watched
    commands.sent.clear()
    assert await store.store_attachments([]) == []
    assert commands.sent == []
