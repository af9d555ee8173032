"""Local stand-ins for the outside systems the services call, never part of the production image.

`python -m devstack run` starts the providers notification sends through, an SMTP server (`mail`)
and an HTTP SMS gateway (`sms`), each keeping what it received in a folder and listing it over HTTP
(`GET /messages`), and the national public-service portal (`portal`). The payment platform's
simulator (`payment`) is started by hand or by tests (docs/services/intake.md).
"""
