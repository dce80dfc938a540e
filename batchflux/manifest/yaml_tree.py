"""YAML text → a small located tree (every key and value keeps its line), safely.

Built from the parser's event stream with an explicit stack, not PyYAML's recursive composer, so:

- only plain data: standard tags (str, int, float, bool, null, timestamp, map, seq); any other tag
  is a problem, and nothing is ever constructed from a tag;
- anchors and aliases work, including ``<<`` merge keys; an alias shares its node, and the
  expanded size is counted so a "billion laughs" document is refused (linear time, no blow-up);
- a recursive alias, nesting deeper than :data:`MAX_DEPTH`, duplicate keys, non-text keys and
  several documents are reported with their line;
- plain scalars keep their text, so ``aspect_ratio: 16:9`` stays ``"16:9"`` (YAML 1.1 would read a
  base-60 integer), and the manifest types values by its schema instead.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml

from batchflux.manifest.problems import Located, StopReading

MAX_DEPTH = 64
MAX_ALIAS_EXPANSION = 1_000_000  # nodes that aliases may add beyond those written

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STD = "tag:yaml.org,2002:"
_SCALAR_TAGS = {None, "!", *(_STD + t for t in ("str", "int", "float", "bool", "null", "timestamp"))}
_MAP_TAGS = {None, "!", _STD + "map"}
_SEQ_TAGS = {None, "!", _STD + "seq"}
_NULLS = {"", "~", "null", "Null", "NULL"}


@dataclass(frozen=True, slots=True)
class YScalar:
    text: str
    line: int
    plain: bool  # unquoted and untagged: YAML would resolve its type implicitly
    tag: str | None = None
    size: int = 1

    @property
    def is_null(self) -> bool:
        return (self.plain and self.text in _NULLS) or self.tag == _STD + "null"


@dataclass(slots=True)
class YMap:
    line: int
    items: dict[str, tuple[int, YNode]] = field(default_factory=dict)  # key → (key's line, value)
    size: int = 1


@dataclass(slots=True)
class YSeq:
    line: int
    items: list[YNode] = field(default_factory=list)
    size: int = 1


YNode = YScalar | YMap | YSeq


def kind(node: YNode) -> str:
    return "a mapping" if isinstance(node, YMap) else "a list" if isinstance(node, YSeq) else "a value"


@dataclass(slots=True)
class _Frame:
    node: YMap | YSeq
    anchor: str | None
    key: tuple[str, int] | None = None  # a mapping's key waiting for its value
    skip_value: bool = False  # the key was unusable; drop the value that follows
    merges: list[YMap] = field(default_factory=list)


def compose(data: bytes | str, where: Located) -> YNode | None:
    """The document's tree, or None for an empty document. Fatal problems raise :class:`StopReading`."""
    loader = _Loader(data)
    try:
        return _Composer(where).run(_events(loader))
    except yaml.reader.ReaderError as exc:
        head = data[: exc.position] if isinstance(exc.position, int) else data[:0]
        line = (head.count(b"\n") if isinstance(head, bytes) else head.count("\n")) + 1
        where.at(line, "", f"not readable as text: {exc.reason}")
        raise StopReading from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = exc.problem or exc.context or "not valid YAML"
        at = _last_line(data, mark.line + 1) if mark else None
        if "nesting depth" in what:  # libyaml >= 0.2.5 (PyYAML 6.0.4 wheels) stops deep nesting itself
            where.at(at, "", f"nested deeper than {MAX_DEPTH} levels")
        else:
            where.at(at, "", f"YAML syntax error: {what}")
        raise StopReading from None
    except yaml.YAMLError as exc:
        where.at(None, "", f"not readable as YAML: {exc}")
        raise StopReading from None
    finally:
        loader.dispose()


def _last_line(data: bytes | str, line: int) -> int:
    """``line``, or the file's last line when the parser points past it (an error at the end)."""
    newline = b"\n" if isinstance(data, bytes) else "\n"
    lines = data.count(newline) + (0 if data.endswith(newline) else 1)  # type: ignore[arg-type]
    return max(1, min(line, lines))


def _events(loader: Any) -> Iterable[yaml.Event]:
    while loader.check_event():
        yield loader.get_event()


