"""Thing model (TSL): parse the console's JSON export, check and encode values.

The Aliyun console exports a product's thing model as JSON whose specs are strings
(``"min": "0"``). This module turns it into frozen dataclasses and applies Alink's value rules
to what the cloud sends and to what the device posts.
"""

from __future__ import annotations

from collections.abc import Mapping
import contextlib
from dataclasses import dataclass, field
from enum import StrEnum
import json
import math
import re
from typing import Literal, NoReturn, cast

from .errors import AtError

# A console export is a few KiB; refuse absurd inputs before parsing them.
MAX_MODEL_BYTES = 256 * 1024
MAX_TEXT_BYTES = 10240
MAX_ARRAY_SIZE = 512
INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1

PROPERTY_POST = "thing.event.property.post"
PROPERTY_SET = "thing.service.property.set"
PROPERTY_GET = "thing.service.property.get"

# Letters, digits, underscore, at most 50; a custom function block adds one "blockId:" prefix.
_IDENTIFIER = re.compile(r"(?:[A-Za-z0-9_]{1,50}:)?[A-Za-z0-9_]{1,50}")
_LABEL_KEY = re.compile(r"-?[0-9]{1,10}")
_DIGITS = re.compile(r"[0-9]{1,19}")


class DataType(StrEnum):
    """The TSL data types, spelled as in the console export."""

    INT = "int"
    FLOAT = "float"
    DOUBLE = "double"
    BOOL = "bool"
    ENUM = "enum"
    TEXT = "text"
    DATE = "date"
    STRUCT = "struct"
    ARRAY = "array"


_NUMERIC = frozenset({DataType.INT, DataType.FLOAT, DataType.DOUBLE})
_SCALAR = frozenset(DataType) - {DataType.STRUCT, DataType.ARRAY}
_ANY = frozenset(DataType)


class ThingModelError(AtError, ValueError):
    """The thing model is malformed; the message names the problem and where it is."""


@dataclass(frozen=True)
class TypeSpec:
    """A data type with its specs; only the attributes of its ``type`` are set."""

    type: DataType
    min: float | None = None
    max: float | None = None
    step: float | None = None
    unit: str | None = None
    unit_name: str | None = None
    length: int | None = None
    labels: dict[int, str] = field(default_factory=dict, hash=False)
    fields: tuple[Param, ...] = ()
    item: TypeSpec | None = None
    size: int | None = None


@dataclass(frozen=True)
class Param:
    """A struct field, an event output or a service input/output."""

    identifier: str
    name: str
    data_type: TypeSpec


@dataclass(frozen=True)
class Property:
    """A property of the thing model."""

    identifier: str
    name: str
    access_mode: Literal["r", "rw"]
    required: bool
    data_type: TypeSpec

    @property
    def writable(self) -> bool:
        """The cloud may set it."""
        return self.access_mode == "rw"


@dataclass(frozen=True)
class Event:
    """An event the device posts."""

    identifier: str
    name: str
    type: Literal["info", "alert", "error"]
    method: str
    output: tuple[Param, ...]


@dataclass(frozen=True)
class Service:
    """A service the cloud calls."""

    identifier: str
    name: str
    call_type: Literal["async", "sync"]
    method: str
    input: tuple[Param, ...]
    output: tuple[Param, ...]


@dataclass(frozen=True)
class ThingModel:
    """A product's thing model."""

    product_key: str | None
    properties: tuple[Property, ...]
    events: tuple[Event, ...] = ()
    services: tuple[Service, ...] = ()

    @property
    def custom_events(self) -> tuple[Event, ...]:
        """The events other than the built-in property post."""
        return tuple(e for e in self.events if e.method != PROPERTY_POST)

    @property
    def custom_services(self) -> tuple[Service, ...]:
        """The services other than the built-in property set and get."""
        return tuple(s for s in self.services if s.method not in (PROPERTY_SET, PROPERTY_GET))

    # Defined after the properties above: inside the class body this name hides the builtin.
    def property(self, identifier: str) -> Property | None:
        """The property with this identifier, if the model has one."""
        return next((p for p in self.properties if p.identifier == identifier), None)


