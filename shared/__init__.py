"""The platform's common library, by purpose: `contracts` (what travels on the wire: events,
topics, the catalogue record, the CloudEvents envelope), `runtime` (what every service is built
on) and `tools` (command lines for developers and operators)."""
