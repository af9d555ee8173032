"""Tools with command lines, for developers and operators: contract snapshots and compatibility,
the AsyncAPI export, dead-letter redrive, development tokens. The services never import them."""