def default_model() -> ThingModel:
    """The model used when the user gives none: a single switch."""
    switch = TypeSpec(DataType.BOOL, labels={0: "关闭", 1: "开启"})
    return ThingModel(None, (Property("PowerSwitch", "电源开关", "rw", False, switch),))


# --- parsing: every failure names the entry ("properties[3] (Brightness)") and the path ---

_ACCESS_MODES: tuple[Literal["r", "rw"], ...] = ("r", "rw")
_EVENT_TYPES: tuple[Literal["info", "alert", "error"], ...] = ("info", "alert", "error")
_CALL_TYPES: tuple[Literal["async", "sync"], ...] = ("async", "sync")


def parse_thing_model(source: str | bytes | Mapping[str, object]) -> ThingModel:
    """The thing model in a TSL JSON export (text, bytes or the decoded object)."""
    doc = _load(source)
    profile = _object(doc.get("profile", {}), "", "profile")
    product_key = _text(profile, "productKey", "", "profile.")
    properties = tuple(_property(*entry) for entry in _entries(doc, "properties"))
    by_id = {p.identifier: p for p in properties}
    events = tuple(_event(*entry, by_id) for entry in _entries(doc, "events"))
    services = tuple(_service(*entry, by_id) for entry in _entries(doc, "services"))
    return ThingModel(product_key, properties, events, services)


def _fail(where: str, problem: str) -> NoReturn:
    raise ThingModelError(f"{where}: {problem}" if where else problem)


def _show(value: object) -> str:
    """A short repr for messages: values may be long."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def _load(source: str | bytes | Mapping[str, object]) -> Mapping[str, object]:
    if isinstance(source, Mapping):
        return source
    too_big = f"the thing model is larger than {MAX_MODEL_BYTES // 1024} KiB"
    if isinstance(source, bytes):
        if len(source) > MAX_MODEL_BYTES:
            _fail("", too_big)
        try:
            text = source.decode("utf-8-sig")
        except UnicodeDecodeError:
            _fail("", "the thing model is not UTF-8 text")
    else:
        if len(source.encode("utf-8", "surrogatepass")) > MAX_MODEL_BYTES:
            _fail("", too_big)
        text = source.removeprefix("\ufeff")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        _fail(
            "",
            f"the thing model is not valid JSON ({err.msg} at line {err.lineno} "
            f"column {err.colno})",
        )
    except (ValueError, RecursionError):
        _fail("", "the thing model is not valid JSON (nested too deeply or a number too long)")
    if not isinstance(doc, dict):
        _fail("", "the thing model must be a JSON object")
    return cast(dict[str, object], doc)


def _object(raw: object, where: str, path: str) -> Mapping[str, object]:
    if not isinstance(raw, Mapping):
        _fail(where, f"{path or 'the entry'} is not an object")
    return cast(Mapping[str, object], raw)


def _list(raw: object, where: str, path: str) -> list[object] | tuple[object, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list | tuple):
        _fail(where, f"{path} is not a list")
    return cast(list[object], raw)


def _text(obj: Mapping[str, object], key: str, where: str, prefix: str) -> str | None:
    """An optional string member; the console leaves some of them empty."""
    value = obj.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        _fail(where, f"{prefix}{key} is not a string")
    return value


def _choice[T: str](
    obj: Mapping[str, object], key: str, where: str, options: tuple[T, ...], default: T | None
) -> T:
    value = obj.get(key, default)
    for option in options:
        if value == option:
            return option
    if value is None:
        _fail(where, f"{key} is missing")
    _fail(where, f"{key} {_show(value)} is not one of {', '.join(options)}")


def _named(raw: object, where: str) -> tuple[Mapping[str, object], str, str, str]:
    """An entry's object, identifier, name (defaulting to the identifier) and location."""
    obj = _object(raw, where, "")
    value = obj.get("identifier")
    if not isinstance(value, str) or not _IDENTIFIER.fullmatch(value):
        _fail(
            where,
            f"identifier {_show(value)} is not valid (1-50 letters, digits or "
            "underscores, with an optional 'blockId:' prefix)",
        )
    where = f"{where} ({value})"
    return obj, value, _text(obj, "name", where, "") or value, where


