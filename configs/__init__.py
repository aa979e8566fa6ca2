"""Experiment configs (frozen dataclasses), read only by the CLI and scripts, never by the library."""
