"""Reading service documents: YAML or JSON text, or already-parsed data, into a ServiceSpec.

Accepted shapes: `{service: {...}}` (upstream), or a bare mapping with `name` and `containers` at
the top. Everything that can go wrong comes back as one `SpecInvalid` listing every problem.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml
from pydantic import ValidationError

from gs_engine.errors import Problem, SpecInvalid
from gs_engine.spec.problems import problems_from
from gs_engine.spec.service import ServiceSpec

TOP_KEY = "service"


MAX_ALIASES = 64  # a service document needs few, if any; many aliases is an expansion bomb


class _UniqueKeySafeLoader(yaml.SafeLoader):  # type: ignore[misc]  # no stubs for PyYAML
    """The safe loader, refusing a key written twice in one mapping (YAML would keep the last)
    and documents with more than MAX_ALIASES aliases (nested aliases expand exponentially)."""

    aliases_seen = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.events.AliasEvent):
            self.aliases_seen += 1
            if self.aliases_seen > MAX_ALIASES:
                event = self.peek_event()
                raise yaml.composer.ComposerError(
                    None, None, f"more than {MAX_ALIASES} aliases (*name) in one document", event.start_mark
                )
        return super().compose_node(parent, index)


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: dict[Any, yaml.Node] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
        except TypeError:
            continue  # unhashable key: the base constructor reports it
        if duplicate:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(
                "while reading a mapping",
                node.start_mark,
                f"found the key {key!r} twice (first on line {seen[key].start_mark.line + 1})",
                mark,
            )
        seen[key] = key_node
    loader.flatten_mapping(node)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeySafeLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _yaml_problem(exc: yaml.YAMLError) -> Problem:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is not None:
        where = f"line {mark.line + 1}, column {mark.column + 1}"
        return Problem(
            "",
            f"not valid YAML at {where}: {problem}",
            f"check the indentation and quoting near line {mark.line + 1}",
        )
    return Problem("", f"not valid YAML: {problem}", "check the indentation and quoting")


def _refuse(problems: list[Problem]) -> SpecInvalid:
    first = problems[0]
    return SpecInvalid(
        "the service document is not valid"
        + (f": {len(problems)} problems" if len(problems) > 1 else f": {first}"),
        fix=first.fix,
        field=first.path,
        problems=problems,
    )


def parse_document(text: str | bytes) -> Any:
    """The one YAML (or JSON) document in `text`, parsed safely; SpecInvalid otherwise."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise _refuse(
                [Problem("", f"not UTF-8 text (byte {exc.start})", "save the file as UTF-8")]
            ) from exc
    try:
        documents = [doc for doc in yaml.load_all(text, Loader=_UniqueKeySafeLoader) if doc is not None]  # noqa: S506
    except yaml.YAMLError as exc:
        raise _refuse([_yaml_problem(exc)]) from exc
    if not documents:
        raise _refuse(
            [Problem("", "the document is empty", "write a mapping with a top-level key 'service:'")]
        )
    if len(documents) > 1:
        raise _refuse(
            [
                Problem(
                    "",
                    f"found {len(documents)} YAML documents; one service per document",
                    "split the file at each '---' and submit one service per file",
                )
            ]
        )
    return documents[0]


def service_from_dict(data: Mapping[str, Any]) -> ServiceSpec:
    """Validate parsed data (`{service: {...}}` or a bare service mapping) into a ServiceSpec."""
    if not isinstance(data, Mapping):
        kind = "a list" if isinstance(data, list) else f"a {type(data).__name__}"
        raise _refuse(
            [
                Problem(
                    "",
                    f"the document is {kind}, not a mapping",
                    "write a mapping with a top-level key 'service:'",
                )
            ]
        )
    if TOP_KEY in data:
        body, prefix = data[TOP_KEY], TOP_KEY
        others = [str(key) for key in data if key != TOP_KEY]
        if others:
            raise _refuse(
                [
                    Problem(join, f"unknown top-level field {join!r}", "put every field under 'service:'")
                    for join in others
                ]
            )
        if not isinstance(body, Mapping):
            raise _refuse(
                [Problem(TOP_KEY, "'service' is not a mapping", "write the service's fields under it")]
            )
    elif "name" in data and "containers" in data:
        body, prefix = data, ""
    else:
        raise _refuse(
            [
                Problem(
                    "",
                    "no top-level key 'service'",
                    "write 'service:' and put name, containers and the other fields under it",
                )
            ]
        )
    try:
        return ServiceSpec.model_validate(dict(body))
    except ValidationError as exc:
        raise _refuse(problems_from(exc, ServiceSpec, prefix)) from None


def load_service(text: str | bytes) -> ServiceSpec:
    """Parse a YAML or JSON service document; raise SpecInvalid listing every problem."""
    return service_from_dict(parse_document(text))