def _entries(
    doc: Mapping[str, object], key: str
) -> list[tuple[Mapping[str, object], str, str, str]]:
    """One of the top-level lists, refusing duplicate identifiers."""
    entries: list[tuple[Mapping[str, object], str, str, str]] = []
    seen: set[str] = set()
    for index, raw in enumerate(_list(doc.get(key), "", key)):
        entry = _named(raw, f"{key}[{index}]")
        _remember(seen, entry[1], entry[3])
        entries.append(entry)
    return entries


def _remember(seen: set[str], identifier: str, where: str) -> None:
    if identifier in seen:
        _fail(where, "the identifier is a duplicate")
    seen.add(identifier)


def _property(obj: Mapping[str, object], identifier: str, name: str, where: str) -> Property:
    required = obj.get("required", False)
    if not isinstance(required, bool):
        _fail(where, "required is not true or false")
    access = _choice(obj, "accessMode", where, _ACCESS_MODES, None)
    return Property(identifier, name, access, required, _data_type(obj, where, _ANY))


def _event(
    obj: Mapping[str, object],
    identifier: str,
    name: str,
    where: str,
    properties: Mapping[str, Property],
) -> Event:
    return Event(
        identifier,
        name,
        _choice(obj, "type", where, _EVENT_TYPES, "info"),
        _text(obj, "method", where, "") or f"thing.event.{identifier}.post",
        _params(obj.get("outputData"), where, "outputData", _ANY, properties),
    )


def _service(
    obj: Mapping[str, object],
    identifier: str,
    name: str,
    where: str,
    properties: Mapping[str, Property],
) -> Service:
    return Service(
        identifier,
        name,
        _choice(obj, "callType", where, _CALL_TYPES, "async"),
        _text(obj, "method", where, "") or f"thing.service.{identifier}",
        _params(obj.get("inputData"), where, "inputData", _ANY, properties),
        _params(obj.get("outputData"), where, "outputData", _ANY, properties),
    )


def _params(
    raw: object,
    where: str,
    path: str,
    allowed: frozenset[DataType],
    properties: Mapping[str, Property],
) -> tuple[Param, ...]:
    """A parameter list; a bare identifier names a property (property get's inputData)."""
    params: list[Param] = []
    seen: set[str] = set()
    for index, entry in enumerate(_list(raw, where, path)):
        here = f"{where}: {path}[{index}]"
        if isinstance(entry, str):
            prop = properties.get(entry)
            if prop is None:
                _fail(here, f"{_show(entry)} is not a property of the model")
            param, here = Param(prop.identifier, prop.name, prop.data_type), f"{here} ({entry})"
        else:
            obj, identifier, name, here = _named(entry, here)
            param = Param(identifier, name, _data_type(obj, here, allowed))
        _remember(seen, param.identifier, here)
        params.append(param)
    return tuple(params)


def _data_type(obj: Mapping[str, object], where: str, allowed: frozenset[DataType]) -> TypeSpec:
    raw = obj.get("dataType")
    if raw is None:
        _fail(where, "dataType is missing")
    return _type_of(_object(raw, where, "dataType"), where, "dataType", allowed)


