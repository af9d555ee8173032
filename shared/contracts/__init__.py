"""The wire contracts: dossier events and their topics, the procedure catalogue record, the
CloudEvents envelope. What other services and agencies read; changed only compatibly."""
