"""The benchmark: Home Assistant with the integration against the emulated module and the
local cloud, measured against the serial line's limit (``scripts/bench``; not a test)."""
