"""Hydra plugin: the project's conf/ on the config search path of every xray_exp entry point."""
