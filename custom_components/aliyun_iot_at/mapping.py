"""Which Home Assistant platform shows a TSL property, and in which unit and device class."""

from __future__ import annotations

from dataclasses import dataclass

from homeassistant.components.sensor import SensorStateClass
from homeassistant.const import (
    CONCENTRATION_MICROGRAMS_PER_CUBIC_METER,
    CONCENTRATION_PARTS_PER_MILLION,
    LIGHT_LUX,
    PERCENTAGE,
    SIGNAL_STRENGTH_DECIBELS_MILLIWATT,
    Platform,
    UnitOfElectricCurrent,
    UnitOfElectricPotential,
    UnitOfEnergy,
    UnitOfFrequency,
    UnitOfLength,
    UnitOfPower,
    UnitOfPressure,
    UnitOfTemperature,
    UnitOfTime,
)

from .core.tsl import DataType, Property

# Aliyun's unit symbols that Home Assistant spells differently.
_SPELLINGS = {
    "℃": UnitOfTemperature.CELSIUS,
    "℉": UnitOfTemperature.FAHRENHEIT,
    "kW·h": UnitOfEnergy.KILO_WATT_HOUR,
    "Lux": LIGHT_LUX,
    "lux": LIGHT_LUX,
    "μg/m³": CONCENTRATION_MICROGRAMS_PER_CUBIC_METER,  # Greek mu; Home Assistant: micro sign
    "ug/m3": CONCENTRATION_MICROGRAMS_PER_CUBIC_METER,
}

# Units that say what is measured. Kelvin is not here: in a thing model it is a colour
# temperature, which no device class describes.
_CLASS_OF_UNIT = {
    UnitOfTemperature.CELSIUS: "temperature",
    UnitOfTemperature.FAHRENHEIT: "temperature",
    UnitOfPower.MILLIWATT: "power",
    UnitOfPower.WATT: "power",
    UnitOfPower.KILO_WATT: "power",
    UnitOfEnergy.WATT_HOUR: "energy",
    UnitOfEnergy.KILO_WATT_HOUR: "energy",
    UnitOfElectricPotential.MILLIVOLT: "voltage",
    UnitOfElectricPotential.VOLT: "voltage",
    UnitOfElectricCurrent.MILLIAMPERE: "current",
    UnitOfElectricCurrent.AMPERE: "current",
    UnitOfPressure.PA: "pressure",
    UnitOfPressure.HPA: "pressure",
    UnitOfPressure.KPA: "pressure",
    LIGHT_LUX: "illuminance",
    UnitOfFrequency.HERTZ: "frequency",
    UnitOfFrequency.KILOHERTZ: "frequency",
    SIGNAL_STRENGTH_DECIBELS_MILLIWATT: "signal_strength",
    UnitOfTime.MILLISECONDS: "duration",
    UnitOfTime.SECONDS: "duration",
    UnitOfTime.MINUTES: "duration",
    UnitOfTime.HOURS: "duration",
    UnitOfLength.MILLIMETERS: "distance",
    UnitOfLength.CENTIMETERS: "distance",
    UnitOfLength.METERS: "distance",
    UnitOfLength.KILOMETERS: "distance",
}

# Units shared by several quantities: the identifier says which (CurrentHumidity, PM25...).
_CLASS_OF_NAME = {
    PERCENTAGE: (("humidity", "humidity"), ("battery", "battery")),
    CONCENTRATION_PARTS_PER_MILLION: (("co2", "carbon_dioxide"),),
    CONCENTRATION_MICROGRAMS_PER_CUBIC_METER: (
        ("pm25", "pm25"),
        ("pm2_5", "pm25"),
        ("pm10", "pm10"),
    ),
}


@dataclass(frozen=True)
class Measurement:
    """How a numeric property reads: unit, device class name and state class."""

    unit: str | None
    device_class: str | None
    state_class: SensorStateClass


def platform_of(prop: Property) -> Platform:
    """The platform whose entity shows ``prop``: writable ones get a control."""
    kind = prop.data_type.type
    if kind in (DataType.DATE, DataType.STRUCT, DataType.ARRAY):
        return Platform.SENSOR
    if not prop.writable:
        return Platform.BINARY_SENSOR if kind is DataType.BOOL else Platform.SENSOR
    controls = {DataType.BOOL: Platform.SWITCH, DataType.ENUM: Platform.SELECT}
    return controls.get(kind, Platform.TEXT if kind is DataType.TEXT else Platform.NUMBER)


def measurement(prop: Property) -> Measurement:
    """The unit of a numeric property, and what it measures when the unit or name says."""
    raw = prop.data_type.unit
    unit = _SPELLINGS.get(raw, raw) if raw else None
    device_class = _CLASS_OF_UNIT.get(unit) if unit else None
    name = prop.identifier.lower()
    for hint, hinted in _CLASS_OF_NAME.get(unit or "", ()):
        if hint in name:
            device_class = hinted
    # Energy meters count up; everything else is a reading of the moment.
    total = device_class == "energy"
    state_class = SensorStateClass.TOTAL_INCREASING if total else SensorStateClass.MEASUREMENT
    return Measurement(unit, device_class, state_class)
