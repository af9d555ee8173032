"""Command lines for developers and operators: contract snapshots (`snapshots`) and their
compatibility with the published baselines (`compat`), the AsyncAPI document (`asyncapi`, also
served by notification), dead-letter redrive (`redrive`), development tokens (`tokens`)."""
