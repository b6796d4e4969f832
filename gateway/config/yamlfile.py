"""Reading YAML as the gateway's config and profiles need it: a key given twice is an error.

PyYAML keeps the last of two equal keys in a mapping without a word, so a second
`sinks:` further down a config silently replaces the first. Here the document is
composed into nodes first, every mapping is checked for repeated keys (each
named by its key path and both line numbers), and only then built into data.
"""

from __future__ import annotations

from typing import Any

import yaml

from gateway.config.validate import Problem


class YamlError(Exception):
    """The text is not valid YAML; `where` is "line L, column C" when known."""

    def __init__(self, where: str, what: str) -> None:
        super().__init__(f"{where}: {what}" if where else what)
        self.where = where
        self.what = what


def load_yaml(text: str) -> tuple[Any, list[Problem]]:
    """The data in `text`, and a problem for every key given twice in one mapping.

    Raises YamlError when the text is not YAML at all.
    """
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            problems = duplicate_keys(node) if node is not None else []
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise YamlError(where, getattr(exc, "problem", None) or str(exc)) from None
    return data, problems


def duplicate_keys(node: yaml.Node, path: str = "") -> list[Problem]:
    """Every key that appears twice in one mapping under `node`, by key path."""
    out: list[Problem] = []
    if isinstance(node, yaml.MappingNode):
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else None
            child = f"{path}.{key}" if path and key is not None else (key or path)
            if key is not None and key != "<<":
                line = key_node.start_mark.line + 1
                if key in first_line:
                    out.append(Problem(child, f"given twice (lines {first_line[key]} and "
                                              f"{line}): YAML would keep only the second; "
                                              "merge them into one"))
                else:
                    first_line[key] = line
            out.extend(duplicate_keys(value_node, child))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out.extend(duplicate_keys(item, f"{path}[{i}]"))
    return out
