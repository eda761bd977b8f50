"""The thing-model parser and the value rules of the TSL data types."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
import re
from typing import Any

import pytest

from custom_components.aliyun_iot_at.core.tsl import (
    MAX_MODEL_BYTES,
    DataType,
    Param,
    ThingModelError,
    TypeSpec,
    default_model,
    encode_value,
    parse_thing_model,
    validate_value,
)

SAMPLE_PATH = Path(__file__).parent.parent / "fixtures" / "smart_light.json"
SAMPLE_TEXT = SAMPLE_PATH.read_text(encoding="utf-8")
SAMPLE = parse_thing_model(SAMPLE_TEXT)


def spec_of(identifier: str) -> TypeSpec:
    prop = SAMPLE.property(identifier)
    assert prop is not None
    return prop.data_type


# --- the sample model ----------------------------------------------------------------------


def test_sample_profile_and_identifiers() -> None:
    assert SAMPLE.product_key == "a1FPRUWiCPA"
    assert [p.identifier for p in SAMPLE.properties] == [
        "PowerSwitch",
        "Brightness",
        "ColorTemperature",
        "WorkMode",
        "CurrentTemperature",
        "RealTimePower",
        "RGBColor",
        "LocalTimer",
        "DeviceAlias",
        "LastOnTime",
    ]


def test_sample_bool_and_enum() -> None:
    power = SAMPLE.property("PowerSwitch")
    assert power is not None
    assert power.name == "电源开关"
    assert power.writable and not power.required
    assert power.data_type == TypeSpec(DataType.BOOL, labels={0: "关闭", 1: "开启"})
    work_mode = spec_of("WorkMode")
    assert work_mode.type is DataType.ENUM
    assert work_mode.labels == {0: "手动", 1: "阅读", 2: "影院", 3: "夜灯", 4: "生活", 5: "柔和"}


def test_sample_numbers() -> None:
    assert spec_of("Brightness") == TypeSpec(
        DataType.INT, min=0, max=100, step=1, unit="%", unit_name="百分比"
    )
    assert spec_of("ColorTemperature").min == 2700
    temperature = SAMPLE.property("CurrentTemperature")
    assert temperature is not None and not temperature.writable
    assert temperature.data_type == TypeSpec(
        DataType.FLOAT, min=-40, max=120, step=0.1, unit="°C", unit_name="摄氏度"
    )


def test_sample_struct_array_text_date() -> None:
    rgb = spec_of("RGBColor")
    assert rgb.type is DataType.STRUCT
    assert [f.identifier for f in rgb.fields] == ["Red", "Green", "Blue"]
    assert rgb.fields[0] == Param("Red", "红色", TypeSpec(DataType.INT, min=0, max=255, step=1))
    assert spec_of("LocalTimer") == TypeSpec(DataType.ARRAY, item=TypeSpec(DataType.INT), size=5)
    assert spec_of("DeviceAlias") == TypeSpec(DataType.TEXT, length=32)
    assert spec_of("LastOnTime") == TypeSpec(DataType.DATE)


def test_sample_events_and_services() -> None:
    assert [e.identifier for e in SAMPLE.events] == ["post", "Error"]
    (error,) = SAMPLE.custom_events
    assert (error.identifier, error.type, error.method) == (
        "Error",
        "error",
        "thing.event.Error.post",
    )
    assert error.output[0].data_type.labels == {0: "正常", 1: "过载"}
    (toggle,) = SAMPLE.custom_services
    assert (toggle.identifier, toggle.call_type, toggle.method) == (
        "Toggle",
        "sync",
        "thing.service.Toggle",
    )
    assert toggle.input == ()
    assert toggle.output[0].identifier == "PowerSwitch"
    # Property get lists bare property identifiers as its input: they resolve to the properties.
    get = SAMPLE.services[1]
    assert [(p.identifier, p.data_type) for p in get.input] == [
        ("PowerSwitch", spec_of("PowerSwitch")),
        ("Brightness", spec_of("Brightness")),
    ]


def test_property_lookup_of_an_unknown_identifier() -> None:
    assert SAMPLE.property("Nope") is None


def test_bytes_with_bom_and_decoded_objects_parse_alike() -> None:
    assert parse_thing_model(b"\xef\xbb\xbf" + SAMPLE_TEXT.encode()) == SAMPLE
    assert parse_thing_model(json.loads(SAMPLE_TEXT)) == SAMPLE


def test_missing_lists_and_derived_defaults() -> None:
    model = parse_thing_model(
        {
            "events": [{"identifier": "Alarm", "outputData": []}],
            "services": [{"identifier": "Reset"}],
        }
    )
    assert model.product_key is None and model.properties == ()
    assert model.events[0].method == "thing.event.Alarm.post"
    assert (model.events[0].name, model.events[0].type) == ("Alarm", "info")
    assert model.services[0].method == "thing.service.Reset"
    assert model.services[0].call_type == "async"


def test_block_identifiers_and_the_longest_identifier() -> None:
    longest = "a" * 50
    model = parse_thing_model(
        {"properties": [prop(identifier=f"{longest}:{longest}"), prop(identifier=longest)]}
    )
    assert model.property(f"{longest}:{longest}") is not None


def test_default_model() -> None:
    model = default_model()
    (switch,) = model.properties
    assert switch.identifier == "PowerSwitch" and switch.writable
    assert switch.data_type == TypeSpec(DataType.BOOL, labels={0: "关闭", 1: "开启"})
    assert model.custom_events == () and model.custom_services == ()


# --- malformed models ----------------------------------------------------------------------


def prop(**members: Any) -> dict[str, Any]:
    """A valid property, changed by ``members`` (``None`` removes a member)."""
    base: dict[str, Any] = {
        "identifier": "Level",
        "name": "Level",
        "accessMode": "rw",
        "required": False,
        "dataType": {"type": "int", "specs": {"min": "0", "max": "10", "step": "1"}},
    }
    base.update(members)
    return {k: v for k, v in base.items() if v is not None}


def typed(kind: str, specs: object) -> dict[str, Any]:
    return prop(dataType={"type": kind, "specs": specs})


INT_SPECS = {"type": "int", "specs": {"min": "0", "max": "9"}}

BAD_PROPERTIES: list[tuple[str, object, str]] = [
    ("not an object", "PowerSwitch", "properties[0]: the entry is not an object"),
    ("no identifier", prop(identifier=None), "properties[0]: identifier None is not valid"),
    ("empty identifier", prop(identifier=""), "identifier '' is not valid"),
    ("long identifier", prop(identifier="a" * 51), "is not valid"),
    ("hyphen", prop(identifier="a-b"), "identifier 'a-b' is not valid"),
    ("two blocks", prop(identifier="a:b:c"), "identifier 'a:b:c' is not valid"),
    ("number identifier", prop(identifier=5), "identifier 5 is not valid"),
    ("no dataType", prop(dataType=None), "properties[0] (Level): dataType is missing"),
    ("dataType not object", prop(dataType="int"), "(Level): dataType is not an object"),
    ("no type", prop(dataType={"specs": {}}), "(Level): dataType.type is missing"),
    (
        "unknown type",
        prop(dataType={"type": "integer"}),
        "(Level): dataType.type 'integer' is not a known data type",
    ),
    (
        "min not a number",
        typed("int", {"min": "zero"}),
        "(Level): dataType.specs.min is not a number",
    ),
    ("max infinite", typed("float", {"max": "inf"}), "dataType.specs.max is not a number"),
    ("max a bool", typed("float", {"max": True}), "dataType.specs.max is not a number"),
    ("min over max", typed("int", {"min": "5", "max": "1"}), "specs.min is greater than"),
    ("int fraction", typed("int", {"min": "0.5"}), "dataType.specs.min is not a whole number"),
    ("zero step", typed("double", {"step": "0"}), "dataType.specs.step is not positive"),
    ("specs not object", typed("int", ["0", "1"]), "dataType.specs is not an object"),
    ("unit not text", typed("float", {"unit": 5}), "dataType.specs.unit is not a string"),
    ("bool key 2", typed("bool", {"0": "off", "2": "on"}), "key '2' is not 0 or 1"),
    ("enum key text", typed("enum", {"a": "x"}), "dataType.specs key 'a' is not an integer"),
    ("enum empty", typed("enum", {}), "dataType.specs lists no values"),
    ("enum twice", typed("enum", {"1": "a", "01": "b"}), "has the value 1 twice"),
    ("label not text", typed("enum", {"1": 1}), "dataType.specs.1 is not a string"),
    ("text length 0", typed("text", {"length": "0"}), "specs.length must be a whole number"),
    ("text too long", typed("text", {"length": "10241"}), "from 1 to 10240"),
    ("struct not list", typed("struct", {}), "dataType.specs is not a list"),
    (
        "struct in struct",
        typed("struct", [{"identifier": "In", "dataType": {"type": "struct", "specs": []}}]),
        "(Level): dataType.specs[0] (In): dataType.type struct is not allowed inside a struct",
    ),
    (
        "array in struct",
        typed("struct", [{"identifier": "In", "dataType": {"type": "array", "specs": {}}}]),
        "not allowed inside a struct",
    ),
    (
        "struct field twice",
        typed(
            "struct",
            [
                {"identifier": "A", "dataType": INT_SPECS},
                {"identifier": "A", "dataType": INT_SPECS},
            ],
        ),
        "dataType.specs[1] (A): the identifier is a duplicate",
    ),
    (
        "struct field min",
        typed("struct", [{"identifier": "A", "dataType": {"type": "int", "specs": {"min": "x"}}}]),
        "(Level): dataType.specs[0] (A): dataType.specs.min is not a number",
    ),
    ("array no item", typed("array", {"size": "3"}), "(Level): dataType.specs.item is missing"),
    (
        "array of arrays",
        typed("array", {"item": {"type": "array", "specs": {"item": INT_SPECS}}}),
        "dataType.specs.item.type array is not allowed as an array item",
    ),
    (
        "array item min",
        typed("array", {"item": {"type": "int", "specs": {"min": "x"}}}),
        "(Level): dataType.specs.item.specs.min is not a number",
    ),
    ("array too big", typed("array", {"size": "513", "item": INT_SPECS}), "from 1 to 512"),
    ("no accessMode", prop(accessMode=None), "(Level): accessMode is missing"),
    ("write-only", prop(accessMode="w"), "(Level): accessMode 'w' is not one of r, rw"),
    ("required text", prop(required="yes"), "(Level): required is not true or false"),
    ("name not text", prop(name=5), "(Level): name is not a string"),
]


@pytest.mark.parametrize(
    ("entry", "message"), [(b[1], b[2]) for b in BAD_PROPERTIES], ids=[b[0] for b in BAD_PROPERTIES]
)
def test_malformed_properties(entry: object, message: str) -> None:
    with pytest.raises(ThingModelError, match=re.escape(message)):
        parse_thing_model({"properties": [entry]})


def test_duplicate_property_names_the_second() -> None:
    with pytest.raises(
        ThingModelError, match=re.escape("properties[1] (Level): the identifier is a duplicate")
    ):
        parse_thing_model({"properties": [prop(), prop(name="again")]})


def test_sample_with_a_broken_property_names_its_index() -> None:
    doc = json.loads(SAMPLE_TEXT)
    doc["properties"][1]["dataType"]["specs"]["min"] = "low"
    with pytest.raises(
        ThingModelError, match=re.escape("properties[1] (Brightness): dataType.specs.min is not a")
    ):
        parse_thing_model(json.dumps(doc))


BAD_MODELS: list[tuple[str, object, str]] = [
    ("not JSON", "{", "the thing model is not valid JSON (Expecting property name"),
    ("a list", "[]", "the thing model must be a JSON object"),
    ("not UTF-8", b'{"a": "\xff"}', "the thing model is not UTF-8 text"),
    ("deep", "[" * 200_000 + "]" * 200_000, "larger than 256 KiB"),
    ("deep but small", "[" * 100_000, "the thing model is not valid JSON"),
    ("properties object", {"properties": {}}, "properties is not a list"),
    ("profile list", {"profile": []}, "profile is not an object"),
    ("product key number", {"profile": {"productKey": 1}}, "profile.productKey is not a string"),
    ("event type", {"events": [{"identifier": "E", "type": "warn"}]}, "events[0] (E): type 'warn'"),
    (
        "event output",
        {"events": [{"identifier": "E", "outputData": [{"identifier": "x"}]}]},
        "events[0] (E): outputData[0] (x): dataType is missing",
    ),
    (
        "events twice",
        {"events": [{"identifier": "E"}, {"identifier": "E"}]},
        "events[1] (E): the identifier is a duplicate",
    ),
    (
        "call type",
        {"services": [{"identifier": "S", "callType": "later"}]},
        "services[0] (S): callType 'later' is not one of async, sync",
    ),
    (
        "unknown input property",
        {"services": [{"identifier": "get", "inputData": ["Nope"]}]},
        "services[0] (get): inputData[0]: 'Nope' is not a property of the model",
    ),
    (
        "output not list",
        {"services": [{"identifier": "S", "outputData": {}}]},
        "services[0] (S): outputData is not a list",
    ),
]


@pytest.mark.parametrize(
    ("source", "message"), [(b[1], b[2]) for b in BAD_MODELS], ids=[b[0] for b in BAD_MODELS]
)
def test_malformed_models(source: Any, message: str) -> None:
    with pytest.raises(ThingModelError, match=re.escape(message)):
        parse_thing_model(source)


def test_size_is_bounded_in_bytes() -> None:
    padding = " " * (MAX_MODEL_BYTES - 2)
    assert parse_thing_model("{" + padding + "}").properties == ()
    with pytest.raises(ThingModelError, match="larger than"):
        parse_thing_model(("{" + padding + " }").encode())
    # Three bytes per character in UTF-8: the bound is in bytes, not characters.
    with pytest.raises(ThingModelError, match="larger than"):
        parse_thing_model('{"x": "' + "中" * (MAX_MODEL_BYTES // 3) + '"}')


def test_thing_model_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="not valid JSON"):
        parse_thing_model("nope")


def test_the_sample_is_not_changed_by_parsing() -> None:
    doc = json.loads(SAMPLE_TEXT)
    before = copy.deepcopy(doc)
    parse_thing_model(doc)
    assert doc == before


# --- values --------------------------------------------------------------------------------

BRIGHTNESS = spec_of("Brightness")
TEMPERATURE = spec_of("CurrentTemperature")
DOUBLE = TypeSpec(DataType.DOUBLE)
INT = TypeSpec(DataType.INT)

GOOD_VALUES: list[tuple[str, TypeSpec, object, object, object]] = [
    # name, spec, value from the cloud, validated, encoded
    ("bool 1", spec_of("PowerSwitch"), 1, True, 1),
    ("bool 0", spec_of("PowerSwitch"), 0, False, 0),
    ("bool true", spec_of("PowerSwitch"), True, True, 1),
    ("bool false", spec_of("PowerSwitch"), False, False, 0),
    ("int", BRIGHTNESS, 42, 42, 42),
    ("int 5.0", BRIGHTNESS, 5.0, 5, 5),
    ("int at min", BRIGHTNESS, 0, 0, 0),
    ("int at max", BRIGHTNESS, 100, 100, 100),
    ("int32 max", INT, 2**31 - 1, 2**31 - 1, 2**31 - 1),
    ("int32 min", INT, -(2**31), -(2**31), -(2**31)),
    ("float", TEMPERATURE, 22.5, 22.5, 22.5),
    ("float from int", TEMPERATURE, 10, 10.0, 10.0),
    ("float at min", TEMPERATURE, -40, -40.0, -40.0),
    ("double unbounded", DOUBLE, 1e300, 1e300, 1e300),
    ("enum", spec_of("WorkMode"), 3, 3, 3),
    ("enum 2.0", spec_of("WorkMode"), 2.0, 2, 2),
    ("text", spec_of("DeviceAlias"), "客厅灯", "客厅灯", "客厅灯"),
    ("text 32 bytes", spec_of("DeviceAlias"), "灯" * 10 + "ab", "灯" * 10 + "ab", "灯" * 10 + "ab"),
    ("text empty", spec_of("DeviceAlias"), "", "", ""),
    ("text cap", TypeSpec(DataType.TEXT), "a" * 10240, "a" * 10240, "a" * 10240),
    ("date string", spec_of("LastOnTime"), "1700000000000", 1700000000000, "1700000000000"),
    ("date int", spec_of("LastOnTime"), 1700000000000, 1700000000000, "1700000000000"),
    ("date zero", spec_of("LastOnTime"), "0", 0, "0"),
    (
        "struct",
        spec_of("RGBColor"),
        {"Red": 1, "Blue": 3.0},
        {"Red": 1, "Blue": 3},
        {"Red": 1, "Blue": 3},
    ),
    ("struct empty", spec_of("RGBColor"), {}, {}, {}),
    ("array", spec_of("LocalTimer"), [1, 2.0, 3], [1, 2, 3], [1, 2, 3]),
    ("array full", spec_of("LocalTimer"), [0] * 5, [0] * 5, [0] * 5),
    ("array tuple", spec_of("LocalTimer"), (7,), [7], [7]),
    (
        "array of structs",
        TypeSpec(
            DataType.ARRAY,
            item=TypeSpec(DataType.STRUCT, fields=(Param("On", "On", TypeSpec(DataType.BOOL)),)),
        ),
        [{"On": 1}, {"On": False}],
        [{"On": True}, {"On": False}],
        [{"On": 1}, {"On": 0}],
    ),
    ("array cap", TypeSpec(DataType.ARRAY, item=INT), [1] * 512, [1] * 512, [1] * 512),
]


@pytest.mark.parametrize(
    ("spec", "value", "checked", "encoded"),
    [g[1:] for g in GOOD_VALUES],
    ids=[g[0] for g in GOOD_VALUES],
)
def test_good_values(spec: TypeSpec, value: object, checked: object, encoded: object) -> None:
    result = validate_value(spec, value)
    assert result == checked
    assert type(result) is type(checked)
    out = encode_value(spec, value)
    assert out == encoded
    assert json.dumps(out) == json.dumps(encoded)


def test_floats_keep_their_decimal_point_in_json() -> None:
    assert json.dumps(encode_value(TEMPERATURE, 10)) == "10.0"
    assert json.dumps(encode_value(TEMPERATURE, 22.5)) == "22.5"
    assert json.dumps(encode_value(spec_of("PowerSwitch"), True)) == "1"


BAD_VALUES: list[tuple[str, TypeSpec, object, str]] = [
    ("bool 2", spec_of("PowerSwitch"), 2, "expected 0 or 1, got 2"),
    ("bool text", spec_of("PowerSwitch"), "1", "expected 0 or 1, got '1'"),
    ("bool float", spec_of("PowerSwitch"), 1.0, "expected 0 or 1"),
    ("int bool", BRIGHTNESS, True, "expected an integer, got True"),
    ("int fraction", BRIGHTNESS, 5.5, "expected an integer, got 5.5"),
    ("int text", BRIGHTNESS, "5", "expected an integer"),
    ("int NaN", BRIGHTNESS, math.nan, "expected an integer"),
    ("int below", BRIGHTNESS, -1, "-1 is below the minimum 0"),
    ("int above", BRIGHTNESS, 101, "101 is above the maximum 100"),
    ("int32 over", INT, 2**31, "is above the maximum 2147483647"),
    ("float NaN", TEMPERATURE, math.nan, "expected a finite number, got nan"),
    ("float inf", DOUBLE, math.inf, "expected a finite number"),
    ("float huge int", DOUBLE, 10**400, "expected a finite number"),
    ("float bool", TEMPERATURE, False, "expected a finite number"),
    ("float text", TEMPERATURE, "22.5", "expected a finite number"),
    ("float above", TEMPERATURE, 120.5, "120.5 is above the maximum 120"),
    ("float below", TEMPERATURE, -40.1, "-40.1 is below the minimum -40"),
    ("enum unknown", spec_of("WorkMode"), 6, "6 is not one of the enum values 0, 1, 2, 3, 4, 5"),
    ("enum bool", spec_of("WorkMode"), True, "expected an integer"),
    ("text 33 bytes", spec_of("DeviceAlias"), "灯" * 11, "the text is 33 bytes long, more than 32"),
    ("text number", spec_of("DeviceAlias"), 5, "expected a string, got 5"),
    ("text over cap", TypeSpec(DataType.TEXT), "a" * 10241, "more than 10240"),
    ("date letters", spec_of("LastOnTime"), "yesterday", "expected milliseconds since the epoch"),
    ("date sign", spec_of("LastOnTime"), "-1", "expected milliseconds since the epoch"),
    ("date negative", spec_of("LastOnTime"), -1, "-1 is not a time in milliseconds"),
    ("date float", spec_of("LastOnTime"), 1.5, "expected an integer"),
    ("struct list", spec_of("RGBColor"), [1], "expected an object, got [1]"),
    ("struct unknown", spec_of("RGBColor"), {"Alpha": 1}, "unknown field 'Alpha'"),
    (
        "struct bad field",
        spec_of("RGBColor"),
        {"Red": 256},
        "field Red: 256 is above the maximum 255",
    ),
    ("array object", spec_of("LocalTimer"), {}, "expected a list, got {}"),
    ("array long", spec_of("LocalTimer"), [0] * 6, "the list has 6 items, more than 5"),
    ("array bad item", spec_of("LocalTimer"), [1, "x"], "item 1: expected an integer, got 'x'"),
    ("array over cap", TypeSpec(DataType.ARRAY, item=INT), [1] * 513, "more than 512"),
    ("array no item", TypeSpec(DataType.ARRAY), [], "has no item type"),
    ("long repr", spec_of("DeviceAlias"), ["x" * 100], "..."),
]


@pytest.mark.parametrize(
    ("spec", "value", "message"), [b[1:] for b in BAD_VALUES], ids=[b[0] for b in BAD_VALUES]
)
def test_bad_values(spec: TypeSpec, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        validate_value(spec, value)
    with pytest.raises(ValueError, match=re.escape(message)):
        encode_value(spec, value)


def test_messages_stay_short_for_long_values() -> None:
    with pytest.raises(ValueError, match="expected a string") as info:
        validate_value(spec_of("DeviceAlias"), ["x" * 1000])
    assert len(str(info.value)) < 80
