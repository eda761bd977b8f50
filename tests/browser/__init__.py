"""The browser test: a real Home Assistant from scripts/demo, driven in headless Chromium."""
