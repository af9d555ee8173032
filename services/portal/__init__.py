"""The citizens' public-service portal (Cổng dịch vụ công): server-rendered pages over intake's
HTTP API. It holds no dossier data of its own."""
