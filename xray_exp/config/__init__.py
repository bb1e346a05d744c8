"""Configuration: the structured schemas (schema.py, eval_schema.py), their registration with Hydra and our
resolvers (store.py), command-line override rules (overrides.py) and Ultralytics' shortcut names
(override_shortcuts.py, standard library only: the service reads it without Hydra).

    from xray_exp.config.store import register_configs
    register_configs()        # before composing train.yaml / evaluate.yaml / compare.yaml

Kept empty so that `xray_exp.config.override_shortcuts` imports no Hydra.
"""
