"""Local stand-ins for the providers the notification service sends through, started by
`python -m devstack run`: an SMTP server (`mail`) and an HTTP SMS gateway (`sms`). Each keeps what
it received in a folder and lists it over HTTP (`GET /messages`)."""
