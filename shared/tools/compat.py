"""Backward compatibility of the public event contracts, against their published baselines.

The rule, for a topic other agencies read (`PUBLIC_TOPICS`). Within one topic version (`.v1`) a
change must keep every record already on the topic valid for the new code, and every new record
readable by a consumer written against the old schema (the topics are kept forever and consumers
replay them). So the value space of every existing field stays the same:

- breaking: a removed property; a new *required* property; a property that became required or
  stopped being required (it may now be missing); a changed type, in either direction, including
  through `$ref`, `anyOf` and nullability (`str` -> `int`, `int` -> `str`, `T | None` -> `T`,
  `T` -> `T | None`); an enumeration value removed, an enumeration dropped or added; a changed
  validation keyword (`pattern`, `format`, `minLength`, `maximum`, ...); a change of what extra
  keys a free-form object accepts. Nested models are compared the same way, path by path.
- compatible: a new optional property; a new enumeration value (consumers must ignore values they
  do not know: agencies are told so in the AsyncAPI document); any change of an annotation
  (`title`, `description`, `examples`, `default`, `readOnly`, ...).

A breaking change needs a new `.vN` topic (a new model with its own topic and event type), which
starts without a baseline. Baselines are the published schemas, one per public topic, in
`contracts/published/<topic>.schema.json`:

    python -m shared.tools.compat            # compare the code with the baselines (exit 1)
    python -m shared.tools.compat --publish  # write missing baselines, refresh compatible ones

`--publish` refuses (exit 1) to overwrite a baseline with a breaking change. The comparison
(`breaking_changes`) is pure; the baseline files are read and written only by the functions below
it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Schema = Mapping[str, Any]

_CONSTRAINTS = (
    "pattern",
    "format",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
    "contentEncoding",
    "contentMediaType",
)
_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", type(None): "null"}


@dataclass(frozen=True)
class BreakingChange:
    path: str  # `$` is the event; `.field`, `[]` an array's items, `.*` a map's values
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True)
class _Variant:
    """One alternative of a (possibly union) schema, its `$ref`s resolved."""

    kind: str  # a JSON type, or "any"
    schema: Mapping[str, Any]
    refs: tuple[str, ...]

    @property
    def label(self) -> str:
        return str(self.schema.get("title") or self.kind)


def breaking_changes(old: Schema, new: Schema) -> list[BreakingChange]:
    """What makes `new` incompatible with `old` (two JSON Schemas of one event; `$ref`s are
    resolved inside each document, e.g. pydantic's `#/$defs/...`). Empty when compatible."""
    found: list[BreakingChange] = []
    _compare(_Side(old), old, _Side(new), new, "$", found, frozenset())
    return found


class _Side:
    def __init__(self, root: Schema) -> None:
        self.root = root

    def resolve(self, ref: str) -> Mapping[str, Any]:
        if not ref.startswith("#"):
            raise ValueError(f"only local references are supported: {ref!r}")
        node: Any = self.root
        for part in filter(None, ref[1:].split("/")):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        resolved: Mapping[str, Any] = node
        return resolved

    def variants(self, node: Any, refs: tuple[str, ...] = ()) -> list[_Variant]:
        """The alternatives a schema allows: `$ref` and `allOf` merged, `anyOf`/`oneOf` and
        type lists flattened."""
        if node is True or node == {}:
            return [_Variant("any", {}, refs)]
        if node is False:
            return []
        node = dict(node)
        while "$ref" in node:
            ref = node.pop("$ref")
            if ref in refs:  # recursive model: stop here, the outer level compares it
                return [_Variant("object", {"title": ref}, refs)]
            refs = (*refs, ref)
            node = {**self.resolve(ref), **node}
        if "allOf" in node:
            parts = node.pop("allOf")
            for part in parts:
                merged = self.variants(part, refs)
                if len(merged) == 1:
                    node = _merge(merged[0].schema, node)
        for union in ("anyOf", "oneOf"):
            if union in node:
                options = node.pop(union)
                return [v for option in options for v in self.variants({**node, **option}, refs)]
        kind = node.get("type")
        if isinstance(kind, list):
            return [v for k in kind for v in self.variants({**node, "type": k}, refs)]
        if kind is None:
            kind = _inferred_type(node)
        return [_Variant(kind, node, refs)]


def _merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = {**base, **extra}
    if "properties" in base and "properties" in extra:
        merged["properties"] = {**base["properties"], **extra["properties"]}
    if "required" in base and "required" in extra:
        merged["required"] = sorted({*base["required"], *extra["required"]})
    return merged


def _inferred_type(node: Mapping[str, Any]) -> str:
    values = node.get("enum", [node["const"]] if "const" in node else None)
    if values:
        kinds = {_JSON_TYPES.get(type(v), "object") for v in values}
        return kinds.pop() if len(kinds) == 1 else "any"
    if "properties" in node or "additionalProperties" in node:
        return "object"
    if "items" in node or "prefixItems" in node:
        return "array"
    return "any"


def _compare(
    old_side: _Side,
    old: Any,
    new_side: _Side,
    new: Any,
    path: str,
    found: list[BreakingChange],
    in_progress: frozenset[tuple[str, str]],
) -> None:
    old_variants = old_side.variants(old)
    new_variants = new_side.variants(new)
    old_kinds, new_kinds = {v.kind for v in old_variants}, {v.kind for v in new_variants}
    found.extend(BreakingChange(path, r) for r in _type_changes(old_kinds, new_kinds))
    for kind in sorted(old_kinds & new_kinds):
        olds = [v for v in old_variants if v.kind == kind]
        news = [v for v in new_variants if v.kind == kind]
        for old_v, new_v in _pairs(olds, news, path, found):
            pair = (old_v.refs[-1] if old_v.refs else "", new_v.refs[-1] if new_v.refs else "")
            if all(pair) and pair in in_progress:
                continue  # a recursive model already being compared further up
            _compare_variant(old_side, old_v, new_side, new_v, path, found, in_progress | {pair})


def _type_changes(old_kinds: set[str], new_kinds: set[str]) -> list[str]:
    """Nullability, then the other types, that appeared or disappeared."""
    reasons = []
    if "null" in old_kinds - new_kinds:
        reasons.append("no longer nullable: records holding null become invalid")
    if "null" in new_kinds - old_kinds:
        reasons.append("became nullable: consumers may now receive null")
    lost = sorted(old_kinds - new_kinds - {"null"})
    gained = sorted(new_kinds - old_kinds - {"null"})
    was = " | ".join(sorted(old_kinds - {"null"})) or "null"
    now = " | ".join(sorted(new_kinds - {"null"})) or "null"
    if lost and gained:
        reasons.append(f"type changed from {was} to {now}")
    elif lost:
        reasons.append(f"type narrowed from {was} to {now}: no longer {' | '.join(lost)}")
    elif gained:
        reasons.append(f"type widened from {was} to {now}: may now be {' | '.join(gained)}")
    return reasons


def _pairs(
    olds: list[_Variant], news: list[_Variant], path: str, found: list[BreakingChange]
) -> list[tuple[_Variant, _Variant]]:
    """Match the alternatives of one kind: one to one, or by title when there are several."""
    if len(olds) == 1 and len(news) == 1:
        return [(olds[0], news[0])]
    new_by_label = {v.label: v for v in news}
    pairs = []
    for old_v in olds:
        match = new_by_label.pop(old_v.label, None)
        if match is None:
            found.append(BreakingChange(path, f"alternative {old_v.label} removed"))
        else:
            pairs.append((old_v, match))
    for label in sorted(new_by_label):
        found.append(BreakingChange(path, f"alternative {label} added"))
    return pairs


def _compare_variant(
    old_side: _Side,
    old_v: _Variant,
    new_side: _Side,
    new_v: _Variant,
    path: str,
    found: list[BreakingChange],
    in_progress: frozenset[tuple[str, str]],
) -> None:
    old, new = old_v.schema, new_v.schema
    _compare_values(old, new, path, found)
    for keyword in _CONSTRAINTS:
        if old.get(keyword) != new.get(keyword):
            found.append(
                BreakingChange(
                    path,
                    f"{keyword} changed from {_show(old.get(keyword))} "
                    f"to {_show(new.get(keyword))}",
                )
            )
    if old_v.kind == "object":
        _compare_object(old_side, old, new_side, new, path, found, in_progress)
    elif old_v.kind == "array":
        if "items" in old or "items" in new:
            old_items, new_items = old.get("items", {}), new.get("items", {})
            _compare(old_side, old_items, new_side, new_items, f"{path}[]", found, in_progress)
        old_prefix, new_prefix = old.get("prefixItems", []), new.get("prefixItems", [])
        if len(old_prefix) != len(new_prefix):
            found.append(BreakingChange(path, "number of tuple items changed"))
        for i, (o, n) in enumerate(zip(old_prefix, new_prefix, strict=False)):
            _compare(old_side, o, new_side, n, f"{path}[{i}]", found, in_progress)


def _compare_values(
    old: Mapping[str, Any], new: Mapping[str, Any], path: str, found: list[BreakingChange]
) -> None:
    """Enumerations and constants: values may be added (not removed); a restriction may not
    appear or disappear."""
    old_values = _allowed_values(old)
    new_values = _allowed_values(new)
    if old_values is None and new_values is None:
        return
    if old_values is None:
        found.append(BreakingChange(path, f"now restricted to the values {_show(new_values)}"))
    elif new_values is None:
        found.append(BreakingChange(path, f"no longer restricted to {_show(old_values)}"))
    else:
        removed = [v for v in old_values if v not in new_values]
        if removed:
            found.append(BreakingChange(path, f"enumeration value(s) removed: {_show(removed)}"))


def _allowed_values(node: Mapping[str, Any]) -> list[Any] | None:
    if "const" in node:
        return [node["const"]]
    if "enum" in node:
        return list(node["enum"])
    return None


def _compare_object(
    old_side: _Side,
    old: Mapping[str, Any],
    new_side: _Side,
    new: Mapping[str, Any],
    path: str,
    found: list[BreakingChange],
    in_progress: frozenset[tuple[str, str]],
) -> None:
    old_props: Mapping[str, Any] = old.get("properties", {})
    new_props: Mapping[str, Any] = new.get("properties", {})
    old_required, new_required = set(old.get("required", ())), set(new.get("required", ()))
    for name in old_props:
        where = f"{path}.{name}"
        if name not in new_props:
            found.append(BreakingChange(where, "property removed"))
            continue
        if name in old_required and name not in new_required:
            found.append(BreakingChange(where, "no longer required: events may now omit it"))
        elif name in new_required and name not in old_required:
            found.append(
                BreakingChange(where, "became required: records without it become invalid")
            )
        _compare(old_side, old_props[name], new_side, new_props[name], where, found, in_progress)
    for name in new_props:
        if name not in old_props and name in new_required:
            found.append(
                BreakingChange(f"{path}.{name}", "new required property (add it as optional)")
            )
    old_extra, new_extra = (
        old.get("additionalProperties", True),
        new.get("additionalProperties", True),
    )
    if isinstance(old_extra, Mapping) and isinstance(new_extra, Mapping):
        _compare(old_side, old_extra, new_side, new_extra, f"{path}.*", found, in_progress)
    elif old_extra != new_extra and not (_open(old_extra) and _open(new_extra)):
        found.append(
            BreakingChange(
                path,
                f"additional properties changed from {_show(old_extra)} to {_show(new_extra)}",
            )
        )


def _open(extra: Any) -> bool:
    return extra is True or extra == {}


def _show(value: Any) -> str:
    return "absent" if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


# --- Baselines (file I/O) -------------------------------------------------------------------

BASELINE_DIR = Path(__file__).resolve().parents[2] / "contracts" / "published"


def baseline_path(topic: str, directory: Path = BASELINE_DIR) -> Path:
    return directory / f"{topic}.schema.json"


def load_baseline(topic: str, directory: Path = BASELINE_DIR) -> dict[str, Any] | None:
    path = baseline_path(topic, directory)
    return json.loads(path.read_text()) if path.exists() else None


def current_schemas() -> dict[str, dict[str, Any]]:
    """The schema of every public topic's model in the code, as its baseline would hold it."""
    from shared.tools.snapshots import public_models, schema_of

    return {topic: schema_of(model) for topic, model in public_models().items()}


def breaking_message(topic: str, changes: Sequence[BreakingChange]) -> str:
    lines = "\n".join(f"  - {change}" for change in changes)
    return (
        f"{topic}: the contract changed in a way that breaks other agencies' consumers:\n{lines}\n"
        f"Make the change additive (new optional fields only), or publish it as a new topic "
        f"version: a new model with topic {_next_version(topic)} (and its event type), listed in "
        f"PUBLIC_TOPICS, keeping {topic} alongside for the transition."
    )


def _next_version(topic: str) -> str:
    stem, _, version = topic.rpartition(".v")
    return f"{stem}.v{int(version) + 1}" if version.isdigit() else f"{topic}.v2"


def publish_baselines(
    schemas: Mapping[str, Mapping[str, Any]], directory: Path = BASELINE_DIR
) -> tuple[list[str], list[str]]:
    """Write the baselines that are missing and refresh those whose change is compatible.
    Returns (what was done, what was refused)."""
    from shared.tools.snapshots import render

    done, refused = [], []
    directory.mkdir(parents=True, exist_ok=True)
    for topic, schema in schemas.items():
        path = baseline_path(topic, directory)
        text = render(dict(schema))
        baseline = load_baseline(topic, directory)
        if baseline is None:
            path.write_text(text)
            done.append(f"published the first baseline of {topic}: {path.name}")
            continue
        changes = breaking_changes(baseline, schema)
        if changes:
            refused.append(breaking_message(topic, changes))
        elif path.read_text() != text:
            path.write_text(text)
            done.append(f"refreshed the baseline of {topic} (compatible change)")
    return done, refused


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.tools.compat", description=__doc__)
    parser.add_argument(
        "--publish",
        action="store_true",
        help="write missing baselines and refresh compatible ones (refuses breaking changes)",
    )
    args = parser.parse_args(argv)
    schemas = current_schemas()
    if args.publish:
        done, refused = publish_baselines(schemas)
        for line in done or ([] if refused else ["every baseline is up to date"]):
            print(line)
        for message in refused:
            print(message, file=sys.stderr)
        return 1 if refused else 0
    failed = False
    for topic, schema in schemas.items():
        baseline = load_baseline(topic)
        if baseline is None:
            print(f"{topic}: no baseline yet (run python -m shared.tools.compat --publish)")
            continue
        changes = breaking_changes(baseline, schema)
        if changes:
            failed = True
            print(breaking_message(topic, changes), file=sys.stderr)
        else:
            print(f"{topic}: compatible with its baseline")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