def _type_of(
    obj: Mapping[str, object], where: str, path: str, allowed: frozenset[DataType]
) -> TypeSpec:
    """A ``{type, specs}`` object found at ``path`` of the entry ``where``."""
    raw_kind = obj.get("type")
    if raw_kind is None:
        _fail(where, f"{path}.type is missing")
    if not isinstance(raw_kind, str) or raw_kind not in _ANY:
        _fail(where, f"{path}.type {_show(raw_kind)} is not a known data type")
    kind = DataType(raw_kind)
    if kind not in allowed:
        place = "inside a struct" if allowed == _SCALAR else "as an array item"
        _fail(where, f"{path}.type {kind} is not allowed {place}")
    specs, path = obj.get("specs"), f"{path}.specs"
    if kind is DataType.STRUCT:
        return TypeSpec(kind, fields=_params(specs, where, path, _SCALAR, {}))
    if kind in (DataType.BOOL, DataType.ENUM):
        return TypeSpec(kind, labels=_labels(kind, specs, where, path))
    # The remaining types take an object of specs, which the console may leave out.
    members = _object({} if specs is None else specs, where, path)
    if kind in _NUMERIC:
        return _numeric(kind, members, where, path)
    if kind is DataType.TEXT:
        return TypeSpec(kind, length=_count(members, "length", where, path, MAX_TEXT_BYTES))
    if kind is DataType.ARRAY:
        item = members.get("item")
        if item is None:
            _fail(where, f"{path}.item is missing")
        item_path = f"{path}.item"
        return TypeSpec(
            kind,
            item=_type_of(_object(item, where, item_path), where, item_path, _ANY - {kind}),
            size=_count(members, "size", where, path, MAX_ARRAY_SIZE),
        )
    return TypeSpec(kind)


def _number(specs: Mapping[str, object], key: str, where: str, path: str) -> float | None:
    """A number of the specs, written as a string by the console (``"min": "0"``)."""
    value = specs.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value.strip())
    try:
        return _finite(value)
    except ValueError:
        _fail(where, f"{path}.{key} is not a number")


def _count(specs: Mapping[str, object], key: str, where: str, path: str, top: int) -> int | None:
    number = _number(specs, key, where, path)
    if number is None:
        return None
    if not number.is_integer() or not 1 <= number <= top:
        _fail(where, f"{path}.{key} must be a whole number from 1 to {top}")
    return int(number)


def _numeric(kind: DataType, specs: Mapping[str, object], where: str, path: str) -> TypeSpec:
    low, high, step = (_number(specs, key, where, path) for key in ("min", "max", "step"))
    if kind is DataType.INT:
        for key, number in (("min", low), ("max", high), ("step", step)):
            if number is not None and not number.is_integer():
                _fail(where, f"{path}.{key} is not a whole number (the type is int)")
    if low is not None and high is not None and low > high:
        _fail(where, f"{path}.min is greater than {path}.max")
    if step is not None and step <= 0:
        _fail(where, f"{path}.step is not positive")
    return TypeSpec(
        kind,
        min=low,
        max=high,
        step=step,
        unit=_text(specs, "unit", where, f"{path}."),
        unit_name=_text(specs, "unitName", where, f"{path}."),
    )


def _labels(kind: DataType, raw: object, where: str, path: str) -> dict[int, str]:
    """``{"0": "关闭", "1": "开启"}``: value to label."""
    labels: dict[int, str] = {}
    for key, label in _object({} if raw is None else raw, where, path).items():
        if not isinstance(key, str) or not _LABEL_KEY.fullmatch(key):
            _fail(where, f"{path} key {_show(key)} is not an integer")
        value = int(key)
        if kind is DataType.BOOL and value not in (0, 1):
            _fail(where, f"{path} key {key!r} is not 0 or 1 (the type is bool)")
        if not isinstance(label, str):
            _fail(where, f"{path}.{key} is not a string")
        if value in labels:
            _fail(where, f"{path} has the value {value} twice")
        labels[value] = label
    if kind is DataType.ENUM and not labels:
        _fail(where, f"{path} lists no values (the type is enum)")
    return labels


# --- values: what the cloud sends is checked, what the device posts is encoded -------------


def validate_value(spec: TypeSpec, value: object) -> object:
    """The Python value of a JSON-decoded ``value`` of type ``spec``, or ``ValueError``."""
    match spec.type:
        case DataType.BOOL:
            if isinstance(value, bool):
                return value
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
            raise ValueError(f"expected 0 or 1, got {_show(value)}")
        case DataType.INT:
            return _in_range(spec, _integer(value), INT32_MIN, INT32_MAX)
        case DataType.FLOAT | DataType.DOUBLE:
            return _in_range(spec, _finite(value), -math.inf, math.inf)
        case DataType.ENUM:
            key = _integer(value)
            if key not in spec.labels:
                known = ", ".join(str(k) for k in sorted(spec.labels))
                raise ValueError(f"{key} is not one of the enum values {known}")
            return key
        case DataType.TEXT:
            return _text_value(spec, value)
        case DataType.DATE:
            return _date(value)
        case DataType.STRUCT:
            return _struct(spec, value)
        case DataType.ARRAY:
            return _array(spec, value)