class _Composer:
    def __init__(self, where: Located) -> None:
        self.where = where
        self.stack: list[_Frame] = []
        self.anchors: dict[str, YNode] = {}
        self.open_anchors: set[str] = set()
        self.written = 0
        self.root: YNode | None = None
        self.documents = 0

    def run(self, events: Iterable[yaml.Event]) -> YNode | None:
        for event in events:
            line = event.start_mark.line + 1 if event.start_mark else 0
            if isinstance(event, yaml.DocumentStartEvent):
                self.documents += 1
                if self.documents > 1:
                    self.where.at(line, "", "more than one YAML document ('---'); a manifest is one document")
                    raise StopReading
            elif isinstance(event, yaml.ScalarEvent):
                tag = self._tag(event.tag, _SCALAR_TAGS, line)
                self._add(YScalar(event.value, line, bool(event.implicit[0]), tag), event.anchor)
            elif isinstance(event, yaml.AliasEvent):
                self._alias(event.anchor or "", line)
            elif isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
                self._open(event, line)
            elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                self._close()
        return self.root

    def _tag(self, tag: str | None, allowed: set[str | None], line: int) -> str | None:
        if tag not in allowed:
            shown = tag.replace(_STD, "!!") if tag else tag
            self.where.at(line, "", f"YAML tag {shown!r} is not allowed; manifests hold plain data")
            return None
        return tag

    def _open(self, event: yaml.MappingStartEvent | yaml.SequenceStartEvent, line: int) -> None:
        if len(self.stack) >= MAX_DEPTH:
            self.where.at(line, "", f"nested deeper than {MAX_DEPTH} levels")
            raise StopReading
        is_map = isinstance(event, yaml.MappingStartEvent)
        self._tag(event.tag, _MAP_TAGS if is_map else _SEQ_TAGS, line)
        node: YMap | YSeq = YMap(line) if is_map else YSeq(line)
        if event.anchor is not None:
            self.open_anchors.add(event.anchor)
        self.stack.append(_Frame(node, event.anchor))

    def _close(self) -> None:
        frame = self.stack.pop()
        node = frame.node
        if isinstance(node, YMap):
            for source in frame.merges:
                for key, item in source.items.items():
                    if key not in node.items:
                        node.items[key] = item
                        node.size += 1 + item[1].size
        if frame.anchor is not None:
            self.open_anchors.discard(frame.anchor)
        self._add(node, frame.anchor)

    def _alias(self, anchor: str, line: int) -> None:
        if anchor in self.open_anchors:
            self.where.at(line, "", f"alias *{anchor} refers to a node that contains it (recursive)")
            raise StopReading
        node = self.anchors.get(anchor)
        if node is None:
            self.where.at(line, "", f"alias *{anchor} has no anchor &{anchor} before it")
            raise StopReading
        self._add(node, None, alias=True)

    def _add(self, node: YNode, anchor: str | None, alias: bool = False) -> None:
        if not alias:
            self.written += 1
            if anchor is not None:
                self.anchors[anchor] = node
        if node.size > self.written + MAX_ALIAS_EXPANSION:
            self.where.at(
                node.line,
                "",
                f"aliases expand to more than {MAX_ALIAS_EXPANSION} extra nodes "
                "(a 'billion laughs' document?)",
            )
            raise StopReading
        if not self.stack:
            self.root = node
            return
        frame = self.stack[-1]
        parent = frame.node
        if isinstance(parent, YSeq):
            parent.items.append(node)
            parent.size += node.size
        elif frame.key is None and not frame.skip_value:
            self._key(frame, node)
        else:
            self._value(frame, parent, node)

    def _key(self, frame: _Frame, node: YNode) -> None:
        if not isinstance(node, YScalar) or node.is_null:
            self.where.at(node.line, "", f"a mapping key must be text, not {kind(node)}")
            frame.skip_value = True
            return
        frame.key = (node.text, node.line)

    def _value(self, frame: _Frame, parent: YMap, node: YNode) -> None:
        key, skip = frame.key, frame.skip_value
        frame.key, frame.skip_value = None, False
        if skip or key is None:
            return
        name, line = key
        if name == "<<":
            self._merge(frame, node, line)
        elif name in parent.items:
            first = parent.items[name][0]
            self.where.at(line, name, f"duplicate key (first on line {first})")
        else:
            parent.items[name] = (line, node)
            parent.size += 1 + node.size

    def _merge(self, frame: _Frame, node: YNode, line: int) -> None:
        sources = node.items if isinstance(node, YSeq) else [node]
        for source in sources:
            if isinstance(source, YMap):
                frame.merges.append(source)
            else:
                why = f"a merge key takes a mapping or a list of mappings, not {kind(source)}"
                self.where.at(line, "<<", why)


def python_value(node: YNode) -> Any:
    """Plain Python data for ``node``, scalars typed the YAML 1.1 way (for models without a schema)."""
    if isinstance(node, YMap):
        return {key: python_value(value) for key, (_, value) in node.items.items()}
    if isinstance(node, YSeq):
        return [python_value(item) for item in node.items]
    if node.is_null:
        return None
    if not node.plain and node.tag in (None, "!", _STD + "str", _STD + "timestamp"):
        return node.text
    tag = node.tag or _RESOLVER.resolve(yaml.ScalarNode, node.text, (True, False))  # type: ignore[no-untyped-call]
    if tag in (_STD + "int", _STD + "float", _STD + "bool"):
        try:
            value = _CONSTRUCTOR.construct_object(yaml.ScalarNode(tag, node.text))
        except (yaml.YAMLError, ValueError):
            return node.text
        return value if not isinstance(value, float) or math.isfinite(value) else node.text  # JSON has no NaN
    return node.text


_RESOLVER = yaml.resolver.Resolver()
_CONSTRUCTOR = yaml.constructor.SafeConstructor()
