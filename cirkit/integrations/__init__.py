"""Glue for training frameworks that run cirkit's rollout loop, store and reward
(``cirkit.integrations.verl``)."""

__all__: list[str] = []
