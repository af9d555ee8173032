"""The catalogue API over the seeded catalogue, and its compacted topic."""

from __future__ import annotations

from services.intake.adapters.shipped_catalogue import load_catalogue
from services.intake.domain.catalogue import fold, matches, rollup
from shared.contracts.catalogue import Procedure
from shared.contracts.cloudevents import CloudEvent, unwrap
from shared.contracts.topics import CATALOGUE_TOPIC
from tests.kafka_helpers import read_records


async def test_search_is_accent_insensitive_and_paginates(intake) -> None:
    response = await intake.client.get(
        "/api/v1/procedures", params={"q": "chuyen giao cong nghe", "limit": 5}
    )
    assert response.status_code == 200
    page = response.json()
    assert len(page["items"]) == 5
    procedures = [Procedure.model_validate(item) for item in page["items"]]
    assert all(matches(p, "chuyển giao công nghệ") for p in procedures)
    assert any("chuyen giao cong nghe" in fold(p.name) for p in procedures)
    following = await intake.client.get(
        "/api/v1/procedures",
        params={"q": "chuyen giao cong nghe", "limit": 5, "cursor": page["next_cursor"]},
    )
    codes = [i["code"] for i in page["items"]] + [i["code"] for i in following.json()["items"]]
    assert len(codes) == len(set(codes)) and codes == sorted(codes)


async def test_filters_by_unit_and_level(intake) -> None:
    response = await intake.client.get(
        "/api/v1/procedures", params={"unit": "SHTT", "level": 4, "limit": 100}
    )
    items = response.json()["items"]
    _, procedures = load_catalogue()
    expected = sorted(p.code for p in procedures if p.unit_code == "SHTT" and p.level == 4)
    assert [i["code"] for i in items] == expected


async def test_detail_and_unknown_procedure(intake) -> None:
    detail = (await intake.client.get("/api/v1/procedures/1.004940")).json()
    assert detail["name"] == "Thủ tục đăng ký nhãn hiệu" and detail["mode"] == "toan_trinh"
    missing = await intake.client.get("/api/v1/procedures/9.999999")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


async def test_rollup_is_computed_from_the_stored_catalogue(intake) -> None:
    body = (await intake.client.get("/api/v1/catalogue/rollup")).json()
    _, procedures = load_catalogue()
    expected = rollup(procedures)
    assert (
        body["level4_numerator"]
        == expected.level4_numerator
        == sum(p.level == 4 for p in procedures)
    )
    assert body["level4_denominator"] == sum(p.level >= 3 for p in procedures)
    assert body["target_met"] is (expected.level4_share >= 0.30)
    assert len(body["units"]) == 15


async def test_the_catalogue_is_published_one_record_per_procedure(intake, kafka_bootstrap) -> None:
    records = await read_records(kafka_bootstrap, intake.topic(CATALOGUE_TOPIC), 316)
    codes = {r.key.decode() for r in records}
    assert len(codes) == 316
    first = unwrap(CloudEvent.from_kafka(records[0].value, records[0].headers))
    assert isinstance(first, Procedure) and first.code == records[0].key.decode()


async def test_only_admins_change_the_catalogue_and_changes_are_published(
    intake, kafka_bootstrap
) -> None:
    read = await intake.client.get("/api/v1/procedures/1.004940")
    current, version = read.json(), read.headers["etag"]
    changed = {**current, "level": 3}
    changed.pop("mode")
    assert (
        await intake.client.put("/api/v1/admin/procedures/1.004940", json=changed)
    ).status_code == 401
    officer = intake.token("officer", unit="SHTT")
    assert (
        await intake.client.put("/api/v1/admin/procedures/1.004940", json=changed, headers=officer)
    ).status_code == 403

    admin = intake.token("admin")
    mismatch = await intake.client.put(
        "/api/v1/admin/procedures/1.000000", json=changed, headers=admin
    )
    assert mismatch.status_code == 422
    response = await intake.client.put(
        "/api/v1/admin/procedures/1.004940", json=changed, headers={**admin, "If-Match": version}
    )
    assert response.status_code == 200
    assert (await intake.client.get("/api/v1/procedures/1.004940")).json()["level"] == 3

    records = await read_records(kafka_bootstrap, intake.topic(CATALOGUE_TOPIC), 317)
    latest = [r for r in records if r.key == b"1.004940"][-1]
    assert unwrap(CloudEvent.from_kafka(latest.value, latest.headers)).level == 3
    current.pop("mode")
    restored = await intake.client.put(
        "/api/v1/admin/procedures/1.004940",
        json=current,
        headers={**admin, "If-Match": response.headers["etag"]},
    )
    assert restored.status_code == 200 and restored.headers["etag"] == version


async def test_two_administrators_saving_from_the_same_version_do_not_overwrite_each_other(
    intake,
) -> None:
    admin = intake.token("admin")
    path = "/api/v1/admin/procedures/1.004940"
    read = await intake.client.get("/api/v1/procedures/1.004940")
    loaded, version = read.json(), read.headers["etag"]
    loaded.pop("mode")
    assert version.startswith('"') and version.endswith('"')

    # Without saying which version the change was made from: refused, nothing stored.
    blind = await intake.client.put(path, json={**loaded, "level": 2}, headers=admin)
    assert blind.status_code == 428
    assert blind.headers["content-type"] == "application/problem+json"
    assert blind.headers["etag"] == version

    first = await intake.client.put(
        path, json={**loaded, "level": 3}, headers={**admin, "If-Match": version}
    )
    assert first.status_code == 200 and first.headers["etag"] != version
    second = await intake.client.put(
        path,
        json={**loaded, "fees": [{"name": "Lệ phí", "amount_vnd": 1}]},
        headers={**admin, "If-Match": version},
    )
    assert second.status_code == 412
    assert second.headers["content-type"] == "application/problem+json"
    problem = second.json()
    assert problem["status"] == 412 and "người khác" in problem["title"]
    assert second.headers["etag"] == first.headers["etag"]
    stored = (await intake.client.get("/api/v1/procedures/1.004940")).json()
    assert stored["level"] == 3 and stored["fees"] == loaded["fees"]  # the first change stands

    # A weak tag never matches (strong comparison); `*` is any existing version; several tags.
    weak = await intake.client.put(
        path, json=loaded, headers={**admin, "If-Match": "W/" + first.headers["etag"]}
    )
    assert weak.status_code == 412
    listed = await intake.client.put(
        path, json=loaded, headers={**admin, "If-Match": f'"x", {first.headers["etag"]}'}
    )
    assert listed.status_code == 200 and listed.headers["etag"] == version
    assert (
        await intake.client.put(path, json=loaded, headers={**admin, "If-Match": "*"})
    ).status_code == 200

    # A version of a procedure that does not exist: 412, not a creation.
    other = {**loaded, "code": "9.999998"}
    absent = await intake.client.put(
        "/api/v1/admin/procedures/9.999998", json=other, headers={**admin, "If-Match": version}
    )
    assert absent.status_code == 412
    assert (await intake.client.get("/api/v1/procedures/9.999998")).status_code == 404
