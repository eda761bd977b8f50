"""What HACS and Home Assistant's own validators check in the shipped files."""