def encode_value(spec: TypeSpec, value: object) -> object:
    """The JSON-ready form Alink wants for ``value`` (checked first), or ``ValueError``."""
    return _encode(spec, validate_value(spec, value))


def _encode(spec: TypeSpec, value: object) -> object:
    """Encode a value ``validate_value`` already accepted."""
    match spec.type:
        case DataType.BOOL:
            return int(cast(bool, value))
        case DataType.DATE:
            return str(value)
        case DataType.STRUCT:
            types = {f.identifier: f.data_type for f in spec.fields}
            return {k: _encode(types[k], v) for k, v in cast(dict[str, object], value).items()}
        case DataType.ARRAY:
            item = cast(TypeSpec, spec.item)
            return [_encode(item, v) for v in cast(list[object], value)]
        case _:
            return value


def _integer(value: object) -> int:
    """An int; a float without a fraction (``5.0``) counts, a bool does not."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise ValueError(f"expected an integer, got {_show(value)}")


def _finite(value: object) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if math.isfinite(number):
            return number
    raise ValueError(f"expected a finite number, got {_show(value)}")


def _in_range[N: (int, float)](spec: TypeSpec, number: N, low: float, high: float) -> N:
    low = max(low, -math.inf if spec.min is None else spec.min)
    high = min(high, math.inf if spec.max is None else spec.max)
    if number < low:
        raise ValueError(f"{number} is below the minimum {_plain(low)}")
    if number > high:
        raise ValueError(f"{number} is above the maximum {_plain(high)}")
    return number


def _plain(number: float) -> str:
    return str(int(number)) if number.is_integer() else str(number)


def _text_value(spec: TypeSpec, value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {_show(value)}")
    limit = MAX_TEXT_BYTES if spec.length is None else spec.length
    # Aliyun counts the length of text in UTF-8 bytes, not in characters.
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > limit:
        raise ValueError(f"the text is {size} bytes long, more than {limit}")
    return value


def _date(value: object) -> int:
    """UTC milliseconds, sent as a string of digits (an integer is accepted too)."""
    if isinstance(value, str):
        if not _DIGITS.fullmatch(value):
            raise ValueError(f"expected milliseconds since the epoch, got {_show(value)}")
        value = int(value)
    millis = _integer(value)
    if not 0 <= millis <= INT64_MAX:
        raise ValueError(f"{millis} is not a time in milliseconds since the epoch")
    return millis


def _struct(spec: TypeSpec, value: object) -> dict[str, object]:
    if not isinstance(value, Mapping):
        raise ValueError(f"expected an object, got {_show(value)}")
    types = {f.identifier: f.data_type for f in spec.fields}
    checked: dict[str, object] = {}
    for key, member in cast(Mapping[object, object], value).items():
        if not isinstance(key, str) or key not in types:
            raise ValueError(f"unknown field {_show(key)}")
        try:
            checked[key] = validate_value(types[key], member)
        except ValueError as err:
            raise ValueError(f"field {key}: {err}") from None
    return checked


def _array(spec: TypeSpec, value: object) -> list[object]:
    if spec.item is None:
        raise ValueError("the array type has no item type")
    if not isinstance(value, list | tuple):
        raise ValueError(f"expected a list, got {_show(value)}")
    limit = MAX_ARRAY_SIZE if spec.size is None else spec.size
    if len(value) > limit:
        raise ValueError(f"the list has {len(value)} items, more than {limit}")
    checked: list[object] = []
    for index, member in enumerate(cast(list[object], value)):
        try:
            checked.append(validate_value(spec.item, member))
        except ValueError as err:
            raise ValueError(f"item {index}: {err}") from None
    return checked
